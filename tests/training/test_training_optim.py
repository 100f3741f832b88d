"""Schedule values by hand, weight-decay mask, global-norm clipping."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.training.optim import OptimConfig, decay_mask, linear_schedule, make_optimizer
from jaxir.training.step import FAST_CPU_COMPILE


def test_linear_warmup_then_decay_matches_formula():
    cfg = OptimConfig(learning_rate=2.0, warmup_steps=4, total_steps=12, end_lr_ratio=0.25)
    sched = linear_schedule(cfg)
    for u in range(15):
        if u < 4:
            want = 2.0 * u / 4
        else:
            frac = min((u - 4) / 8, 1.0)
            want = 2.0 * (1 - 0.75 * frac)
        assert float(sched(u)) == pytest.approx(want, rel=1e-6), u
    assert float(linear_schedule(OptimConfig(learning_rate=1.0, total_steps=10))(0)) == 1.0


def test_config_validation():
    with pytest.raises(ValueError, match="accumulate"):
        OptimConfig(accumulate=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        OptimConfig(warmup_steps=20, total_steps=10)


def _update(opt, grads, params):
    """One update from a fresh state, jitted (eager optax would compile op by op)."""
    fn = jax.jit(lambda g, p: opt.update(g, opt.init(p), p)[0], compiler_options=FAST_CPU_COMPILE)
    return fn(grads, params)


def test_clipping_and_decay_mask():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
    assert decay_mask(params) == {"w": True, "b": False}
    # b1 = b2 = 0 and a huge eps make Adam's step ~ -lr * g / eps: linear in the clipped g.
    cfg = OptimConfig(learning_rate=1e6, total_steps=10, clip_norm=1.0, weight_decay=0.5e-6,
                      b1=0.0, b2=0.0, eps=1e6)
    opt, _ = make_optimizer(cfg)
    grads = {"w": jnp.full((2, 2), 3.0), "b": jnp.full((2,), 4.0)}
    norm = float(np.sqrt(4 * 9 + 2 * 16))
    updates = _update(opt, grads, params)
    np.testing.assert_allclose(updates["b"], -4.0 / norm, rtol=1e-4)
    # Decoupled decay (lr * wd * w = 0.5) on the matrix only.
    np.testing.assert_allclose(updates["w"], -3.0 / norm - 0.5, rtol=1e-4)
    no_clip, _ = make_optimizer(OptimConfig(learning_rate=1e6, total_steps=10, clip_norm=None,
                                            weight_decay=0.0, b1=0.0, b2=0.0, eps=1e6))
    raw = _update(no_clip, grads, params)
    np.testing.assert_allclose(raw["b"], -4.0, rtol=1e-4)
