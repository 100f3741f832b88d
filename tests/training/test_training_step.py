"""Train step: sharded == single-device, one compile across steps, bf16 flag, accumulation."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxir import parallel
from jaxir.parallel import MODEL
from jaxir.training.optim import OptimConfig, make_optimizer
from jaxir.training.state import create_state, init_train_state
from jaxir.training.step import FAST_CPU_COMPILE, make_eval_step, make_train_step
from jaxir.training.toy import toy_data, toy_task

OPT = OptimConfig(learning_rate=1e-2, warmup_steps=0, total_steps=10, clip_norm=1.0)
FAST = FAST_CPU_COMPILE


@pytest.fixture(scope="module")
def reference():
    """Single-device loss and grads of the toy task (dropout on) at a fixed state and batch."""
    task = toy_task(dropout=0.1)
    sgd = optax.sgd(1.0)  # params_after = params - grads, so a step exposes its gradients
    single = parallel.make_mesh(devices=jax.devices()[:1])
    state, _ = init_train_state(task, sgd, jax.random.PRNGKey(7), toy_data(16, seed=3), single,
                                compiler_options=FAST)
    state = jax.device_get(state)
    rng = jax.random.fold_in(state.rng, state.step)
    (loss, metrics), grads = jax.jit(jax.value_and_grad(task.loss_fn, has_aux=True))(
        state.params, toy_data(16, seed=3), rng)
    return task, sgd, state, float(loss), jax.device_get(metrics), jax.device_get(grads)


@pytest.mark.parametrize("shape", [(8, 1), (4, 2), (2, 4)])
def test_sharded_step_equals_single_device(reference, shape):
    task, sgd, host_state, ref_loss, ref_metrics, ref_grads = reference
    mesh = parallel.make_mesh(*shape)
    sh = parallel.param_shardings(host_state, mesh, task.param_rules)
    state = jax.device_put(host_state, sh)
    if shape[1] > 1:  # the tensor-parallel path is really taken
        assert state.params["embed"]["embedding"].sharding.spec[0] == MODEL
        assert state.params["dense"]["kernel"].sharding.spec[1] == MODEL
    step = make_train_step(task, sgd, lambda s: 1.0, mesh, sh, compiler_options=FAST)
    new, m = step(state, parallel.shard_batch(toy_data(16, seed=3), mesh))
    grads = jax.tree_util.tree_map(lambda a, b: a - b, host_state.params,
                                   jax.device_get(new.params))
    np.testing.assert_allclose(float(m["loss"]), ref_loss, rtol=1e-5)
    np.testing.assert_allclose(float(m["acc"]), ref_metrics["acc"], rtol=1e-6)
    chex.assert_trees_all_close(grads, ref_grads, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(m["grad_norm"]), float(optax.tree.norm(ref_grads)),
                               rtol=1e-5)
    assert int(new.step) == 1 and new.params["embed"]["embedding"].sharding == \
        sh.params["embed"]["embedding"]


def _on_mesh(reference, optimizer, mesh, task=None):
    """The reference params with a fresh optimizer state, placed on ``mesh`` by the rules."""
    ref_task, _, host_state, *_ = reference
    state = create_state(host_state.params, optimizer, host_state.rng)
    sh = parallel.param_shardings(state, mesh, (task or ref_task).param_rules)
    return jax.device_put(state, sh), sh


def test_no_recompilation_across_steps(reference):
    base = reference[0]
    traces = []

    @chex.assert_max_traces(n=1)
    def loss_fn(params, batch, rng):
        traces.append(1)
        return base.loss_fn(params, batch, rng)

    task = dataclasses.replace(base, loss_fn=loss_fn)
    optimizer, schedule = make_optimizer(OPT)
    mesh = parallel.make_mesh(4, 2)
    state, sh = _on_mesh(reference, optimizer, mesh)
    step = make_train_step(task, optimizer, schedule, mesh, sh, compiler_options=FAST)
    losses = []
    for seed in range(3):
        state, m = step(state, parallel.shard_batch(toy_data(16, seed=seed), mesh))
        losses.append(float(m["loss"]))
    assert len(traces) == 1 and int(state.step) == 3
    assert len(set(losses)) == 3  # different batches really went through


def test_bf16_compute_keeps_fp32_master_weights(reference):
    task, sgd, host_state, ref_loss, _, ref_grads = reference
    mesh = parallel.make_mesh(8, 1)
    state, sh = _on_mesh(reference, sgd, mesh)
    step = make_train_step(task, sgd, lambda s: 1.0, mesh, sh, compute_dtype="bfloat16",
                           compiler_options=FAST)
    new, m = step(state, parallel.shard_batch(toy_data(16, seed=3), mesh))
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(new.params))
    grads = jax.tree_util.tree_map(lambda a, b: a - b, host_state.params,
                                   jax.device_get(new.params))
    np.testing.assert_allclose(float(m["loss"]), ref_loss, rtol=2e-2)
    assert float(m["loss"]) != ref_loss  # bf16 really was used
    chex.assert_trees_all_close(grads, ref_grads, rtol=0.1, atol=0.05)


def test_gradient_accumulation_applies_mean_every_k_steps(reference):
    task = toy_task(dropout=0.0)
    mesh = parallel.make_mesh(8, 1)
    batch = parallel.shard_batch(toy_data(16, seed=3), mesh)
    runs = {}
    for k in (1, 2):
        optimizer, schedule = make_optimizer(dataclasses.replace(OPT, accumulate=k))
        state, sh = _on_mesh(reference, optimizer, mesh, task)
        step = make_train_step(task, optimizer, schedule, mesh, sh, accumulate=k,
                               compiler_options=FAST)
        p0 = jax.device_get(state.params)
        history = []
        for _ in range(k):
            state, m = step(state, batch)
            history.append(jax.device_get(state.params))
        runs[k] = (p0, history, m)
    p0, (after_micro, after_update), m2 = runs[2]
    chex.assert_trees_all_equal(after_micro, p0)  # micro-step: no update yet
    # Mean of two identical gradients == one gradient: same update as the plain step.
    chex.assert_trees_all_close(after_update, runs[1][1][0], rtol=1e-6, atol=1e-7)
    assert float(m2["lr"]) == float(runs[1][2]["lr"]) == pytest.approx(1e-2)


def test_eval_step_is_deterministic_without_dropout(reference):
    task = toy_task(dropout=0.5)
    mesh = parallel.make_mesh(2, 4)
    state, sh = _on_mesh(reference, optax.sgd(1.0), mesh, task)
    evaluate = make_eval_step(task, mesh, sh.params, compiler_options=FAST)
    batch = toy_data(16, seed=3)
    m = jax.device_get(evaluate(state.params, parallel.shard_batch(batch, mesh)))
    ref, _ = task.loss_fn(reference[2].params, batch, None)
    np.testing.assert_allclose(m["loss"], ref, rtol=1e-5)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_step_aware_loss_sees_the_optimizer_update_index(accumulate):
    base = toy_task(dropout=0.0)

    def loss_fn(params, batch, rng, *, step):
        loss, metrics = base.loss_fn(params, batch, rng)
        return loss, {**metrics, "seen_step": step}

    task = dataclasses.replace(base, loss_fn=loss_fn, step_aware=True)
    optimizer, schedule = make_optimizer(dataclasses.replace(OPT, accumulate=accumulate))
    mesh = parallel.make_mesh(devices=jax.devices()[:1])
    state, sh = init_train_state(task, optimizer, jax.random.PRNGKey(0), toy_data(8), mesh,
                                 compiler_options=FAST)
    step = make_train_step(task, optimizer, schedule, mesh, sh, accumulate=accumulate,
                           compiler_options=FAST)
    seen = []
    for i in range(4):
        state, m = step(state, parallel.shard_batch(toy_data(8, seed=i), mesh))
        seen.append(int(m["seen_step"]))
    assert seen == [i // accumulate for i in range(4)]


def test_rbg_dropout_is_the_loss_of_its_own_key(reference):
    """fit.dropout_rng rbg: the step's loss is the task's loss under the rbg key derived from the
    same threefry key (so masks are re-drawn, not dropped), deterministic, and not threefry's."""
    from jaxir.training.step import dropout_key

    task, sgd, host_state, ref_loss, _, _ = reference
    single = parallel.make_mesh(devices=jax.devices()[:1])
    sh = parallel.param_shardings(host_state, single, task.param_rules)
    step = make_train_step(task, sgd, lambda s: 1.0, single, sh, compiler_options=FAST, dropout_rng="rbg")
    batch = toy_data(16, seed=3)
    losses = [float(step(jax.device_put(host_state, sh), parallel.shard_batch(batch, single))[1]["loss"])
              for _ in range(2)]
    rng = dropout_key(jax.random.fold_in(host_state.rng, host_state.step), "rbg")
    expected, _ = jax.jit(task.loss_fn)(host_state.params, batch, rng)
    assert losses[0] == losses[1]
    np.testing.assert_allclose(losses[0], float(expected), rtol=1e-5)
    assert abs(losses[0] - ref_loss) > 1e-6  # other masks than threefry's
    with pytest.raises(ValueError, match="unknown dropout rng 'philox'"):
        make_train_step(task, sgd, lambda s: 1.0, single, sh, dropout_rng="philox")


def test_fit_config_refuses_an_unknown_dropout_rng():
    from jaxir.training.loop import FitConfig

    with pytest.raises(ValueError, match="dropout_rng must be one of threefry, rbg, got 'x'"):
        FitConfig(dropout_rng="x")
