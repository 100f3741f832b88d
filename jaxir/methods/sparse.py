"""Learned sparse retrieval with an MLM-head encoder: inference-free (no query model, the
default) or SPLADE (`query_encoder="mlm"`: the same encoder on queries).

    document  w_t = log(1 + ReLU(max_{l valid} logit_{l,t}))  (optional second log1p)
              logits = MLMHead(BERT(doc)) with the decoder tied to the word embeddings;
              special and [unused*] tokens get 0 (no query can ever contain them)
    query     idf: q_t = idf_t for each distinct WordPiece of the query (no special tokens), else 0
              mlm: q = the document encoder's w of [CLS] query [SEP] (SPLADE's siamese encoder)
    score     s(q, d) = sum_t q_t w_{d,t}
    loss      KL(softmax(teacher / tau) || softmax(s / tau)), teacher = scale * weighted mean of
              per-query min-max normalised teacher scores (or Margin-MSE / InfoNCE)
              + lambda(step) * FLOPS, lambda(step) = lambda_d * min(1, (step + 1) / T)^2
              "idf_aware": FLOPS(w) while the ranking sees idf * w; "uniform": FLOPS(idf * w)
              mlm: + lambda_q(step) * FLOPS(q), lambda_q with the same warm-up (SPLADE's two terms)
    optional  w += BM25 tf-saturation of the whole document (`lexical_prior`; the head learns the rest)

all-MiniLM-L6-v2 ships no MLM head. The head starts as (see `init_head`)
    logits_t = <LN(gelu(h + c)), E_t> + b0,  transform = identity, bias c = gelu_shift
For c >> |h| gelu is the identity and LN removes the shift, so logits = <standardised h, E_t> + b0:
the token's own embedding scores highest (59 % top-1 on SciFact docs, the same as raw <h, E_t>).
Pooled over ~100 tokens nearly every logit is positive, so b0 = init_vocab_bias sets the initial
sparsity (measured on SciFact docs: b0 = -4 -> 2.4k terms/doc, -6 -> 168, -8 -> 46).
`mlm_loss_fn` warms the head up on corpus text (15 % of tokens, BERT's 80/10/10 corruption).
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxir.methods.encoding import iter_encoded
from jaxir.methods.lexical_prior import LexicalPrior, add_vectors
from jaxir.methods.stem_classes import StemClasses
from jaxir.methods.sparse_config import SparseConfig
from jaxir.models.bert import bert_apply, dropout_keys, init_params
from jaxir.models.heads import MLMHead
from jaxir.models.hf import load_bert, params_fingerprint
from jaxir.ops import losses, scores
from jaxir.ops.sparse import flops as flops_of
from jaxir.ops.sparse import (flops_weight, idf_aware_flops, idf_query_vector, inbatch_columns,
                              masked_max_pool, sparse_doc_weights, sparse_scores_inbatch,
                              sparse_scores_nway, topk_prune)
from jaxir.text import load_tokenizer


def unreachable_token_ids(tokenizer) -> np.ndarray:
    """Ids no query can contain: special tokens and [unused*] (ColBERT's markers live there)."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    unused = [i for i, t in enumerate(tokens) if t.startswith("[unused")]
    return np.unique(np.asarray(list(tokenizer.all_special_ids) + unused, np.int32))


def scoring_token_ids(idf: np.ndarray, special_ids: np.ndarray, min_idf: float = 0.0) -> np.ndarray:
    """Sorted ids a query can score on: idf_t > min_idf and not a special/[unused] token."""
    keep = np.asarray(idf) > min_idf
    keep[np.asarray(special_ids, np.int64)] = False
    return np.flatnonzero(keep).astype(np.int32)


def init_head(hidden_size: int, vocab_size: int, *, gelu_shift: float, vocab_bias: float) -> dict:
    """MLMHead params: identity transform with bias c, unit LayerNorm, vocabulary bias b0."""
    return {"transform": {"kernel": jnp.eye(hidden_size, dtype=jnp.float32),
                          "bias": jnp.full((hidden_size,), gelu_shift, jnp.float32)},
            "norm": {"scale": jnp.ones((hidden_size,), jnp.float32),
                     "bias": jnp.zeros((hidden_size,), jnp.float32)},
            "bias": jnp.full((vocab_size,), vocab_bias, jnp.float32)}


class SparseModel:
    """Static parts (configs, tokenizer, IDF table) + pure functions of params.

    params = {"bert": BertEncoder params, "head": MLMHead params}. `idf` [V] is the query-side
    table (training needs it; encoding documents does not).
    """

    def __init__(self, config: SparseConfig = SparseConfig(), *, idf=None, bert_config=None,
                 bert_params=None, tokenizer=None):
        if bert_config is None:
            bert_config, bert_params = load_bert(config.model)
        self.config, self._pretrained = config, bert_params
        self.bert_config = bert_config.with_dropout(config.dropout)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.model)
        self.special_ids = unreachable_token_ids(self.tokenizer)
        self.idf = None if idf is None else np.asarray(idf, np.float32)
        if self.idf is not None and self.idf.shape != (bert_config.vocab_size,):
            raise ValueError(f"idf has shape {self.idf.shape}, expected ({bert_config.vocab_size},)")
        # Training scores over the scoring vocabulary of its idf table (None: every token).
        self.vocab_ids = None if self.idf is None else self.scoring_ids(self.idf)
        self._doc_fn = jax.jit(lambda p, i, m, t, v: self.encode_docs(
            p, {"input_ids": i, "attention_mask": m, "token_type_ids": t}, top_k=config.top_k,
            vocab_ids=v))
        self._query_fn = jax.jit(lambda p, i, m, t, v: self.encode_docs(
            p, {"input_ids": i, "attention_mask": m, "token_type_ids": t}, vocab_ids=v))

    def scoring_ids(self, idf: np.ndarray) -> np.ndarray:
        """The scoring vocabulary for an idf table [V] (see SparseConfig.min_idf)."""
        return scoring_token_ids(idf, self.special_ids, self.config.min_idf)

    def init(self, rng: jax.Array, batch=None) -> dict:
        """Pretrained backbone (random if none was given) + the identity-initialised head."""
        del batch
        cfg, bc = self.config, self.bert_config
        bert = self._pretrained if self._pretrained is not None else init_params(bc, rng)
        head = init_head(bc.hidden_size, bc.vocab_size, gelu_shift=cfg.gelu_shift,
                         vocab_bias=cfg.init_vocab_bias)
        return {"bert": bert, "head": head}

    def fingerprint(self, params) -> str:
        return params_fingerprint(params)

    # ---- pure encoders -----------------------------------------------------------------------
    def hidden(self, params, ids, mask, token_types=None, rng=None):
        return bert_apply(self.bert_config, params["bert"], ids, mask, token_types, rng=rng)

    def logits(self, params, hidden, vocab_ids=None):
        """[..., H] -> MLM logits [..., V] (decoder = the tied word embeddings), or [..., S]."""
        emb = params["bert"]["embeddings"]["word"]["embedding"]
        head = MLMHead(self.bert_config.vocab_size, self.bert_config.layer_norm_eps,
                       dtype=self.bert_config.dtype)
        return head.apply({"params": params["head"]}, hidden, emb, vocab_ids)

    def pooled_logits(self, params, hidden, mask, vocab_ids=None) -> tuple[jax.Array, jax.Array]:
        """Chunked max pooling: hidden [B, L, H], mask [B, L] -> ([B, C, V] chunk maxima, [B, C]).

        With vocab_ids [S] the last axis is S (those decoder columns only).

        Logits exist one [B, chunk, V] block at a time (rematerialised in the backward pass).
        A chunk with no valid token pools to 0, which log1p(ReLU(.)) makes harmless.
        """
        b, length, h = hidden.shape
        chunk = min(self.config.logit_chunk, length)
        n = math.ceil(length / chunk)
        pad = n * chunk - length
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        mask = jnp.pad(mask.astype(jnp.int32), ((0, 0), (0, pad)))
        hc = hidden.reshape(b, n, chunk, h).swapaxes(0, 1)  # [C, B, chunk, H]
        mc = mask.reshape(b, n, chunk).swapaxes(0, 1)       # [C, B, chunk]
        pool = jax.checkpoint(lambda x, m: masked_max_pool(self.logits(params, x, vocab_ids), m))
        pooled = jax.lax.map(lambda xs: pool(*xs), (hc, mc))  # [C, B, V]
        return pooled.swapaxes(0, 1), jnp.any(mc > 0, axis=-1).swapaxes(0, 1)

    def encode_docs(self, params, batch, *, top_k: int | None = None, vocab_ids=None, rng=None) -> jax.Array:
        """{"input_ids", "attention_mask"} [B, L] or windows [B, W, L] -> weights w [B, V] (>= 0).

        Windows of one document are encoded separately and pooled together. vocab_ids [S]
        (sorted, no special ids): only those logits are computed; every other weight is 0.
        """
        ids, mask, types = batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
        chex.assert_equal_shape([ids, mask])
        if ids.ndim == 3:  # [B, W, L]: encode B*W rows, then pool over all W*L tokens of a doc
            b, n_win, length = ids.shape
            flat = lambda x: None if x is None else x.reshape(b * n_win, length)
            hidden = self.hidden(params, flat(ids), flat(mask), flat(types), rng)
            hidden, mask = hidden.reshape(b, n_win * length, -1), mask.reshape(b, n_win * length)
        else:
            chex.assert_rank(ids, 2)
            hidden = self.hidden(params, ids, mask, types, rng)
        pooled, chunk_mask = self.pooled_logits(params, hidden, mask, vocab_ids)
        if vocab_ids is None:
            w = sparse_doc_weights(pooled, chunk_mask, special_token_ids=self.special_ids,
                                   double_log=self.config.double_log)
        else:
            w_sub = sparse_doc_weights(pooled, chunk_mask, double_log=self.config.double_log)
            w = jnp.zeros((w_sub.shape[0], self.bert_config.vocab_size), w_sub.dtype)
            w = w.at[:, vocab_ids].set(w_sub)
        return w if top_k is None else topk_prune(w, top_k)

    # ---- training ------------------------------------------------------------------------------
    def _idf(self):
        if self.idf is None:
            raise ValueError("SparseModel needs an idf table (SparseModel(config, idf=...)) to train")
        return jnp.asarray(self.idf)

    def _vocab(self):
        return None if self.vocab_ids is None else jnp.asarray(self.vocab_ids)

    def query_vectors(self, params, batch, *, rng=None) -> jax.Array:
        """q [B, V] of q_ids/q_mask [B, Lq]: idf of the distinct WordPieces, or with the mlm
        encoder its weights of the [CLS] query [SEP] rows."""
        if self.config.query_encoder == "mlm":
            return self.encode_docs(params, {"input_ids": batch["q_ids"], "attention_mask": batch["q_mask"]},
                                    vocab_ids=self._vocab(), rng=rng)
        return idf_query_vector(batch["q_ids"], batch["q_mask"], self._idf())

    def student_scores(self, params, batch, *, rng=None) -> tuple[jax.Array, jax.Array]:
        """(s = q . w, the head's doc weights w [B*N, V], q [B, V]) for q_ids/q_mask [B, Lq], d_ids/d_mask
        [B, N, Ld], and with a lexical prior prior_ids/prior_vals [B, N, P] (added to w for s).

        s is [B, N] (own candidates), or [B, B*N] with in_batch_negatives (`inbatch_columns`).
        """
        b, n, ld = batch["d_ids"].shape
        r_q, r_d = dropout_keys(rng, 2)  # rng (training) turns the backbone's dropout on
        q = self.query_vectors(params, batch, rng=r_q)
        w = self.encode_docs(params, {"input_ids": batch["d_ids"].reshape(b * n, ld),
                                      "attention_mask": batch["d_mask"].reshape(b * n, ld)},
                             vocab_ids=self._vocab(), rng=r_d)
        total = w
        if "prior_ids" in batch:  # padding entries are (id 0, weight 0): they add nothing
            chex.assert_equal_shape([batch["prior_ids"], batch["prior_vals"]])
            rows = jnp.arange(b * n)[:, None]
            total = w.at[rows, batch["prior_ids"].reshape(b * n, -1)].add(
                batch["prior_vals"].reshape(b * n, -1).astype(w.dtype))
        pair = sparse_scores_inbatch if self.config.in_batch_negatives else sparse_scores_nway
        return pair(q, total.reshape(b, n, -1)), w, q

    def _ranking(self, student, batch, valid):
        cfg = self.config
        if cfg.ranking_loss == "infonce":
            return losses.localized_contrastive(student / cfg.temperature, mask=valid)
        per_teacher = batch["teachers"].astype(jnp.float32)  # [B, K, N]
        teacher = scores.ensemble_teacher_scores(
            [per_teacher[:, k] for k in range(per_teacher.shape[1])], weights=cfg.teacher_weights,
            normalize=cfg.teacher_normalize, scale=cfg.teacher_scale, mask=valid)
        if cfg.ranking_loss == "kl":
            return losses.kl_distillation(student, teacher, temperature=cfg.temperature, mask=valid)
        return losses.margin_mse_nway(student, teacher, mask=valid)

    def loss_fn(self, params, batch, rng=None, *, step=None):
        """Ranking loss + lambda(step) * FLOPS over a batch of n-way candidate lists.

        batch: q_ids, q_mask [B, Lq] (WordPieces, no special tokens); d_ids, d_mask [B, N, Ld];
        teachers [B, K, N] per-teacher candidate scores ([B, K, B*N] in `inbatch_columns` order
        with in_batch_negatives; not needed for infonce); optional valid [B, N]. step: the train
        step for the FLOPS warm-up (the engine passes it: the task is step_aware); None means the
        full lambda_d (evaluation).
        FLOPS and doc_nnz measure the head's weights only: the lexical prior is fixed.
        Returns (loss, {"rank", "flops", "flops_weight", "doc_nnz", "acc"}, with the mlm query
        encoder also "query_flops", "query_nnz").
        """
        cfg = self.config
        b, n, _ = batch["d_ids"].shape
        valid = batch.get("valid")
        valid = jnp.ones((b, n), bool) if valid is None else valid.astype(bool)
        student, w, q = self.student_scores(params, batch, rng=rng)
        w = w * valid.reshape(-1, 1).astype(w.dtype)  # padded candidates stay out of FLOPS
        nnz = jnp.sum(w > 0) / jnp.maximum(jnp.sum(valid), 1)
        if cfg.in_batch_negatives:
            valid = valid.reshape(-1)[jnp.asarray(inbatch_columns(b, n))]
        if "teachers" in batch:
            chex.assert_shape(batch["teachers"], (b, None, student.shape[1]))
        rank = self._ranking(student, batch, valid)
        mlm = cfg.query_encoder == "mlm"  # SPLADE: the score sees w itself, so plain FLOPS(w)
        flops = flops_of(w) if mlm else idf_aware_flops(w, self._idf(), mode=cfg.flops_mode)

        def weight(lam_max):
            return (jnp.asarray(lam_max, jnp.float32) if step is None else
                    flops_weight(step, lam=lam_max, warmup_steps=cfg.flops_warmup_steps))
        lam = weight(cfg.flops_lambda)
        acc = jnp.mean((jnp.argmax(jnp.where(valid, student, -jnp.inf), axis=1) == 0).astype(jnp.float32))
        metrics = {"rank": rank, "flops": flops, "flops_weight": lam, "doc_nnz": nnz, "acc": acc}
        loss = rank + lam * flops
        if mlm:
            metrics["query_flops"], metrics["query_nnz"] = flops_of(q), jnp.mean(jnp.sum(q > 0, axis=1))
            loss = loss + weight(cfg.query_flops_lambda) * metrics["query_flops"]
        return loss, metrics

    def mlm_loss_fn(self, params, batch, rng):
        """The MLM warm-up loss of the tied head (`jaxir.methods.sparse_mlm`)."""
        from jaxir.methods.sparse_mlm import mlm_warmup_loss

        return mlm_warmup_loss(self, params, batch, rng)

    # ---- text -> sparse vectors ---------------------------------------------------------------
    def iter_doc_vectors(self, params, texts: Sequence[str], *, vocab_ids=None, progress: bool = True
                         ) -> Iterator[tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]]:
        """Yield (row indices, [(term ids [T] int32, weights [T] float32)] per doc), length-sorted.

        Only positive weights are kept (after the config's top_k pruning). vocab_ids: the
        scoring vocabulary (`scoring_ids(idf)`); None = every non-special token.
        """
        if vocab_ids is None:  # every token a query could contain
            vocab_ids = scoring_token_ids(np.ones(self.bert_config.vocab_size), self.special_ids, 0.0)
        v = jnp.asarray(np.asarray(vocab_ids, np.int32))
        fn = lambda p, i, m, t: self._doc_fn(p, i, m, t, v)
        for idx, _, w in iter_encoded(fn, params, self.tokenizer, texts,
                                      max_length=self.config.doc_maxlen, windows=self.config.doc_windows,
                                      batch_size=self.config.batch_size, desc="encode documents",
                                      progress=progress, what="document"):
            w = np.asarray(w, np.float32)[: len(idx)]
            rows = []
            for r in range(len(idx)):
                terms = np.flatnonzero(w[r] > 0).astype(np.int32)
                rows.append((terms, w[r, terms]))
            yield idx, rows

    def encode_query_texts(self, params, texts: Sequence[str], *, vocab_ids=None,
                           progress: bool = False) -> list:
        """With the mlm query encoder: texts -> list (input order) of (term ids [T], weights [T])
        of [CLS] text [SEP] cut at query_maxlen, positive weights only."""
        if self.config.query_encoder != "mlm":
            raise ValueError("encode_query_texts needs query_encoder='mlm' (idf queries have no encoder)")
        if vocab_ids is None:
            vocab_ids = scoring_token_ids(np.ones(self.bert_config.vocab_size), self.special_ids, 0.0)
        v = jnp.asarray(np.asarray(vocab_ids, np.int32))
        out: list = [None] * len(texts)
        for idx, _, w in iter_encoded(lambda p, i, m, t: self._query_fn(p, i, m, t, v), params,
                                      self.tokenizer, texts, max_length=self.config.query_maxlen,
                                      batch_size=self.config.batch_size, desc="encode queries",
                                      progress=progress, what="query"):
            w = np.asarray(w, np.float32)[: len(idx)]
            for r, i in enumerate(idx):
                terms = np.flatnonzero(w[r] > 0).astype(np.int32)
                out[i] = (terms, w[r, terms])
        return out

    def fit_prior(self, token_lists: Sequence[Sequence[int]]) -> LexicalPrior | None:
        """The config's lexical prior over a corpus of WordPiece id lists (None: no prior)."""
        cfg = self.config
        if not cfg.lexical_prior:
            return None
        stems = StemClasses.from_tokenizer(self.tokenizer, skip_ids=self.special_ids) if cfg.prior_stem else None
        return LexicalPrior.fit(token_lists, k1=cfg.prior_k1, b=cfg.prior_b, weight=cfg.prior_weight, stems=stems)

    def encode_doc_texts(self, params, texts: Sequence[str], *, vocab_ids=None,
                         prior: LexicalPrior | None = None, progress: bool = True) -> list:
        """Texts -> list (input order) of (term ids [T], weights [T]) pairs.

        prior: the corpus's `fit_prior`, added to head_scale x the head's weights (over vocab_ids
        when given).
        """
        out: list = [None] * len(texts)
        for idx, rows in self.iter_doc_vectors(params, texts, vocab_ids=vocab_ids, progress=progress):
            for i, row in zip(idx, rows):
                out[i] = row
        if prior is not None:
            from jaxir.text import tokenize

            scale = self.config.head_scale
            for i, tokens in enumerate(tokenize(self.tokenizer, texts, what="document")):
                head = (out[i][0], scale * out[i][1])
                out[i] = add_vectors(head, prior.vector(tokens, skip_ids=self.special_ids, keep_ids=vocab_ids))
        return out
