"""TrainState: the whole training run as one pytree (step, params, opt_state, rng).

The state is created directly in its sharded layout: ``jax.eval_shape`` of the creation
function -> shardings from the task's param rules (they also match the optimizer moments,
which carry the param paths) -> ``jax.jit(create, out_shardings=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxir.parallel import param_shardings
from jaxir.training.task import Task


@flax.struct.dataclass
class TrainState:
    # Number of train steps (micro-batches) taken so far, int32 scalar.
    step: jax.Array
    # fp32 master weights.
    params: Any
    # Optimizer state (fp32).
    opt_state: Any
    # Base PRNG key (raw uint32[2]); step k uses fold_in(rng, k), so it never changes.
    rng: jax.Array


def create_state(params: Any, optimizer: optax.GradientTransformation,
                 rng: jax.Array) -> TrainState:
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optimizer.init(params), rng=rng)


def init_train_state(task: Task, optimizer: optax.GradientTransformation, rng: jax.Array,
                     example_batch: Any, mesh: Mesh, *,
                     compiler_options: Mapping[str, Any] | None = None) -> tuple[TrainState, Any]:
    """Returns ``(state, state_shardings)`` with every leaf built in its final sharding.

    ``rng`` is a raw ``jax.random.PRNGKey``; one half seeds the params, the other the steps.
    """
    init_rng, step_rng = jax.random.split(rng)
    create, shapes, shardings = state_layout(task, optimizer, init_rng, step_rng, example_batch, mesh)
    state = jax.jit(create, out_shardings=shardings,
                    compiler_options=compiler_options)(init_rng, step_rng)
    return state, shardings


def state_layout(task: Task, optimizer: optax.GradientTransformation, init_rng: jax.Array,
                 step_rng: jax.Array, example_batch: Any, mesh: Mesh) -> tuple[Any, Any, Any]:
    """``(create, shapes, shardings)`` of the train state, nothing computed: ``create(init_rng,
    step_rng)`` builds it, ``shapes`` is its ``jax.eval_shape`` and ``shardings`` come from the
    task's param rules. ``example_batch``: arrays or ShapeDtypeStructs (only shapes are read)."""
    # Only the batch's shapes matter to init; zeros built inside jit keep every process identical.
    batch_shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                                          example_batch)

    def create(init_rng, step_rng):
        batch = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), batch_shapes)
        return create_state(task.init(init_rng, batch), optimizer, step_rng)

    shapes = jax.eval_shape(create, init_rng, step_rng)
    return create, shapes, param_shardings(shapes, mesh, task.param_rules)


def abstract_state(state_shapes: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying shardings: the restore target for checkpoints."""
    return jax.tree_util.tree_map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), state_shapes, shardings)
