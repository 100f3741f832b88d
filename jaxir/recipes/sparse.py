"""Inference-free learned sparse recipe: ensemble distillation of the identity-initialised head.

Ranking stage: per train query, n-way candidates (positive first, then the union of BM25 and
dense top-`depth` non-relevant docs); with in-batch negatives each query also ranks the other
queries' candidates of its batch. Teacher scores of the dense MiniLM and BM25 are computed per
(query, doc) pair (`TeacherScores`); loss = KL to the min-max ensemble (scale 30, tau 1) +
IDF-aware FLOPS with quadratic warm-up. Logits are computed over the
scoring vocabulary only (tokens with idf > min_idf). `holdout` train queries are held out; the
params with the lowest held-out KL are exported (`BestOnHoldout`).
Optional stage before it (`--mlm-steps N`): masked-token prediction on corpus text to warm the
head up. all-MiniLM-L6-v2 ships no MLM head; on SciFact 100 warm-up steps lowered nDCG@10
(0.6152 -> 0.6022), so the default is none.

CPU SciFact mode (smoke-sized: add --max-queries 24 --holdout 8 --steps 8 --eval-every 4 --doc-maxlen 64):
    jaxir index --method dense --data <beir>/scifact --out runs/indexes/scifact-dense   # reused
    jaxir train --recipe sparse --mode cpu-scifact --data <beir>/scifact --out runs/sparse-scifact \
        --dense-index runs/indexes/scifact-dense
    jaxir index --method sparse --checkpoint runs/sparse-scifact/sparse --data <beir>/scifact \
        --out runs/indexes/scifact-sparse
    jaxir eval --method sparse --checkpoint runs/sparse-scifact/sparse --data <beir>/scifact \
        --index runs/indexes/scifact-sparse
TPU mode (MS MARCO scale; same code): --mode tpu with --data a BEIR-format MS MARCO folder.
In-batch negatives (on in the CPU mode) took SciFact nDCG@10 (first window) from 0.5732 to 0.6063:
hard negatives alone never show the student an off-topic document. The earlier hard-negative-only
recipe is --in-batch false --batch-size 4 --nway 8 --accumulate 4.
Lexical prior (--lexical-prior true): every document weight also holds the BM25 tf-saturation of
its whole text (`jaxir.methods.lexical_prior`), in the loss and in the index, so the head learns
what the teachers add to exact matching; the checkpoint records it and `jaxir index` applies it.
--prior-stem true also stems the prior's document side (`jaxir.methods.stem_classes`).
Ablations: --teacher-weights 1,0 (dense only) / 0,1 (BM25 only), --flops-mode uniform; runs with
an MLM warm-up can share it: --init-from <first run>/mlm-params. More epochs: --init-from
<trained run>/sparse --flops-warmup-steps 0 continues a trained model (fresh optimizer and schedule).
Outputs: <out>/rank/ (metrics.jsonl with train and held-out rows, loss.png, checkpoints/;
resumable), <out>/holdout.json (the held-out train query ids), <out>/mlm/ and <out>/mlm-params
when warmed up, and
<out>/sparse (sparse_config.json, params.npz, idf.json): the checkpoint the retriever loads.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import jax
import numpy as np

from jaxir.cli_types import add_config_options, with_overrides
from jaxir.methods.sparse import SparseConfig, SparseModel
from jaxir.recipes.sparse_teachers import TeacherScores, dense_corpus, mine_candidates
from jaxir.parallel import EMBED, VOCAB


@dataclasses.dataclass(frozen=True)
class RecipeConfig:
    # BEIR folder whose train qrels give positives; idf.json (None: computed over its corpus).
    data: str = "scifact"
    idf: str | None = None
    # Existing dense (MiniLM) index of the corpus for mining + teacher scores (None: encode now).
    dense_index: str | None = None
    # Candidates per query (positive + nway-1 negatives), mined from BM25 and dense top-`depth`.
    nway: int = 4
    depth: int = 30
    # Limit train queries (0: all) - for smoke runs.
    max_queries: int = 0
    # Train queries held out (their tuples): every eval_every steps the held-out KL to the
    # ensemble is measured and the params with the lowest one are what the run exports.
    holdout: int = 48
    eval_every: int = 25
    # Token lengths: query tokens feed the IDF vector; documents go through the encoder.
    query_maxlen: int = 32
    doc_maxlen: int = 180
    # Teacher ensemble weights (dense, BM25) and the ranking loss ("kl", "margin_mse", "infonce").
    teacher_weights: str = "1,1"
    ranking_loss: str = "kl"
    # In-batch negatives: each query also ranks the other queries' candidates (teacher scores
    # for those pairs are computed per batch). Costs no extra encoding.
    in_batch: bool = True
    # FLOPS (lambda_d, warm-up in optimizer updates, "idf_aware" | "uniform"); top_k at index time
    # (0: all). The CPU mode makes 200 / 2 = 100 updates, so lambda reaches lambda_d at the end.
    flops_lambda: float = 1e-3
    flops_warmup_steps: int = 100
    flops_mode: str = "idf_aware"
    top_k: int = 0
    # Scoring vocabulary: tokens with idf <= min_idf are never computed, trained or indexed;
    # documents are indexed as up to doc_windows windows of doc_maxlen tokens.
    min_idf: float = 0.0
    doc_windows: int = 4
    # BM25 lexical prior in the document weights (SparseConfig.lexical_prior): the head learns
    # what the teachers add to exact matching; prior_weight scales the prior.
    lexical_prior: bool = False
    prior_weight: float = 1.0
    prior_stem: bool = False
    # Start from another run's params instead of the pretrained backbone + identity head:
    # <run>/mlm-params (ablations sharing one MLM warm-up) or <run>/sparse (more training).
    init_from: str | None = None
    # MLM warm-up (skipped with init_from): steps, docs per step, learning rate.
    mlm_steps: int = 0
    mlm_batch_size: int = 8
    mlm_learning_rate: float = 5e-5
    # Ranking stage: queries per step (each brings nway docs), steps, learning rate; one update
    # per `accumulate` steps (per-batch KL varies 100x across 4-query batches: average it).
    batch_size: int = 8
    steps: int = 200
    accumulate: int = 2
    learning_rate: float = 3e-5
    warmup_steps: int = 20
    # The head (transform, LayerNorm, per-token bias) starts untrained: it may learn faster.
    # backbone_lr_multiplier 0 freezes MiniLM (and the tied decoder embeddings): head-only training.
    head_lr_multiplier: float = 1.0
    backbone_lr_multiplier: float = 1.0
    compute_dtype: str = "float32"
    seed: int = 0


MODES = {
    # SciFact train (809 queries) on 2 CPU cores: 8 queries x 4 docs x 180 tokens per step, each
    # query ranking all 32; 16 queries per update.
    "cpu-scifact": RecipeConfig(),
    # MS MARCO scale on an accelerator slice: bigger batches, longer warm-ups, bf16. No in-batch
    # negatives: their BM25 teacher scores the whole corpus per query on the host.
    "tpu": RecipeConfig(nway=16, depth=100, doc_maxlen=256, batch_size=64, steps=100_000, in_batch=False,
                        accumulate=1, warmup_steps=5_000, flops_warmup_steps=20_000,
                        holdout=512, eval_every=2_000, compute_dtype="bfloat16"),
}
PARAM_RULES = ((r"word/embedding$", (VOCAB, EMBED)),)
HOLDOUT_FILE = "holdout.json"


class TupleTexts:
    """Training tuples (query, nway candidate texts, teacher scores) tokenised per batch.

    rows: the train-query numbers (into `teacher`) this source draws from; candidates: their doc
    ids; with cfg.in_batch the teacher scores cover every candidate of the batch.
    """

    def __init__(self, model: SparseModel, cfg: RecipeConfig, rows, candidates, texts, teacher,
                 prior=None, prior_width: int = 0):
        self.model, self.cfg, self.rows, self.texts, self.teacher = model, cfg, list(rows), texts, teacher
        self.candidates = [candidates[r] for r in self.rows]
        # Lexical prior over the corpus (LexicalPrior) and its fixed padded width (no recompiles).
        self.prior, self.prior_width = prior, prior_width

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, picks: np.ndarray) -> dict[str, np.ndarray]:
        from jaxir.ops.sparse import inbatch_columns
        from jaxir.text import assemble

        tok, cfg = self.model.tokenizer, self.cfg
        picks = [int(p) for p in picks]
        q = tok([self.teacher.queries[self.rows[p]] for p in picks], add_special_tokens=False, truncation=True,
                max_length=cfg.query_maxlen, padding="max_length", return_tensors="np")
        ids = [d for p in picks for d in self.candidates[p]]
        tokens = tok([self.texts[d] for d in ids], add_special_tokens=False)["input_ids"]
        d = assemble(tok, tokens, max_length=cfg.doc_maxlen, fixed_length=True)
        shape = (len(picks), cfg.nway, cfg.doc_maxlen)
        if cfg.in_batch:
            cols = inbatch_columns(len(picks), cfg.nway)
            teachers = np.stack([self.teacher(self.rows[p], [ids[c] for c in cols[i]])
                                 for i, p in enumerate(picks)])
        else:
            teachers = np.stack([self.teacher(self.rows[p], self.candidates[p]) for p in picks])
        batch = {"q_ids": q["input_ids"].astype(np.int32), "q_mask": q["attention_mask"].astype(np.int32),
                 "d_ids": d.input_ids.reshape(shape), "d_mask": d.attention_mask.reshape(shape),
                 "teachers": teachers}
        if self.prior is not None:  # from the whole document's tokens, as at index time
            ids, vals = self.prior.padded(tokens, self.prior_width, skip_ids=self.model.special_ids,
                                          keep_ids=self.model.vocab_ids)
            batch["prior_ids"], batch["prior_vals"] = ids.reshape(*shape[:2], -1), vals.reshape(*shape[:2], -1)
        return batch


class TextSource:
    """Corpus texts as fixed-length [B, doc_maxlen] MLM batches."""

    def __init__(self, tokenizer, token_lists, max_length: int):
        self.tokenizer, self.token_lists, self.max_length = tokenizer, token_lists, max_length

    def __len__(self) -> int:
        return len(self.token_lists)

    def take(self, rows):
        from jaxir.text import assemble

        b = assemble(self.tokenizer, [self.token_lists[int(r)] for r in rows], max_length=self.max_length,
                     fixed_length=True)
        return {"input_ids": b.input_ids, "attention_mask": b.attention_mask}


class BestOnHoldout:
    """Eval hook: held-out KL / top-1 accuracy / non-zeros; keeps host params with the lowest KL."""

    def __init__(self, model: SparseModel, batches: list[dict]):
        self.batches, self.best, self.best_rank, self.best_step = batches, None, float("inf"), None
        self._metrics = jax.jit(lambda p, b: model.loss_fn(p, b)[1])

    def __call__(self, state) -> dict[str, float]:
        per_batch = [jax.device_get(self._metrics(state.params, b)) for b in self.batches]
        out = {f"holdout_{k}": float(np.mean([m[k] for m in per_batch])) for k in ("rank", "acc", "doc_nnz")}
        if out["holdout_rank"] < self.best_rank:
            self.best_rank, self.best_step = out["holdout_rank"], int(state.step)
            self.best = jax.device_get(state.params)
        return out


def train(cfg: RecipeConfig, out_dir: str):
    from jaxir.eval.beir import load_beir
    from jaxir.index.bm25 import BM25Index
    from jaxir.methods.dense import DenseRetriever
    from jaxir.models.hf import load_bert
    from jaxir.pipeline.sparse_retriever import IDF_FILE, load_checkpoint, save_checkpoint
    from jaxir.sparse_idf import compute_idf, load_idf, save_idf, tokenizer_vocab
    from jaxir.text import load_tokenizer, tokenize
    from jaxir.training.loop import FitConfig, fit
    from jaxir.training.optim import OptimConfig
    from jaxir.training.step import COMPUTE_DTYPES
    from jaxir.training.task import Task

    out = Path(out_dir)
    # A bad --init-from fails now, not after minutes of mining and teacher encoding.
    start = load_checkpoint(cfg.init_from)[1] if cfg.init_from else None
    data = load_beir(cfg.data, split="train")
    texts = dict(zip(data.doc_ids, data.doc_texts()))
    tokenizer = load_tokenizer()
    vocab = tokenizer_vocab(tokenizer)
    doc_tokens = tokenize(tokenizer, list(texts.values()), what="document")
    idf = load_idf(cfg.idf, vocab) if cfg.idf else compute_idf(doc_tokens, len(vocab))

    bm25 = BM25Index.build(list(texts.values()), doc_ids=list(texts))
    dense = DenseRetriever()
    flat = dense_corpus(data, dense, cfg.dense_index)
    qids, queries, candidates = mine_candidates(data, cfg, bm25, dense, flat)
    teacher = TeacherScores(queries, bm25=bm25, dense=dense, flat=flat)

    weights = tuple(float(x) for x in cfg.teacher_weights.split(","))
    sparse = SparseConfig(doc_maxlen=cfg.doc_maxlen, ranking_loss=cfg.ranking_loss,
                          teacher_weights=weights, flops_lambda=cfg.flops_lambda,
                          flops_warmup_steps=cfg.flops_warmup_steps, flops_mode=cfg.flops_mode,
                          in_batch_negatives=cfg.in_batch,
                          top_k=cfg.top_k or None, min_idf=cfg.min_idf, doc_windows=cfg.doc_windows,
                          lexical_prior=cfg.lexical_prior, prior_weight=cfg.prior_weight,
                          prior_stem=cfg.prior_stem, seed=cfg.seed)
    bert_config, bert_params = load_bert(None, dtype=COMPUTE_DTYPES[cfg.compute_dtype])
    model = SparseModel(sparse, idf=idf, bert_config=bert_config, bert_params=bert_params,
                        tokenizer=tokenizer)
    fit_kw = dict(seed=cfg.seed, compute_dtype=cfg.compute_dtype)
    params = model.init(jax.random.PRNGKey(cfg.seed))
    if cfg.init_from:
        from jaxir.models.params_io import check_same_tree

        check_same_tree(params, start, where=cfg.init_from, what="sparse starting params")
        params = start
    elif cfg.mlm_steps:
        mlm = fit(Task(init=lambda rng, batch: params, loss_fn=model.mlm_loss_fn, param_rules=PARAM_RULES,
                       config={"method": "sparse-mlm", **dataclasses.asdict(sparse)}),
                  TextSource(tokenizer, doc_tokens, cfg.doc_maxlen),
                  config=FitConfig(steps=cfg.mlm_steps, batch_size=cfg.mlm_batch_size,
                                   out_dir=str(out / "mlm"), **fit_kw),
                  optim=OptimConfig(learning_rate=cfg.mlm_learning_rate, total_steps=cfg.mlm_steps,
                                    warmup_steps=min(10, cfg.mlm_steps)))
        params = mlm.state.params
        save_checkpoint(out / "mlm-params", sparse, params)
    n_held = min(cfg.holdout, len(queries) // 2) // cfg.batch_size * cfg.batch_size
    order = np.random.default_rng(cfg.seed).permutation(len(queries))
    held_rows, train_rows = np.sort(order[:n_held]), np.sort(order[n_held:])
    # Which train queries were held out: full-corpus checks on them stay unbiased (never trained on).
    out.mkdir(parents=True, exist_ok=True)
    (out / HOLDOUT_FILE).write_text(json.dumps({"data": str(cfg.data), "split": "train",
                                                "query_ids": [qids[r] for r in held_rows]}, indent=1) + "\n")
    prior = model.fit_prior(doc_tokens)
    # The widest document's prior vector, rounded up: every batch has the same prior shape.
    width = -(-prior.max_terms(doc_tokens, skip_ids=model.special_ids, keep_ids=model.vocab_ids) // 64) * 64 \
        if prior else 0
    source = TupleTexts(model, cfg, train_rows, candidates, texts, teacher, prior, width)
    held = TupleTexts(model, cfg, held_rows, candidates, texts, teacher, prior, width)
    hook = BestOnHoldout(model, [held.take(np.arange(i, i + cfg.batch_size))
                                 for i in range(0, n_held, cfg.batch_size)]) if n_held else None
    updates = max(1, cfg.steps // cfg.accumulate)
    result = fit(Task(init=lambda rng, batch: params, loss_fn=model.loss_fn, param_rules=PARAM_RULES,
                      step_aware=True, config={"method": "sparse", **dataclasses.asdict(sparse)}),
                 source, config=FitConfig(steps=cfg.steps, batch_size=cfg.batch_size,
                                          out_dir=str(out / "rank"), eval_every=cfg.eval_every if hook else 0,
                                          **fit_kw),
                 eval_hook=hook,
                 optim=OptimConfig(learning_rate=cfg.learning_rate, accumulate=cfg.accumulate,
                                   warmup_steps=min(cfg.warmup_steps // cfg.accumulate, updates),
                                   total_steps=updates,
                                   lr_multipliers=tuple(
                                       (name, m) for name, m in (("head", cfg.head_lr_multiplier),
                                                                 ("bert", cfg.backbone_lr_multiplier))
                                       if m != 1.0)))
    best = result.state.params if hook is None or hook.best is None else hook.best
    if hook is not None:
        print(f"exporting step {hook.best_step} (held-out KL {hook.best_rank:.4f} on {n_held} queries)")
    path = save_checkpoint(out / "sparse", sparse, best)
    if cfg.idf:
        shutil.copy(cfg.idf, path / IDF_FILE)
    else:
        save_idf(path / IDF_FILE, idf, vocab, n_docs=len(doc_tokens))
    return path, result


def parse_args(argv=None) -> tuple[RecipeConfig, str]:
    """(config = the mode's defaults with every given --field overridden, output folder)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=sorted(MODES), default="cpu-scifact")
    ap.add_argument("--out", required=True)
    add_config_options(ap, RecipeConfig)  # every recipe field can be overridden
    args = vars(ap.parse_args(argv))
    mode, out = args.pop("mode"), args.pop("out")
    return with_overrides(MODES[mode], args), out


def main(argv=None) -> None:
    cfg, out = parse_args(argv)
    path, result = train(cfg, out)
    print(f"saved {path}; last train metrics {result.last_train}")


if __name__ == "__main__":
    main()
