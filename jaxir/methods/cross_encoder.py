"""Cross-encoder reranker: one BERT pass over the concatenated pair, a linear head on [CLS].

    input   = [CLS] q [SEP] d [SEP]            token_type 0 on "[CLS] q [SEP]", 1 on "d [SEP]"
    s(q, d) = w . BERT(input)[CLS] + b          (ScoreHead, new; the encoder starts from MiniLM)
              w . tanh(P BERT(input)[CLS] + c) + b   with config.pooler (BertForSequenceClassification)
    loss    = mean_b -log softmax(s_b0, s_b1, .., s_bn)[0]   localized contrastive estimation over
              1 positive (column 0) + n hard negatives; invalid (padded) candidates are masked
    rerank  = s, or with alpha set: alpha * minmax(s) + (1 - alpha) * minmax(first-stage score)
              (min-max per query over the reranked candidates)

params = {"bert": BertEncoder params, "head": {"dense": {"kernel": [H, 1], "bias": [1]}}}, plus
"pooler": {"kernel": [H, H], "bias": [H]} with config.pooler.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxir.methods.cross_encoder_config import CrossEncoderConfig
from jaxir.models.bert import BertConfig, bert_apply, init_params
from jaxir.models.hf import load_bert, params_fingerprint
from jaxir.models.heads import ScoreHead
from jaxir.ops import losses
from jaxir.ops.scores import minmax_normalize
from jaxir.text import DEFAULT_BUCKETS, assemble, length_sorted_batches, load_tokenizer, tokenize

METHOD = "cross-encoder"


def init_pair_params(rng: jax.Array, bert_config: BertConfig, bert=None, head=None) -> dict:
    """{"bert", "head"}: the given encoder / score head, else fresh ones seeded by `rng` (the tree
    of every model scoring a pair from [CLS]: the cross-encoder and MICE)."""
    rng_bert, rng_head = jax.random.split(rng)
    bert = bert if bert is not None else init_params(bert_config, rng_bert)
    head = head if head is not None else ScoreHead().init(rng_head, jnp.zeros((1, bert_config.hidden_size)))["params"]
    return {"bert": bert, "head": head}


class CrossEncoderModel:
    """Static parts (configs, tokenizer, pretrained backbone) + pure functions of params.

    Pass ``bert_config`` (and optionally ``bert_params``) for another backbone, e.g. a tiny test
    BERT; without ``bert_params`` the encoder is randomly initialised by ``init``.
    """

    def __init__(self, config: CrossEncoderConfig = CrossEncoderConfig(), *, bert_config=None,
                 bert_params=None, head_params=None, pooler_params=None, tokenizer=None):
        if bert_config is None:
            bert_config, bert_params = load_bert(config.model)
        self.config, self._pretrained = config, bert_params
        self.bert_config = bert_config.with_dropout(config.dropout)
        self._head = head_params  # a trained score head to start from (warm start)
        self._pooler = pooler_params
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.model)

    def init(self, rng: jax.Array, batch: Any = None) -> dict:
        """Pretrained encoder (random if none was given) + the given score head, else a fresh one
        seeded by ``rng``."""
        del batch  # shapes come from the configs
        params = init_pair_params(rng, self.bert_config, self._pretrained, self._head)
        if self.config.pooler:
            h = self.bert_config.hidden_size
            params["pooler"] = self._pooler if self._pooler is not None else nn.Dense(h).init(
                jax.random.fold_in(rng, 2), jnp.zeros((1, h)))["params"]
        return params

    def description(self) -> dict:
        """JSON-able identity: written into checkpoints, checked on restore."""
        return {"method": METHOD, "model": dataclasses.asdict(self.config),
                "bert": self.bert_config.to_dict()}

    def score(self, params, batch, *, rng=None) -> jax.Array:
        """{"input_ids", "attention_mask", "token_type_ids"} [B, L] -> scores [B] (float32);
        `rng` (training) turns the backbone's dropout on."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        chex.assert_rank([ids, mask], 2)
        hidden = bert_apply(self.bert_config, params["bert"], ids, mask, batch["token_type_ids"], rng=rng)
        pooled = hidden[:, 0]
        if self.config.pooler:
            pooled = jnp.tanh(nn.Dense(self.bert_config.hidden_size, dtype=self.bert_config.dtype).apply(
                {"params": params["pooler"]}, pooled))
        return ScoreHead(dtype=self.bert_config.dtype).apply({"params": params["head"]},
                                                             pooled).astype(jnp.float32)

    def loss_fn(self, params, batch, rng=None):
        """LCE over n-way tuples: arrays [B, N, L] (column 0 the positive), valid [B, N].

        Returns (loss, {"acc": mean_b [argmax_n s_bn == 0], "margin": mean s_b0 - max_n>0 s_bn}).
        """
        b, n, length = batch["input_ids"].shape
        flat = {k: batch[k].reshape(b * n, length)
                for k in ("input_ids", "attention_mask", "token_type_ids")}
        scores = self.score(params, flat, rng=rng).reshape(b, n)
        valid = batch.get("valid")
        valid = jnp.ones((b, n), bool) if valid is None else valid.astype(bool)
        loss = losses.localized_contrastive(scores, mask=valid)
        has_neg = jnp.any(valid[:, 1:], axis=1)
        best_neg = jnp.max(jnp.where(valid[:, 1:], scores[:, 1:], jnp.finfo(jnp.float32).min), 1)
        acc = jnp.mean(jnp.where(has_neg, scores[:, 0] > best_neg, True).astype(jnp.float32))
        margin = jnp.mean(jnp.where(has_neg, scores[:, 0] - best_neg, 0.0))
        return loss, {"acc": acc, "margin": margin}

    def fingerprint(self, params) -> str:
        return params_fingerprint(params)


def interpolate_all(scores, first_stage, alpha: float | None, queries=None) -> list:
    """Each query's reranker scores, interpolated with its first-stage scores when alpha is
    set (every reranker's last step); alpha None returns them as they are. A nan or inf score
    is a NonFiniteError naming the query (`queries`: its text; else its position): min-max
    would turn it into a number, and the ranking into the first stage's without a word."""
    scores = list(scores)
    names = list(queries) if queries is not None else [f"#{i + 1} of the batch" for i in range(len(scores))]
    for s, name in zip(scores, names):
        check_finite_scores(s, name)
    if alpha is None:
        return scores
    if first_stage is None or any(f is None for f in first_stage):
        raise ValueError("alpha is set: pass the first-stage scores of every query")
    return [interpolate(s, np.asarray(f, np.float32), alpha, query=name)
            for s, f, name in zip(scores, first_stage, names)]


def check_finite_scores(scores, query) -> None:
    """NonFiniteError when a reranker's scores [n] for `query` hold nan or inf."""
    arr = np.asarray(scores, np.float32)
    ok = np.isfinite(arr)
    if not ok.all():
        from jaxir.errors import NonFiniteError

        bad = int(np.argmax(~ok))
        raise NonFiniteError(f"the reranker scored query {query!r} {arr[bad]} (candidate {bad + 1} of "
                             f"{arr.size}; {int((~ok).sum())} not finite): the model's scores are not numbers")


def interpolate(ce_scores: np.ndarray, first_stage: np.ndarray, alpha: float, *,
                query: str = "?") -> np.ndarray:
    """alpha * minmax(ce) + (1 - alpha) * minmax(first_stage), per query.  [n], [n] -> [n].

    n = 0 (a query whose first stage found nothing) gives an empty array. A nan / inf reranker
    score is a NonFiniteError naming `query` (min-max has no meaning for it).
    """
    ce_scores, first_stage = np.asarray(ce_scores, np.float32), np.asarray(first_stage, np.float32)
    if ce_scores.shape != first_stage.shape or ce_scores.ndim != 1:
        raise ValueError(f"ce scores {ce_scores.shape} and first-stage scores {first_stage.shape} "
                         "must be equal 1-D")
    if ce_scores.size == 0:
        return ce_scores
    check_finite_scores(ce_scores, query)
    ce = minmax_normalize(jnp.asarray(ce_scores, jnp.float32)[None])[0]
    fs = minmax_normalize(jnp.asarray(first_stage, jnp.float32)[None])[0]
    return np.asarray(alpha * ce + (1.0 - alpha) * fs, np.float32)


class PairScorer:
    """Jitted, length-bucketed scoring of many (query, document) pairs with fixed batch rows."""

    def __init__(self, model: CrossEncoderModel, params, *, buckets: Sequence[int] = DEFAULT_BUCKETS):
        self.model, self.params, self.buckets = model, params, buckets
        self._fn = jax.jit(lambda p, i, m, t: model.score(
            p, {"input_ids": i, "attention_mask": m, "token_type_ids": t}))

    def score_tokens(self, q_tokens: Sequence[Sequence[int]], d_tokens: Sequence[Sequence[int]],
                     *, desc: str | None = None) -> np.ndarray:
        """Pairs of token lists (no special tokens) -> float32 scores [P] in input order.

        desc: show a progress bar (over pair batches) with this label.
        """
        cfg = self.model.config
        lengths = [min(len(q) + len(d) + 3, cfg.pair_maxlen) for q, d in zip(q_tokens, d_tokens)]
        out = np.zeros(len(lengths), np.float32)
        batches = length_sorted_batches(lengths, cfg.rerank_batch_size)
        for idx in tqdm(batches, desc=desc, unit="batch", disable=desc is None):
            batch = assemble(self.model.tokenizer, [q_tokens[i] for i in idx],
                             pairs=[d_tokens[i] for i in idx], max_length=cfg.pair_maxlen,
                             pad_rows_to=cfg.rerank_batch_size, buckets=self.buckets)
            scores = self._fn(self.params, batch.input_ids, batch.attention_mask,
                              batch.token_type_ids)
            out[idx] = np.asarray(scores, np.float32)[: len(idx)]
        return out

    def score_texts(self, queries: Sequence[str], doc_lists: Sequence[Sequence[str]], *,
                    desc: str | None = None) -> list[np.ndarray]:
        """queries [Q], doc_lists [Q][n_q] -> per query float32 scores [n_q] (batched across queries)."""
        tok = self.model.tokenizer
        q_tok = tokenize(tok, queries, what="query")
        flat_docs = [d for docs in doc_lists for d in docs]
        d_tok = tokenize(tok, flat_docs, what="document") if flat_docs else []
        owners = [i for i, docs in enumerate(doc_lists) for _ in docs]
        scores = self.score_tokens([q_tok[i] for i in owners], d_tok, desc=desc)
        bounds = np.cumsum([0] + [len(docs) for docs in doc_lists])
        return [scores[bounds[i]:bounds[i + 1]] for i in range(len(doc_lists))]
