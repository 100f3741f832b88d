"""GradCache gradients equal the plain full-batch gradients on a toy dual encoder."""
import chex
import jax
import numpy as np
import pytest

from jaxir import parallel
from jaxir.training.gradcache import _from_chunks, _to_chunks, gradcache_grad_fn
from jaxir.training.step import FAST_CPU_COMPILE
from jaxir.training.toy import TOY_RULES, toy_data, toy_encode, toy_infonce, toy_init, toy_task


def _encoders():
    enc = lambda p, x, rng: toy_encode(p, x, rng)  # noqa: E731 - no dropout: exact comparison
    return {"query": enc, "doc": enc}


@pytest.fixture(scope="module")
def full_batch():
    batch = toy_data(16, seed=11)
    params = toy_init(jax.random.PRNGKey(1), batch)
    task = toy_task(dropout=0.0)
    (loss, metrics), grads = jax.jit(jax.value_and_grad(task.loss_fn, has_aux=True))(
        params, batch, jax.random.PRNGKey(0))
    return params, batch, float(loss), jax.device_get(metrics), jax.device_get(grads)


def test_chunks_roundtrip_and_keep_rows_strided():
    x = np.arange(12 * 2).reshape(12, 2)
    chunks = _to_chunks(x, 4)
    assert chunks.shape == (3, 4, 2)
    np.testing.assert_array_equal(chunks[1][:, 0], x[[1, 4, 7, 10], 0])
    np.testing.assert_array_equal(_from_chunks(chunks), x)
    with pytest.raises(ValueError, match="not divisible by chunk_size 5"):
        _to_chunks(x, 5)


@pytest.mark.parametrize("chunk", [4, 16])
def test_gradcache_equals_full_batch_gradient(full_batch, chunk):
    params, batch, ref_loss, ref_metrics, ref_grads = full_batch
    grad_fn = gradcache_grad_fn(_encoders(), toy_infonce, chunk_size=chunk)
    (loss, metrics), grads = jax.jit(grad_fn, compiler_options=FAST_CPU_COMPILE)(
        params, batch, jax.random.PRNGKey(0))
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-6)
    np.testing.assert_allclose(float(metrics["acc"]), ref_metrics["acc"])
    # atol 1e-6: chunked float32 sums reorder additions (2e-7 seen on near-zero entries on an
    # AVX-512 machine); gradients reach ~1.9 here and dropping 4 of the 16 rows moves them by ~2.
    chex.assert_trees_all_close(jax.device_get(grads), ref_grads, rtol=1e-5, atol=1e-6)
    assert float(np.abs(ref_grads["embed"]["embedding"]).sum()) > 0  # a real gradient


def test_gradcache_under_sharding_matches(full_batch):
    params, batch, ref_loss, _, ref_grads = full_batch
    mesh = parallel.make_mesh(4, 2)
    p_sh = parallel.param_shardings(params, mesh, TOY_RULES)
    grad_fn = gradcache_grad_fn(_encoders(), toy_infonce, chunk_size=8)
    fn = jax.jit(grad_fn, in_shardings=(p_sh, parallel.batch_sharding(mesh), None),
                 compiler_options=FAST_CPU_COMPILE)
    (loss, _), grads = fn(jax.device_put(params, p_sh), parallel.shard_batch(batch, mesh),
                          jax.random.PRNGKey(0))
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-6)
    chex.assert_trees_all_close(jax.device_get(grads), ref_grads, rtol=1e-5, atol=1e-6)


def test_gradcache_rejects_bad_chunk_size():
    with pytest.raises(ValueError, match="chunk_size"):
        gradcache_grad_fn(_encoders(), toy_infonce, chunk_size=0)
