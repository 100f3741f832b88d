"""Inference-free learned sparse recipe: ensemble distillation of the identity-initialised head.

Ranking stage: per train query, 1 + n_negatives candidates (positive first, then the union of
BM25 and dense top-`mine_depth` non-relevant docs); with in-batch negatives each query also ranks
the other queries' candidates of its batch. Teacher scores come from `data.teachers` (default
dense MiniLM + BM25; any first-stage method of the registry, with a checkpoint, e.g. the paper's
heterogeneous pair --data.teachers i3:runs/plain-scifact/i3,splade:runs/splade-scifact/splade),
each over the whole corpus once per train query (`sparse_teachers`); loss = KL to the min-max
ensemble (scale 30, tau 1) + IDF-aware FLOPS with a quadratic warm-up over the first tenth of the
updates (one longer than the run is shortened to a tenth of it when configured, refused when given).
Logits are computed over the scoring vocabulary only (tokens with idf > min_idf). `data.holdout`
train queries are held out; the params with the lowest held-out KL are exported (`BestOnHoldout`).
Optional stage before it (`--mlm.steps N`): masked-token prediction on corpus text to warm the
head up. all-MiniLM-L6-v2 ships no MLM head; on SciFact 100 warm-up steps lowered nDCG@10
(0.6152 -> 0.6022), so the default is none.

CPU SciFact mode (the defaults; `--mode smoke` runs it end to end at test size: 2 steps of 8 of 16
train queries):
    jaxir index --method dense --data <beir>/scifact --out runs/indexes/scifact-dense   # once
    jaxir train --recipe sparse --mode cpu-scifact --data <beir>/scifact --out runs/sparse-scifact \
        --data.dense_index runs/indexes/scifact-dense
    jaxir index --method sparse --checkpoint runs/sparse-scifact/sparse --data <beir>/scifact \
        --out runs/indexes/scifact-sparse
    jaxir eval --method sparse --checkpoint runs/sparse-scifact/sparse --data <beir>/scifact \
        --index runs/indexes/scifact-sparse
NFCorpus: --mode cpu-nfcorpus (100 steps, 5-update FLOPS warm-up).
TPU mode (MS MARCO scale; same code): --mode tpu-msmarco (or tpu) with --data a BEIR-format
MS MARCO folder.
In-batch negatives (on in the CPU mode) took SciFact nDCG@10 (first window) from 0.5732 to 0.6063:
hard negatives alone never show the student an off-topic document. The earlier hard-negative-only
recipe is --model.in_batch_negatives false --fit.batch_size 4 --data.n_negatives 7
--optim.accumulate 4 --optim.warmup_steps 5.
Lexical prior (--model.lexical_prior true): every document weight also holds the BM25
tf-saturation of its whole text (`jaxir.methods.lexical_prior`), in the loss and in the index, so
the head learns what the teachers add to exact matching; the checkpoint records it and `jaxir
index` applies it. --model.prior_stem true also stems the prior's document side
(`jaxir.methods.stem_classes`).
Ablations: --model.teacher_weights 1,0 (dense only) / 0,1 (BM25 only), --model.flops_mode uniform;
head-only training: --optim.lr_multipliers bert=0; runs with an MLM warm-up can share it:
--init-from <first run>/mlm-params. More epochs: --init-from <trained run>/sparse
--model.flops_warmup_steps 0 continues a trained model (fresh optimizer and schedule).
Outputs: <out>/rank/ (metrics.jsonl with train and held-out rows, loss.png, checkpoints/;
resumable), <out>/holdout.json (the held-out train query ids), <out>/idf.json (the corpus idf,
unless --data.idf gives one), <out>/mlm/ and <out>/mlm-params when warmed up, and
<out>/sparse (model folder + idf.json, written in one atomic step): the checkpoint the retriever loads (<out>/splade with
--model.query_encoder mlm, which `jaxir train --recipe splade` sets).
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import jax
import numpy as np

from jaxir.config.bounds import bounded
from jaxir.config.options import Derived, mode_config
from jaxir.config.overrides import apply_overrides
from jaxir.config.warmup import check_warmups
from jaxir.fs import INDEX_CACHE
from jaxir.methods.sparse import SparseModel
from jaxir.methods.sparse_config import SparseConfig
from jaxir.parallel import EMBED, VOCAB
from jaxir.recipes import entry_points
from jaxir.recipes.sparse_batches import TextSource, tuple_texts
from jaxir.recipes.sparse_shares import log_regulariser_shares
from jaxir.recipes.sparse_teachers import DEFAULT_TEACHERS, dense_corpus, mine_candidates, teacher_scores
from jaxir.training.loop import FitConfig
from jaxir.training.optim import OptimConfig


@dataclasses.dataclass(frozen=True)
class SparseData:
    # BEIR folder (or name) whose train qrels give the positives (`jaxir train --data`).
    dataset: str = "scifact"
    # idf.json of the query side (None: computed over the dataset's corpus).
    idf: str | None = None
    # Existing dense (MiniLM) index of the corpus for mining (None: the index cache's, built once).
    dense_index: str | None = None
    # Teachers of the ensemble: registry methods, each METHOD or METHOD:CHECKPOINT (e.g.
    # i3:runs/plain-scifact/i3, splade:runs/splade-scifact/splade), weighed by model.teacher_weights.
    teachers: tuple[str, ...] = DEFAULT_TEACHERS
    # Where teacher (and mining) indexes are built once and reused, keyed by corpus and model.
    index_cache: str = INDEX_CACHE
    # Hard negatives per query (candidates = the positive + these), from the top `mine_depth`.
    n_negatives: int = bounded(3, ge=1)
    # BM25 and dense top-k interleaved for the negatives (judged docs skipped).
    mine_depth: int = bounded(30, ge=1)
    # Limit train queries (0: all) - for smoke runs.
    max_queries: int = bounded(0, ge=0)
    # Train queries held out: the params with the lowest held-out KL (every fit.eval_every) are exported.
    holdout: int = bounded(48, ge=0)


@dataclasses.dataclass(frozen=True)
class MLMWarmup:
    """The optional masked-token stage before ranking: its own length, batch and peak rate; it
    runs with the fit group's other settings and a default OptimConfig (warm-up min(10, steps))."""

    # Warm-up steps (0: no MLM stage; skipped with init_from).
    steps: int = bounded(0, ge=0)
    # Corpus documents per step.
    batch_size: int = bounded(8, ge=1)
    # Peak learning rate of the warm-up.
    learning_rate: float = 5e-5


@dataclasses.dataclass(frozen=True)
class Recipe:
    # Student + loss: 180-token docs, equal-weight teachers, in-batch negatives. The FLOPS warm-up
    # ends at a tenth of the run's 100 updates, as the reference's KD config does (T 200 of 2,000
    # steps); it used to span the whole run, so lambda reached lambda_d only at the last update.
    model: SparseConfig = SparseConfig(doc_maxlen=180, teacher_weights=(1.0, 1.0),
                                       in_batch_negatives=True, flops_warmup_steps=10)
    # Train queries, mined candidates and held-out queries.
    data: SparseData = SparseData()
    # AdamW of the ranking stage; 2 micro-batches per update (per-batch KL varies 100x across batches).
    # The MLM head is new (all-MiniLM-L6-v2 ships none): it learns at 50x the encoder's rate (head=50),
    # as the cross-encoder's new head does; at 1x its per-term thresholds barely move in 100 updates.
    optim: OptimConfig = OptimConfig(learning_rate=3e-5, warmup_steps=10, accumulate=2,
                                     lr_multipliers=(("head", 50.0),))
    # Ranking stage: 200 steps of 8 queries (each ranking all 32 docs of its batch).
    fit: FitConfig = FitConfig(steps=200, batch_size=8, eval_every=25)
    # Optional MLM warm-up stage.
    mlm: MLMWarmup = MLMWarmup()
    # Start from a run's params: <run>/mlm-params (a shared MLM warm-up) or <run>/sparse (more training).
    init_from: str | None = None


MODES = {
    # SciFact train (809 queries) on 2 CPU cores: the defaults above.
    "cpu-scifact": {},
    # NFCorpus train (2,590 queries, short documents): half the updates (the budget of every NFCorpus
    # sparse run in docs/results-log.md), the FLOPS warm-up a tenth of them.
    "cpu-nfcorpus": {"data.dataset": "nfcorpus", "fit.steps": 100, "model.flops_warmup_steps": 5},
    # A run end to end in about a minute on 2 CPU cores (SciFact: 51 s, SPLADE 70 s) once the
    # corpus's dense index is cached (mining and the dense teacher need it; built once): its
    # tests' sizes, 16 train queries.
    "smoke": {"data.n_negatives": 1, "data.mine_depth": 10, "data.max_queries": 16, "data.holdout": 0,
              "model.doc_maxlen": 24, "model.query_maxlen": 8, "model.flops_warmup_steps": 1,
              "optim.accumulate": 1, "optim.warmup_steps": 0, "fit.steps": 2, "fit.batch_size": 8,
              "fit.fast_compile": True},
    # MS MARCO scale on an accelerator slice: bigger batches, longer warm-ups, bf16. No in-batch
    # negatives: their BM25 teacher scores the whole corpus per query on the host.
    "tpu-msmarco": {"data.n_negatives": 15, "data.mine_depth": 100, "data.holdout": 512,
                    "model.doc_maxlen": 256, "model.in_batch_negatives": False,
                    "model.flops_warmup_steps": 20_000, "optim.accumulate": 1,
                    "optim.warmup_steps": 5_000, "fit.batch_size": 64, "fit.steps": 100_000,
                    "fit.eval_every": 2_000, "fit.compute_dtype": "bfloat16", "fit.dropout_rng": "rbg"},
}
MODES["tpu"] = MODES["tpu-msmarco"]  # the earlier name
FLAGS = {"data.dataset": "--data"}  # the option `jaxir train --data` passes on
# Both warm-ups count ranking-stage updates; one longer than the run is shortened (or, given, refused).
WARMUPS = {"optim.warmup_steps": "optim.total_steps", "model.flops_warmup_steps": "optim.total_steps"}
DERIVED = {
    "optim.total_steps": Derived("max(1, fit.steps // optim.accumulate), the ranking stage's updates",
                                 lambda get: max(1, get("fit.steps") // get("optim.accumulate"))),
    "model.seed": Derived("fit.seed (also seeds the held-out split)", lambda get: get("fit.seed")),
    "fit.out_dir": Derived("<--out>/rank (the MLM stage: <--out>/mlm)"),
}
RECIPE = apply_overrides(Recipe(), {}, DERIVED)
PARAM_RULES = ((r"word/embedding$", (VOCAB, EMBED)),)
HOLDOUT_FILE = "holdout.json"


def checkpoint_method(model: SparseConfig):
    """The retriever module whose checkpoints a model config makes: `jaxir.retrievers.sparse`
    (inference-free, <out>/sparse) or `jaxir.retrievers.splade` (mlm queries, <out>/splade)."""
    import importlib

    return importlib.import_module(f"jaxir.retrievers.{'splade' if model.query_encoder == 'mlm' else 'sparse'}")


def check_teachers(r: Recipe) -> None:
    """One weight per teacher and teachers the registry has: checked before any data is read."""
    from jaxir.errors import OptionError
    from jaxir.recipes.sparse_teachers import parse_teacher

    for spec in r.data.teachers:
        parse_teacher(spec)
    weights = r.model.teacher_weights
    if r.model.ranking_loss != "infonce" and weights is not None and len(weights) != len(r.data.teachers):
        raise OptionError(f"--model.teacher_weights has {len(weights)} weights for {len(r.data.teachers)} "
                          f"teachers ({','.join(r.data.teachers)})")


def config(mode: str = "cpu-scifact", overrides: dict | None = None) -> Recipe:
    """The recipe in `mode` with dotted `overrides` (given options), derived fields set: what the CLI builds."""
    return mode_config(RECIPE, MODES, mode, overrides or {}, derived=DERIVED, warmups=WARMUPS, flags=FLAGS)


class BestOnHoldout:
    """Eval hook: held-out KL / top-1 accuracy / non-zeros; keeps host params with the lowest KL."""

    # What it reports (the names --fit.best_metric may give).
    METRICS = ("holdout_rank", "holdout_acc", "holdout_doc_nnz")

    def __init__(self, model: SparseModel, batches: list[dict]):
        self.batches, self.best, self.best_rank, self.best_step = batches, None, float("inf"), None
        self._metrics = jax.jit(lambda p, b: model.loss_fn(p, b)[1])

    def __call__(self, state) -> dict[str, float]:
        per_batch = [jax.device_get(self._metrics(state.params, b)) for b in self.batches]
        out = {name: float(np.mean([m[name.removeprefix("holdout_")] for m in per_batch])) for name in self.METRICS}
        if out["holdout_rank"] < self.best_rank:
            self.best_rank, self.best_step = out["holdout_rank"], int(state.step)
            self.best = jax.device_get(state.params)
        return out


def train(r: Recipe, out_dir: str):
    from jaxir.eval.beir import load_beir
    from jaxir.models.hf import load_bert
    from jaxir.retrievers.sparse import IDF_FILE
    from jaxir.text import load_tokenizer, tokenize
    from jaxir.text.idf import compute_idf, load_idf, save_idf, tokenizer_vocab
    from jaxir.training.loop import fit
    from jaxir.training.step import COMPUTE_DTYPES

    r, out = apply_overrides(r, {}, DERIVED), Path(out_dir)
    check_teachers(r)
    # The FLOPS warm-up ends inside the run (a longer one never reaches lambda_d); the command line
    # shortens a configured one, this refuses one a config built in Python brings.
    check_warmups(r, WARMUPS, DERIVED, FLAGS)
    method = checkpoint_method(r.model)
    load_checkpoint, save_checkpoint = method.load_checkpoint, method.save_checkpoint
    # A bad --init-from fails now, not after minutes of mining and teacher encoding.
    start = load_checkpoint(r.init_from)[1] if r.init_from else None
    data = load_beir(r.data.dataset, split="train")
    texts = dict(zip(data.doc_ids, data.doc_texts()))
    tokenizer = load_tokenizer(r.model.model)
    vocab = tokenizer_vocab(tokenizer)
    doc_tokens = tokenize(tokenizer, list(texts.values()), what="document")
    idf = load_idf(r.data.idf, vocab) if r.data.idf else compute_idf(doc_tokens, len(vocab))
    qids, queries, candidates, teacher = mine_and_score(r, data, texts)

    bert_config, bert_params = load_bert(r.model.model, dtype=COMPUTE_DTYPES[r.fit.compute_dtype])
    model = SparseModel(r.model, idf=idf, bert_config=bert_config, bert_params=bert_params,
                        tokenizer=tokenizer)
    params = model.init(jax.random.PRNGKey(r.fit.seed))
    if r.init_from:
        from jaxir.models.saved_model import check_same_tree

        check_same_tree(params, start, where=r.init_from, what="sparse starting params")
        params = start
    elif r.mlm.steps:
        params = mlm_warmup(r, model, params, doc_tokens, out)
        save_checkpoint(out / "mlm-params", r.model, params)
    batch = r.fit.batch_size
    held_rows, train_rows = split_holdout(r, qids, out)
    n_held = len(held_rows)
    source, held = tuple_texts(model, r.data, (train_rows, held_rows), candidates, texts, teacher, doc_tokens)
    hook = BestOnHoldout(model, [held.take(np.arange(i, i + batch))
                                 for i in range(0, n_held, batch)]) if n_held else None
    probe = source.take(np.arange(min(batch, len(source))))
    log_shares = functools.partial(log_regulariser_shares, model, probe, out / "rank" / "metrics.jsonl")
    log_shares("init", 0, params)
    rank_fit = dataclasses.replace(r.fit, out_dir=str(out / "rank"), eval_every=r.fit.eval_every if hook else 0)
    result = fit(task_for(r, model, lambda rng, batch: params), source, config=rank_fit,
                 eval_hook=hook, optim=r.optim)
    best = result.state.params if hook is None or hook.best is None else hook.best
    if hook is not None:
        print(f"exporting step {hook.best_step} (held-out KL {hook.best_rank:.4f} on {n_held} queries)")
    log_shares("end", hook.best_step if hook and hook.best_step else r.fit.steps, best)
    # The idf.json goes in with the params, in one atomic write: a folder with a model.json is whole.
    idf_file = r.data.idf or save_idf(out / IDF_FILE, idf, vocab, n_docs=len(doc_tokens))
    return save_checkpoint(out / method.METHOD, r.model, best, idf_file=idf_file), result


def mine_and_score(r: Recipe, data, texts: dict[str, str]):
    """(query ids, query texts, [positive, negatives...] doc ids, teacher scores) of the train split:
    BM25 and dense candidates, then every teacher over the whole corpus per query."""
    from jaxir.index.bm25 import BM25Index
    from jaxir.methods.dense import DenseModel

    bm25 = BM25Index.build(list(texts.values()), doc_ids=list(texts))
    dense = DenseModel()
    flat = dense_corpus(data, dense, r.data.dense_index, r.data.index_cache)
    qids, queries, candidates = mine_candidates(data, r.data, bm25, dense, flat)
    return qids, queries, candidates, teacher_scores(r.data.teachers, data, queries, r.data.index_cache)


def mlm_warmup(r: Recipe, model: SparseModel, params, doc_tokens, out: Path):
    """The optional stage before ranking: r.mlm.steps of masked-token prediction on the corpus."""
    from jaxir.training.loop import fit
    from jaxir.training.task import Task

    ckpt = r.fit.checkpoint_dir and f"{r.fit.checkpoint_dir.rstrip('/')}/mlm"
    mlm = fit(Task(init=lambda rng, batch: params, loss_fn=model.mlm_loss_fn, param_rules=PARAM_RULES,
                   config={"method": "sparse-mlm", **dataclasses.asdict(r.model)}),
              TextSource(model.tokenizer, doc_tokens, r.model.doc_maxlen),
              config=dataclasses.replace(r.fit, steps=r.mlm.steps, batch_size=r.mlm.batch_size,
                                         out_dir=str(out / "mlm"), checkpoint_dir=ckpt, eval_every=0),
              optim=OptimConfig(learning_rate=r.mlm.learning_rate, total_steps=r.mlm.steps,
                                warmup_steps=min(10, r.mlm.steps)))
    return mlm.state.params


def split_holdout(r: Recipe, qids: list[str], out: Path) -> tuple[np.ndarray, np.ndarray]:
    """(held-out rows, train rows) of the mined queries: a seeded whole number of batches, at
    most half; the held-out ids go to <out>/holdout.json, so full-corpus checks on them stay
    unbiased (never trained on)."""
    batch = r.fit.batch_size
    n_held = min(r.data.holdout, len(qids) // 2) // batch * batch
    order = np.random.default_rng(r.fit.seed).permutation(len(qids))
    held_rows, train_rows = np.sort(order[:n_held]), np.sort(order[n_held:])
    out.mkdir(parents=True, exist_ok=True)
    (out / HOLDOUT_FILE).write_text(json.dumps({"data": str(r.data.dataset), "split": "train",
                                                "query_ids": [qids[i] for i in held_rows]}, indent=1) + "\n")
    return held_rows, train_rows


def task_for(r: Recipe, model: SparseModel, init=None):
    """The ranking stage's task for `model` (`init`: its params; default fresh): train() and
    `jaxir plan`."""
    from jaxir.training.task import Task

    return Task(init=init or model.init, loss_fn=model.loss_fn, param_rules=PARAM_RULES, step_aware=True,
                config={"method": checkpoint_method(r.model).METHOD, **dataclasses.asdict(r.model)})


parse_args, main = entry_points(__doc__, Recipe, RECIPE, train, modes=MODES, flags=FLAGS, derived=DERIVED,
                                warmups=WARMUPS, eval_metrics=BestOnHoldout.METRICS)


if __name__ == "__main__":
    main()
