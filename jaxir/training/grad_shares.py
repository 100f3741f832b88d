"""Which loss term moves the encoder? The L2 norm of each term's gradient with respect to one
parameter group, and each norm's share of their sum: a run shows at init and at its end whether
a regulariser (FLOPS, I³'s reconstruction) is a real part of the update or noise next to the
ranking loss."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp


def term_gradient_norms(terms: Mapping[str, Callable[[Any], jax.Array]], params: Any,
                        group: str) -> dict[str, float]:
    """{name: ||d term(params) / d params[group]||_2} for scalar functions of the params pytree."""
    out = {}
    for name, fn in terms.items():
        grads = jax.jit(jax.grad(fn))(params)[group]
        out[name] = float(jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32)))
                                       for g in jax.tree_util.tree_leaves(grads))))
    return out


def gradient_shares(terms: Mapping[str, Callable[[Any], jax.Array]], params: Any, group: str) -> dict[str, float]:
    """`grad_<name>` norms and `share_<name>` = norm / sum of the norms (0 when all are 0)."""
    norms = term_gradient_norms(terms, params, group)
    total = sum(norms.values())
    return {**{f"grad_{k}": v for k, v in norms.items()},
            **{f"share_{k}": (v / total if total else 0.0) for k, v in norms.items()}}
