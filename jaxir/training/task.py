"""What a retrieval method hands the training engine.

A task is three pure functions and some sharding rules; the engine never sees model objects::

    Task(init=lambda rng, batch: params,
         loss_fn=lambda params, batch, rng: (loss, {"acc": acc}),
         param_rules=[(r"embedding$", (VOCAB, EMBED))])

Batches are pytrees of arrays whose leading dimension is the (global) batch, split on "data".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax

from jaxir.parallel import ParamRules

Params = Any
Batch = Any
Metrics = Mapping[str, jax.Array]
LossFn = Callable[[Params, Batch, jax.Array], tuple[jax.Array, Metrics]]


@dataclasses.dataclass(frozen=True)
class Task:
    # (rng, example_batch) -> params pytree.
    init: Callable[[jax.Array, Batch], Params]
    # (params, batch, rng) -> (scalar loss, dict of scalar metrics); rng drives dropout etc.
    # Evaluation calls it with rng=None, meaning deterministic (no dropout).
    loss_fn: LossFn
    # Path-pattern sharding rules for params (default: replicate everything).
    param_rules: ParamRules = ()
    # Optional (params, batch) -> metrics for held-out batches (default: loss_fn with rng=None).
    eval_fn: Callable[[Params, Batch], Metrics] | None = None
    # True: training calls loss_fn(params, batch, rng, step=k) with k the optimizer-update index
    # (a traced int32), for step-dependent loss weights such as the FLOPS warm-up.
    step_aware: bool = False
    # JSON-able description of the model; its fingerprint guards checkpoint restores.
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
