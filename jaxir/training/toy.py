"""A tiny dual encoder (embedding + one dense layer) for engine tests and smoke runs.

    e(x)   = normalize(tanh(dropout(mean_{t: x_t != 0} E[x_t]) @ W + b))    [B, H]
    loss   = mean_i CE(softmax_j(<e(q_i), e(d_j)> / temperature), i)        in-batch InfoNCE

Token id 0 is padding. The param rules put the embedding's vocab axis and the dense output axis
on "model", so the engine's tensor-parallel path is exercised too.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxir.parallel import EMBED, MLP, VOCAB
from jaxir.training.task import Task

TOY_RULES = ((r"embed/embedding$", (VOCAB, EMBED)), (r"dense/kernel$", (EMBED, MLP)),
             (r"dense/bias$", (MLP,)))


def toy_init(rng: jax.Array, batch: Any, *, vocab: int = 64, dim: int = 16,
             out: int = 8) -> dict:
    del batch  # shapes are fixed by the config
    k_emb, k_dense = jax.random.split(rng)
    return {"embed": {"embedding": jax.random.normal(k_emb, (vocab, dim)) * 0.5},
            "dense": {"kernel": jax.random.normal(k_dense, (dim, out)) / np.sqrt(dim),
                      "bias": jnp.zeros((out,))}}


def toy_encode(params: dict, tokens: jax.Array, rng: jax.Array | None, *,
               dropout: float = 0.0) -> jax.Array:
    """tokens [B, L] int32 -> unit vectors [B, H] (float32); ``rng=None`` disables dropout."""
    mask = (tokens != 0).astype(params["embed"]["embedding"].dtype)[..., None]
    emb = params["embed"]["embedding"][tokens] * mask
    pooled = emb.sum(1) / jnp.maximum(mask.sum(1), 1.0)
    if dropout > 0 and rng is not None:
        keep = jax.random.bernoulli(rng, 1.0 - dropout, pooled.shape)
        pooled = jnp.where(keep, pooled / (1.0 - dropout), 0.0)
    h = jnp.tanh(pooled @ params["dense"]["kernel"] + params["dense"]["bias"])
    h = h.astype(jnp.float32)
    return h / jnp.maximum(jnp.linalg.norm(h, axis=-1, keepdims=True), 1e-6)


def toy_infonce(q: jax.Array, d: jax.Array, *, temperature: float = 0.1):
    """In-batch InfoNCE of queries [B, H] against their docs [B, H] -> (loss, {"acc": ...})."""
    scores = q @ d.T / temperature
    labels = jnp.arange(scores.shape[0])
    logp = jax.nn.log_softmax(scores, axis=-1)
    loss = -jnp.mean(logp[labels, labels])
    acc = jnp.mean((jnp.argmax(scores, -1) == labels).astype(jnp.float32))
    return loss, {"acc": acc}


def toy_task(*, vocab: int = 64, dim: int = 16, out: int = 8, dropout: float = 0.1) -> Task:
    """The toy dual encoder as a Task."""
    def loss_fn(params, batch, rng):
        rq, rd = jax.random.split(rng) if rng is not None else (None, None)
        return toy_infonce(toy_encode(params, batch["query"], rq, dropout=dropout),
                           toy_encode(params, batch["doc"], rd, dropout=dropout))

    config = {"name": "toy", "vocab": vocab, "dim": dim, "out": out, "dropout": dropout}
    return Task(init=lambda rng, b: toy_init(rng, b, vocab=vocab, dim=dim, out=out),
                loss_fn=loss_fn, param_rules=TOY_RULES, config=config)


def toy_data(n: int, *, seed: int = 0, vocab: int = 64, q_len: int = 6,
             d_len: int = 10) -> dict[str, np.ndarray]:
    """n (query, doc) pairs that share tokens, some positions padded (id 0); int32 arrays."""
    rng = np.random.default_rng(seed)
    doc = rng.integers(1, vocab, size=(n, d_len)).astype(np.int32)
    query = doc[:, :q_len].copy()
    query[:, q_len // 2:] = rng.integers(1, vocab, size=(n, q_len - q_len // 2))
    doc[rng.random((n, d_len)) < 0.2] = 0
    query[:, -1] = 0
    return {"query": query, "doc": doc}
