"""GradCache: contrastive losses over a batch far larger than the encoder's activation memory.

For encoders ``E_s`` (one per batch field ``s``, e.g. "query" and "doc") and a loss ``L`` over
the embeddings only:

    1. e_s = E_s(params, x_s)                  chunk by chunk, no graph kept
    2. (L, m), dL/de_s = value_and_grad(L)(e)  the full-batch loss on cached embeddings
    3. dL/dparams = sum_s sum_chunks vjp(E_s(., chunk))(dL/de_s[chunk])   chunk by chunk again

Step 3 re-runs each chunk's forward pass (same per-chunk rng, so dropout masks match step 1)
and only one chunk's activations live at a time. The result equals the plain full-batch
gradient up to float rounding.

Chunks take rows ``c, c + n, c + 2n, ...`` (a strided split), so each chunk keeps the batch's
"data" sharding: every device encodes its share of every chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxir.training.task import GradFn

# (params, inputs [N, ...] pytree, rng) -> embeddings pytree with leading dim N.
EncodeFn = Callable[[Any, Any, jax.Array], Any]
# (embeddings {field: [N, ...]}, batch) -> (loss, metrics).
EmbeddingLossFn = Callable[[Mapping[str, Any], Any], tuple[jax.Array, Mapping[str, jax.Array]]]


def _to_chunks(tree: Any, chunk_size: int) -> Any:
    """[N, ...] -> [N / chunk_size, chunk_size, ...] with chunk c = rows c, c+n, c+2n, ..."""
    def one(x):
        n_rows = x.shape[0]
        if n_rows % chunk_size:
            raise ValueError(f"GradCache: {n_rows} rows are not divisible by chunk_size "
                             f"{chunk_size} (leaf shape {x.shape})")
        return jnp.moveaxis(x.reshape(chunk_size, n_rows // chunk_size, *x.shape[1:]), 1, 0)
    return jax.tree_util.tree_map(one, tree)


def _from_chunks(tree: Any) -> Any:
    """Inverse of ``_to_chunks``: [n, chunk_size, ...] -> [n * chunk_size, ...]."""
    def one(x):
        return jnp.moveaxis(x, 0, 1).reshape(x.shape[0] * x.shape[1], *x.shape[2:])
    return jax.tree_util.tree_map(one, tree)


def _encode_all(encode: EncodeFn, params: Any, chunks: Any, rng: jax.Array) -> Any:
    """Step 1: forward every chunk under lax.map; nothing here is differentiated."""
    frozen = jax.lax.stop_gradient(params)
    n = jax.tree_util.tree_leaves(chunks)[0].shape[0]

    def one(args):
        i, chunk = args
        return encode(frozen, chunk, jax.random.fold_in(rng, i))
    return _from_chunks(jax.lax.map(one, (jnp.arange(n), chunks)))


def _backprop_chunks(encode: EncodeFn, params: Any, chunks: Any, emb_grads: Any,
                     rng: jax.Array, grads: Any) -> Any:
    """Step 3: grads += sum over chunks of vjp(encode)(cached embedding gradient)."""
    n = jax.tree_util.tree_leaves(chunks)[0].shape[0]

    def body(acc, args):
        i, chunk, g_emb = args
        _, vjp = jax.vjp(lambda p: encode(p, chunk, jax.random.fold_in(rng, i)), params)
        (g,) = vjp(g_emb)
        return jax.tree_util.tree_map(lambda a, b: a + b.astype(a.dtype), acc, g), None

    grads, _ = jax.lax.scan(body, grads, (jnp.arange(n), chunks, emb_grads))
    return grads


def gradcache_grad_fn(encoders: Mapping[str, EncodeFn], loss_from_embeddings: EmbeddingLossFn,
                      *, chunk_size: int) -> GradFn:
    """A ``Task.grad_fn``: ``(params, batch, rng) -> ((loss, metrics), grads)``.

    ``batch[field]`` holds the inputs of ``encoders[field]`` (leading dim N_field, divisible by
    ``chunk_size``); ``loss_from_embeddings`` sees ``{field: embeddings}`` and the whole batch.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    fields = sorted(encoders)

    def grad_fn(params, batch, rng):
        rngs = {f: jax.random.fold_in(rng, k) for k, f in enumerate(fields)}
        chunks = {f: _to_chunks(batch[f], chunk_size) for f in fields}
        embs = {f: _encode_all(encoders[f], params, chunks[f], rngs[f]) for f in fields}
        (loss, metrics), emb_grads = jax.value_and_grad(
            lambda e: loss_from_embeddings(e, batch), has_aux=True)(embs)
        # Accumulate in fp32 even when params arrive in bf16.
        grads = jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
        for f in fields:
            g_chunks = _to_chunks(emb_grads[f], chunk_size)
            grads = _backprop_chunks(encoders[f], params, chunks[f], g_chunks, rngs[f], grads)
        return (loss, metrics), grads

    return grad_fn
