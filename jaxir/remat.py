"""Activation rematerialisation of the encoder layers, switched on while a train step is traced.

The training engine knows no model, and models know no engine, so the switch is a trace-time
setting both can see: `make_train_step(..., remat=policy)` traces the loss inside
`remat_layers(policy)`, and every encoder layer built meanwhile (`jaxir.models.bert.layer_module`:
the BertEncoder's layers, MICE's interaction layers) is wrapped in `nn.remat` with that
policy. The backward pass then recomputes what the policy does not keep instead of holding
every layer's activations: less accelerator memory, more FLOPs, the same loss and gradients.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import jax

# What a rematerialised layer keeps for the backward pass; the rest is recomputed there.
REMAT_POLICIES = {
    # Only each layer's input: the layer's whole forward runs again in the backward pass (a train
    # step's FLOPs grow by up to ~1/3); the activations held are one [B, T, H] per layer.
    "nothing": jax.checkpoint_policies.nothing_saveable,
    # The weight matmuls' outputs (QKV, attention out, FFN): attention scores, softmax, GELU and
    # LayerNorm are recomputed; more memory than "nothing", fewer extra FLOPs.
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}
_POLICY: contextvars.ContextVar[str | None] = contextvars.ContextVar("jaxir_remat", default=None)


@contextlib.contextmanager
def remat_layers(policy: str | None) -> Iterator[None]:
    """Encoder layers traced inside are rematerialised with `policy` (a REMAT_POLICIES name;
    None: not rematerialised)."""
    if policy is not None and policy not in REMAT_POLICIES:
        raise ValueError(f"unknown remat policy {policy!r}; choose from {', '.join(REMAT_POLICIES)}")
    token = _POLICY.set(policy)
    try:
        yield
    finally:
        _POLICY.reset(token)


def active_policy() -> str | None:
    """The policy of the innermost `remat_layers` being traced (None: remat off)."""
    return _POLICY.get()

