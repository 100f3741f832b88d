"""AdamW with linear warm-up/decay, global-norm clipping and optional gradient accumulation.

    lr(u) = peak * u / warmup                                   for u < warmup
          = peak * (1 - (1 - end_ratio) * (u - warmup) / (total - warmup))   afterwards

``u`` counts optimizer *updates*; with ``accumulate=k`` one update happens every k train steps
(optax.MultiSteps averages the k micro-batch gradients).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import optax

from jaxir.config.bounds import bounded, check_bounds


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    # Peak learning rate reached at the end of warm-up.
    learning_rate: float = bounded(1e-5, ge=0.0)
    # Number of optimizer updates of linear warm-up from 0.
    warmup_steps: int = bounded(0, ge=0)
    # Total optimizer updates; the rate decays linearly to end_lr_ratio * peak at this update.
    total_steps: int = bounded(1000, ge=1)
    # Final rate as a fraction of the peak.
    end_lr_ratio: float = bounded(0.0, ge=0.0, le=1.0)
    # AdamW decoupled weight decay (applied to params of rank >= 2 only).
    weight_decay: float = bounded(0.01, ge=0.0)
    # Adam moments.
    b1: float = bounded(0.9, ge=0.0, lt=1.0)
    b2: float = bounded(0.999, ge=0.0, lt=1.0)
    eps: float = bounded(1e-8, gt=0.0)
    # Clip the global gradient norm to this value; None disables clipping.
    clip_norm: float | None = bounded(2.0, gt=0.0)
    # Micro-batches per optimizer update (gradient accumulation via optax.MultiSteps).
    accumulate: int = bounded(1, ge=1)
    # Learning-rate multipliers (>= 0) per top-level param group, e.g. (("head", 50.0),): a freshly
    # initialised head next to a pretrained encoder may learn faster. Clipping stays global.
    lr_multipliers: tuple[tuple[str, float], ...] = bounded((), ge=0.0)

    def __post_init__(self):
        check_bounds(self)
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(f"need 0 <= warmup_steps ({self.warmup_steps}) <= total_steps "
                             f"({self.total_steps})")


def linear_schedule(cfg: OptimConfig) -> optax.Schedule:
    """Pure function of the update count: linear warm-up to the peak, then linear decay."""
    decay = optax.linear_schedule(cfg.learning_rate, cfg.learning_rate * cfg.end_lr_ratio,
                                  max(cfg.total_steps - cfg.warmup_steps, 1))
    if cfg.warmup_steps == 0:
        return decay
    warm = optax.linear_schedule(0.0, cfg.learning_rate, cfg.warmup_steps)
    return optax.join_schedules([warm, decay], [cfg.warmup_steps])


def decay_mask(params: Any) -> Any:
    """Weight decay on matrices only: biases and LayerNorm scales (rank < 2) are not decayed."""
    return jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg: OptimConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Returns ``(optimizer, schedule)``; the schedule is for logging ``lr`` in the step."""
    schedule = linear_schedule(cfg)

    def adamw(mult: float) -> optax.GradientTransformation:
        lr = schedule if mult == 1.0 else (lambda u: schedule(u) * mult)
        return optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay,
                           mask=decay_mask)

    parts = []
    if cfg.clip_norm is not None:
        parts.append(optax.clip_by_global_norm(cfg.clip_norm))
    multipliers = dict(cfg.lr_multipliers)
    if multipliers:
        groups = {"base": adamw(1.0), **{name: adamw(m) for name, m in multipliers.items()}}
        parts.append(optax.multi_transform(groups, lambda params: _group_labels(params, multipliers)))
    else:
        parts.append(adamw(1.0))
    optimizer = optax.chain(*parts)
    if cfg.accumulate > 1:
        optimizer = optax.MultiSteps(optimizer, every_k_schedule=cfg.accumulate)
    return optimizer, schedule


def check_lr_multipliers(multipliers, params: Any) -> None:
    """OptionError unless every name of `multipliers` is a top-level parameter group of `params`
    (arrays or their shapes): a multiplier is matched to the params by that key alone."""
    from jaxir.errors import OptionError

    unknown = sorted(set(multipliers) - set(params))
    if unknown:
        raise OptionError(f"--optim.lr_multipliers: {', '.join(map(repr, unknown))} names no parameter "
                          f"group (groups: {', '.join(sorted(params))})")


def _group_labels(params: Any, multipliers: dict) -> Any:
    """Label each leaf by its top-level key when that key has a multiplier, else "base"; a
    multiplier naming no top-level group is an OptionError (raised when the optimizer state is
    built, before any step; `jaxir train` checks it before any data is read)."""
    check_lr_multipliers(multipliers, params)
    return {k: jax.tree_util.tree_map(lambda _, k=k: k if k in multipliers else "base", v)
            for k, v in params.items()}
