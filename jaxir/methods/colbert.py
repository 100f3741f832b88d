"""ColBERTv2 late interaction: BERT token states -> Linear(hidden -> dim, no bias) -> L2 normalise.

    query    = [CLS] [Q] q_1 .. q_n [SEP] [MASK] .. [MASK]   exactly query_maxlen tokens; no token
               attends to the [MASK] keys (unless attend_to_mask_tokens), yet all query_maxlen
               output vectors enter MaxSim (query augmentation)
    document = [CLS] [D] d_1 .. d_m [SEP]                    truncated to doc_maxlen; punctuation
               (each char of string.punctuation) and padding are masked out after encoding
    S(q, d)  = sum_i max_j <Q_i, D_j>                          (jaxir.ops.maxsim)
    loss     = KL(softmax(t / tau) || softmax(s / tau)) over each query's n-way candidates
               + in-batch CE (label: own column 0; other queries' passages are negatives)

[Q] and [D] are the vocabulary's [unused0] and [unused1] (config.query_marker / doc_marker; a
PyLate checkpoint's tokenizer adds its own "[Q] " / "[D] " tokens).
"""
from __future__ import annotations

import dataclasses
import string
from typing import Iterator, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxir.methods.colbert_config import ColBERTConfig
from jaxir.methods.encoding import iter_encoded
from jaxir.models.bert import bert_apply, dropout_keys, init_params
from jaxir.models.heads import Projection, l2_normalize
from jaxir.models.hf import load_bert, params_fingerprint
from jaxir.ops import losses
from jaxir.ops.maxsim import maxsim_all_pairs, maxsim_nway
from jaxir.text import Batch, assemble, load_tokenizer, tokenize


@dataclasses.dataclass(frozen=True)
class ColBERTTokens:
    """Token ids ColBERT adds or masks."""

    q_marker: int
    d_marker: int
    mask: int
    punctuation: tuple[int, ...]

    @classmethod
    def from_tokenizer(cls, tokenizer, query_marker: str = "[unused0]",
                       doc_marker: str = "[unused1]") -> "ColBERTTokens":
        q, d = tokenizer.convert_tokens_to_ids([query_marker, doc_marker])
        for marker, i in ((query_marker, q), (doc_marker, d)):
            if i is None or i == tokenizer.unk_token_id:
                raise ValueError(f"the tokenizer has no marker token {marker!r}")
        # As in ColBERT: the first WordPiece of each punctuation character.
        punct = {tokenizer.encode(c, add_special_tokens=False)[0] for c in string.punctuation}
        return cls(int(q), int(d), int(tokenizer.mask_token_id), tuple(sorted(punct)))


class ColBERTModel:
    """Static parts (configs, tokenizer, special ids, pretrained backbone) + pure functions of params.

    params = {"bert": BertEncoder params, "projection": {"dense": {"kernel": [H, dim]}}}.
    Pass `bert_config` (and optionally `bert_params`) to use another backbone, e.g. a tiny test BERT.
    """

    def __init__(self, config: ColBERTConfig = ColBERTConfig(), *, bert_config=None,
                 bert_params=None, tokenizer=None):
        if bert_config is None:
            bert_config, bert_params = load_bert(config.model)
        self.config, self._pretrained = config, bert_params
        self.bert_config = bert_config.with_dropout(config.dropout)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.model)
        self.tokens = ColBERTTokens.from_tokenizer(self.tokenizer, config.query_marker, config.doc_marker)
        self._punct = np.asarray(self.tokens.punctuation, np.int32)
        self._query_fn = jax.jit(lambda p, i, m, t: self.encode_queries(p, _arrays(i, m, t)))
        self._doc_fn = jax.jit(lambda p, i, m, t: self.encode_docs(p, _arrays(i, m, t)))

    # ---- params ------------------------------------------------------------------------------
    def init(self, rng: jax.Array, batch=None) -> dict:
        """Pretrained backbone (random if none was given) + a fresh projection seeded by rng."""
        del batch  # shapes come from the config
        rng_bert, rng_proj = jax.random.split(rng)
        bert = self._pretrained
        if bert is None:
            bert = init_params(self.bert_config, rng_bert)
        proj = Projection(self.config.dim).init(rng_proj, jnp.zeros((1, self.bert_config.hidden_size)))
        return {"bert": bert, "projection": proj["params"]}

    def fingerprint(self, params) -> str:
        return params_fingerprint(params)

    # ---- pure encoders -----------------------------------------------------------------------
    def _project(self, params, ids, attention, token_types, rng=None):
        hidden = bert_apply(self.bert_config, params["bert"], ids, attention, token_types, rng=rng)
        out = Projection(self.config.dim, dtype=self.bert_config.dtype).apply(
            {"params": params["projection"]}, hidden)
        return l2_normalize(out)

    def encode_queries(self, params, batch, *, rng=None) -> tuple[jax.Array, jax.Array]:
        """{"input_ids", "attention_mask"} [B, Lq] -> (Q [B, Lq, dim] unit rows, q_mask [B, Lq]).

        attention_mask is 1 on real tokens, 0 on [MASK] padding. q_mask is True on every position
        of a real row (all-padding batch rows get False).
        """
        ids, attention = batch["input_ids"], batch["attention_mask"]
        chex.assert_rank([ids, attention], 2)
        keys = attention.astype(bool)
        if self.config.attend_to_mask_tokens:
            keys = keys | (ids == self.tokens.mask)
        q = self._project(params, ids, keys.astype(jnp.int32), batch.get("token_type_ids"), rng)
        q_mask = jnp.broadcast_to(jnp.any(attention.astype(bool), axis=1, keepdims=True), ids.shape)
        return q, q_mask

    def doc_token_mask(self, ids: jax.Array, attention: jax.Array) -> jax.Array:
        """[B, Ld] bool: real tokens that are not punctuation (when mask_punctuation)."""
        keep = attention.astype(bool)
        if self.config.mask_punctuation:
            keep = keep & ~jnp.isin(ids, jnp.asarray(self._punct))
        return keep

    def encode_docs(self, params, batch, *, rng=None) -> tuple[jax.Array, jax.Array]:
        """{"input_ids", "attention_mask"} [B, Ld] -> (D [B, Ld, dim], d_mask [B, Ld] bool).

        The encoder attends to punctuation; it is removed afterwards (masked rows of D are 0).
        """
        ids, attention = batch["input_ids"], batch["attention_mask"]
        chex.assert_rank([ids, attention], 2)
        d = self._project(params, ids, attention, batch.get("token_type_ids"), rng)
        d_mask = self.doc_token_mask(ids, attention)
        return d * d_mask[..., None].astype(d.dtype), d_mask

    def score(self, params, queries, docs) -> jax.Array:
        """All-pairs MaxSim [Bq, Bd] of a query batch against a document batch."""
        q, q_mask = self.encode_queries(params, queries)
        d, d_mask = self.encode_docs(params, docs)
        return maxsim_all_pairs(q, q_mask, d, d_mask)

    # ---- training ------------------------------------------------------------------------------
    def loss_fn(self, params, batch, rng=None):
        """Distillation (or n-way CE) + in-batch CE over a batch of n-way tuples.

        batch: q_ids, q_mask [B, Lq]; d_ids, d_mask [B, N, Ld] (attention masks); teacher [B, N]
        (needed when config.distillation); optional valid [B, N] for padded candidates.
        Returns (loss, {"nway": .., "ib": .., "acc": mean[argmax_n s_bn == 0]}).
        """
        b, n, ld = batch["d_ids"].shape
        r_q, r_d = dropout_keys(rng, 2)  # rng (training) turns the backbone's dropout on
        q, q_mask = self.encode_queries(params, {"input_ids": batch["q_ids"],
                                                 "attention_mask": batch["q_mask"]}, rng=r_q)
        d, d_mask = self.encode_docs(params, {"input_ids": batch["d_ids"].reshape(b * n, ld),
                                              "attention_mask": batch["d_mask"].reshape(b * n, ld)}, rng=r_d)
        valid = batch.get("valid")
        valid = jnp.ones((b, n), bool) if valid is None else valid.astype(bool)
        student = maxsim_nway(q, q_mask, d.reshape(b, n, ld, -1), d_mask.reshape(b, n, ld))
        if self.config.distillation:
            nway = losses.kl_distillation(student, batch["teacher"].astype(jnp.float32),
                                          temperature=self.config.distill_temperature, mask=valid)
        else:
            nway = losses.localized_contrastive(student, mask=valid)
        ib = jnp.zeros((), jnp.float32)
        if self.config.in_batch_negatives:
            all_scores = maxsim_all_pairs(q, q_mask, d, d_mask)  # [B, B * N]
            ib = losses.inbatch_cross_entropy(all_scores, group_size=n,
                                              mask=jnp.broadcast_to(valid.reshape(1, -1), (b, b * n)))
        masked = jnp.where(valid, student, -jnp.inf)
        acc = jnp.mean((jnp.argmax(masked, axis=1) == 0).astype(jnp.float32))
        return nway + ib, {"nway": nway, "ib": ib, "acc": acc}

    # ---- text -> arrays ------------------------------------------------------------------------
    def tokenize_queries(self, texts: Sequence[str]) -> Batch:
        """Query texts -> fixed [N, query_maxlen] arrays, [MASK]-padded (attention 0 there)."""
        return assemble(self.tokenizer, tokenize(self.tokenizer, texts, what="query"),
                        max_length=self.config.query_maxlen, prefix=(self.tokens.q_marker,),
                        pad_id=self.tokens.mask, fixed_length=True)

    def tokenize_docs(self, texts: Sequence[str], *, fixed_length: bool = True) -> Batch:
        """Document texts -> [N, doc_maxlen] arrays ([PAD]-padded; a bucket width if not fixed)."""
        return assemble(self.tokenizer, tokenize(self.tokenizer, texts, what="document"),
                        max_length=self.config.doc_maxlen, prefix=(self.tokens.d_marker,),
                        fixed_length=fixed_length)

    def encode_query_texts(self, params, texts: Sequence[str], *, progress: bool = True) -> np.ndarray:
        """Query texts -> float32 [N, query_maxlen, dim] (every position is a MaxSim term)."""
        out = np.zeros((len(texts), self.config.query_maxlen, self.config.dim), np.float32)
        for idx, _, (q, _) in iter_encoded(
                self._query_fn, params, self.tokenizer, texts, max_length=self.config.query_maxlen,
                batch_size=self.config.batch_size, prefix=(self.tokens.q_marker,),
                pad_id=self.tokens.mask, buckets=(self.config.query_maxlen,),
                desc="encode queries", progress=progress, what="query"):
            out[idx] = np.asarray(q, np.float32)[: len(idx)]
        return out

    def iter_doc_embeddings(self, params, texts: Sequence[str], *, progress: bool = True,
                            desc: str = "encode documents") -> Iterator[tuple[np.ndarray, list]]:
        """Yield (row indices, [n_tok_i, dim] float32 per doc) batch by batch (length-sorted).

        Each doc keeps only its unmasked tokens ([CLS], [D], words, [SEP]; no punctuation/padding).
        """
        for idx, _, (d, d_mask) in iter_encoded(
                self._doc_fn, params, self.tokenizer, texts, max_length=self.config.doc_maxlen,
                batch_size=self.config.batch_size, prefix=(self.tokens.d_marker,),
                desc=desc, progress=progress, what="document"):
            d, d_mask = np.asarray(d, np.float32), np.asarray(d_mask)
            yield idx, [d[r][d_mask[r]] for r in range(len(idx))]

    def encode_doc_texts(self, params, texts: Sequence[str], *, progress: bool = True) -> list:
        """Document texts -> list (input order) of float32 [n_tok_i, dim] token matrices."""
        out: list = [None] * len(texts)
        for idx, embs in self.iter_doc_embeddings(params, texts, progress=progress):
            for i, e in zip(idx, embs):
                out[i] = e
        return out


def _arrays(ids, mask, token_types) -> dict:
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": token_types}
