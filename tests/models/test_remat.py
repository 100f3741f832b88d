"""Activation rematerialisation (`fit.remat`): the same loss and gradients, remat on vs off.

Remat only changes what the backward pass keeps and recomputes; these tests prove, on CPU at tiny
shapes, that every policy leaves the loss and the gradients of real models unchanged (dropout on,
so the rematerialised layers must also draw the same dropout masks), and that the train step and
`fit` reach it from `FitConfig.remat`.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.models.bert import BertConfig
from jaxir.remat import REMAT_POLICIES, remat_layers
from jaxir.training.loop import FitConfig
from jaxir.training.optim import OptimConfig, make_optimizer
from jaxir.training.state import init_train_state
from jaxir.training.step import make_train_step
from jaxir.training.task import Task
from jaxir.parallel import make_mesh, shard_batch

TOL = dict(rtol=1e-5, atol=1e-6)


def assert_close(actual, desired):
    """fp32 equality up to reassociation: recomputed layers may sum in another order."""
    desired = np.asarray(desired)
    scale = float(np.abs(desired).max()) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=1e-4, atol=1e-5 * max(scale, 1.0))


def _colbert():
    from jaxir.methods.colbert import ColBERTModel
    from jaxir.methods.colbert_config import ColBERTConfig
    from jaxir.recipes.colbert import nway_arrays

    model = ColBERTModel(ColBERTConfig(doc_maxlen=24, query_maxlen=8, dropout=0.1),
                         bert_config=BertConfig.tiny())
    batch = nway_arrays(model, ["what is remat", "memory of activations"],
                        [["recompute the forward pass", "keep every activation"],
                         ["checkpoint each layer", "store less memory"]])
    batch["teacher"] = np.asarray([[2.0, 0.5], [1.0, 1.5]], np.float32)
    return model, batch


def _mice():
    from jaxir.methods.mice import MiceModel
    from jaxir.methods.mice_config import MiceConfig
    from jaxir.recipes.mice import mice_arrays

    model = MiceModel(MiceConfig(query_maxlen=8, doc_maxlen=16, fusion_layer=1, dropout=0.1),
                      bert_config=BertConfig.tiny(num_layers=3))
    batch = mice_arrays(model, ["what is remat", "memory"], [["recompute it", "keep all"],
                                                             ["checkpoint layers", "store less"]])
    batch.update(teacher=np.asarray([[2.0, 0.5], [1.0, 1.5]], np.float32), valid=np.ones((2, 2), bool))
    return model, batch


def _loss_and_grads(model, batch, params, policy):
    def loss(p):
        with remat_layers(policy):
            return model.loss_fn(p, batch, jax.random.PRNGKey(7))[0]  # rng: dropout on
    return jax.jit(jax.value_and_grad(loss))(params)


@pytest.mark.parametrize("make", [_colbert, _mice], ids=["colbert", "mice"])
@pytest.mark.parametrize("policy", sorted(REMAT_POLICIES))
def test_remat_leaves_loss_and_grads_unchanged(make, policy):
    model, batch = make()
    params = model.init(jax.random.PRNGKey(0))
    loss_off, grads_off = _loss_and_grads(model, batch, params, None)
    loss_on, grads_on = _loss_and_grads(model, batch, params, policy)
    np.testing.assert_allclose(loss_on, loss_off, **TOL)
    assert float(loss_off) > 0
    flat_off, flat_on = jax.tree_util.tree_leaves(grads_off), jax.tree_util.tree_leaves(grads_on)
    assert len(flat_off) == len(flat_on)
    for a, b in zip(flat_off, flat_on):
        assert_close(b, a)
    assert any(float(jnp.abs(g).max()) > 0 for g in flat_off)


def test_remat_is_in_the_traced_program():
    """The policy really wraps the layers: the jaxpr of the remat'ed loss holds remat (checkpoint)
    equations, the plain one none."""
    model, batch = _colbert()
    params = model.init(jax.random.PRNGKey(0))

    def jaxpr(policy):
        def loss(p):
            with remat_layers(policy):
                return model.loss_fn(p, batch, None)[0]
        return str(jax.make_jaxpr(jax.grad(loss))(params))

    assert "checkpoint" in jaxpr("nothing") or "remat" in jaxpr("nothing")
    assert "checkpoint" not in jaxpr(None) and "remat" not in jaxpr(None)


def test_train_step_with_fit_remat_matches_without():
    """FitConfig.remat reaches the model through the real train step: one step from the same
    state gives the same metrics and params with remat on and off."""
    model, batch = _colbert()
    task = Task(init=model.init, loss_fn=model.loss_fn)
    # eps 1: Adam's first update is lr * g / (|g| + 1), not lr * sign(g) (which a last-bit
    # difference of a near-zero gradient would flip)
    optimizer, schedule = make_optimizer(OptimConfig(learning_rate=1e-3, total_steps=10, eps=1.0))
    mesh = make_mesh(1, 1, devices=jax.devices()[:1])
    out = {}
    for remat in (False, True):
        fit = FitConfig(remat=remat, batch_size=2)
        state, shardings = init_train_state(task, optimizer, jax.random.PRNGKey(0), batch, mesh)
        step = make_train_step(task, optimizer, schedule, mesh, shardings, remat=fit.remat_as)
        new_state, metrics = step(state, shard_batch(batch, mesh))
        out[remat] = (jax.device_get(metrics), jax.device_get(new_state.params))
    for k in ("loss", "grad_norm"):
        assert_close(out[True][0][k], out[False][0][k])
    for a, b in zip(jax.tree_util.tree_leaves(out[False][1]), jax.tree_util.tree_leaves(out[True][1])):
        assert_close(b, a)


def test_fit_remat_policy_is_checked():
    assert FitConfig().remat is False and FitConfig().remat_as is None
    assert FitConfig(remat=True).remat_as == "nothing"
    with pytest.raises(ValueError, match="remat_policy"):
        FitConfig(remat=True, remat_policy="everything")
    with pytest.raises(ValueError, match="unknown remat policy"):
        with remat_layers("everything"):
            pass
