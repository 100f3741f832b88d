"""Configuration of the learned sparse models (`jaxir.methods.sparse`): inference-free (IDF
queries, the default) and SPLADE (`query_encoder="mlm"`: the same encoder on both sides)."""
from __future__ import annotations

import dataclasses

from jaxir.config.bounds import bounded, check_bounds, one_of

RANKING_LOSSES = ("kl", "margin_mse", "infonce")
QUERY_ENCODERS = ("idf", "mlm")


@dataclasses.dataclass(frozen=True)
class SparseConfig:
    # Local HF BERT folder for the backbone; None = embedded all-MiniLM-L6-v2.
    model: str | None = None
    # Backbone dropout while training (hidden and attention); None = the backbone config's.
    dropout: float | None = bounded(None, ge=0.0, lt=1.0)
    # Document tokens incl. [CLS]/[SEP] per window: 256 for indexing; jaxir.recipes.sparse trains
    # (and so exports checkpoints) at 180 on CPU, 256 in its tpu-msmarco mode.
    doc_maxlen: int = bounded(256, ge=3)
    # Query side: "idf" (inference-free: q_t = idf_t for each distinct query WordPiece, no model)
    # or "mlm" (SPLADE, siamese: the document encoder on [CLS] query [SEP], FLOPS on both sides).
    query_encoder: str = one_of("idf", QUERY_ENCODERS)
    # Query tokens per row: incl. [CLS]/[SEP] with the mlm encoder (training and search); with
    # idf, the training cut of the IDF vector's WordPieces (search-time idf queries are not cut).
    query_maxlen: int = bounded(32, ge=1)
    # FLOPS weight lambda_q on the query weights (mlm only), with the documents' warm-up.
    query_flops_lambda: float = bounded(1e-3, ge=0.0)
    # Second log1p on the weights (the later "L0" variant; off in the paper's default).
    double_log: bool = False
    # Keep the head's top_k weights per document at index time (None: every positive weight).
    top_k: int | None = bounded(None, ge=1)
    # Longer documents are cut into up to doc_windows windows of doc_maxlen tokens, each encoded
    # as [CLS] piece [SEP]; w max-pools over the tokens of all windows, so no text is dropped
    # below doc_windows * (doc_maxlen - 2) tokens. Training scores the first window only.
    doc_windows: int = bounded(4, ge=1)
    # Scoring vocabulary: tokens with idf <= min_idf (and special tokens) can never add to a
    # score, so their logits are not computed, stored or trained (idf 0 = absent from corpus).
    min_idf: float = 0.0
    # Tokens per chunk when max-pooling logits: [B, chunk, V] is the largest logit block alive.
    logit_chunk: int = bounded(32, ge=1)
    # Head init: shift c before gelu (gelu(h + c) ~ h + c, so LN(gelu(h + c)) ~ standardised h).
    gelu_shift: float = 5.0
    # Head init: the vocabulary bias b0, which sets the initial sparsity.
    init_vocab_bias: float = -6.0
    # "kl" (ensemble distillation), "margin_mse" or "infonce" (label = candidate 0).
    ranking_loss: str = one_of("kl", RANKING_LOSSES)
    # Teacher ensemble: per-teacher weights, e.g. 1,1 for (dense, BM25) (None = equal).
    teacher_weights: tuple[float, ...] | None = None
    # Per-query normalisation of each teacher's scores before they are weighed.
    teacher_normalize: str = "minmax"
    # The ensemble score is scaled by this before the softmax.
    teacher_scale: float = 30.0
    # Softmax temperature of the ranking loss (divides teacher and student scores).
    temperature: float = 1.0
    # In-batch negatives: each query is also scored against every other query's candidates
    # (order: `inbatch_columns`), so teachers are [B, K, B*N]. The docs are encoded once either
    # way; hard negatives alone never show the student an off-topic document.
    in_batch_negatives: bool = False
    # FLOPS weight lambda_d.
    flops_lambda: float = bounded(1e-3, ge=0.0)
    # FLOPS quadratic warm-up T in optimizer updates: lambda = lambda_d * min(1, (u + 1) / T)^2.
    flops_warmup_steps: int = bounded(1000, ge=0)
    # "idf_aware" (FLOPS of w, the ranking sees idf * w) or "uniform" (FLOPS of idf * w).
    flops_mode: str = one_of("idf_aware", ("idf_aware", "uniform"))
    # MLM loss: fraction of tokens predicted.
    mlm_probability: float = 0.15
    # MLM loss: at most ceil(mlm_max_fraction * L) predicted tokens per row.
    mlm_max_fraction: float = 0.25
    # BM25 lexical prior (`jaxir.methods.lexical_prior`): w = prior_weight * BM25 tf-saturation
    # of the whole document + the head's weights, in training and in the index; the head learns
    # a residual over exact matching. avgdl is measured over the corpus being indexed.
    lexical_prior: bool = False
    # BM25 k1 of the prior's tf saturation.
    prior_k1: float = 1.5
    # BM25 b of the prior's length normalisation.
    prior_b: float = 0.75
    # Factor on the prior in the document weights.
    prior_weight: float = 1.0
    # Document-side stemming of the prior (`jaxir.methods.stem_classes`): whole-word WordPieces
    # with one Snowball stem share a tf and a weight, so a query's "cells" matches "cell".
    prior_stem: bool = False
    # Index-time factor on the head's weights next to the prior (1 = as trained). A head trained
    # on few queries can overfit; benchmarks/claims/sparse_prior_fusion.py picks it on held-out train
    # queries. Needs lexical_prior (without one a common factor changes no ranking).
    head_scale: float = bounded(1.0, ge=0.0)
    # Seed of the head init when no checkpoint is loaded.
    seed: int = bounded(0, ge=0)
    # Texts per jitted encode call.
    batch_size: int = bounded(16, ge=1)

    # Checkpoint configs saved under older field names ({old: new}) and fields since removed:
    # none so far (every field here is a model, loss or index setting).
    def __post_init__(self):
        check_bounds(self)  # the ranges and choices declared on the fields; below, how fields relate
        if self.query_encoder == "mlm" and self.lexical_prior:
            raise ValueError("lexical_prior needs idf queries: its BM25 weights are scored by idf")
        if self.query_encoder == "mlm" and self.flops_mode != "idf_aware":
            raise ValueError("flops_mode 'uniform' weighs FLOPS by idf, which mlm queries do not use")
        if self.query_encoder == "mlm" and self.query_maxlen < 3:
            raise ValueError(f"query_maxlen {self.query_maxlen} leaves no room between [CLS] and [SEP]")
        if self.head_scale != 1.0 and not self.lexical_prior:
            raise ValueError(f"head_scale {self.head_scale} needs lexical_prior: it weighs the head "
                             "against the prior")
        if self.prior_stem and not self.lexical_prior:
            raise ValueError("prior_stem needs lexical_prior: it stems the prior's document side")
