"""Cross-encoder reranker recipe: BM25 hard negatives -> MiniLM cross-encoder with LCE loss.

Both modes share every line of code; only the numbers differ (see MODES).

CPU SciFact mode (759 train queries x 2 epochs / 4 = 379 steps of 16 pairs x 192 tokens, plus
50 x 100 held-out pairs to choose alpha; estimated 30-40 min on 2 otherwise idle cores):
    jaxir train --recipe cross-encoder --mode cpu --data ../shared/data/beir/scifact --out runs/ce-scifact
    jaxir eval --method cross-encoder --checkpoint runs/ce-scifact --rerank bm25 --depth 100 \
        --data ../shared/data/beir/scifact --output-json runs/ce-scifact/test.json
NFCorpus: its train tuples (2-word topic queries, ~43 indirectly linked positives each) make the
reranker worse, trained from MiniLM or warm-started from SciFact (--init-from, RESULTS). The SciFact
reranker carries over instead; choose its alpha on held-out NFCorpus train queries:
    jaxir tune-alpha --checkpoint runs/ce-scifact --data ../shared/data/beir/nfcorpus
    jaxir eval --method cross-encoder --checkpoint runs/ce-scifact --alpha 0.3 --rerank bm25 --depth 100 \
        --data ../shared/data/beir/nfcorpus
TPU MS MARCO mode (BEIR-format msmarco folder; train qrels give the positives). Mine once
(BM25 over 8.8M passages is slow) and put the file at <out>/negatives.bm25.d100.jsonl on every
worker, then run the same command on all workers:
    jaxir mine --retriever bm25 --depth 100 --data <beir>/msmarco --out runs/ce-msmarco/negatives.bm25.d100.jsonl
    jaxir train --recipe cross-encoder --mode tpu --data <beir>/msmarco --out runs/ce-msmarco

Steps: mine BM25 top-`mine_depth` negatives for the train split (or reuse <out>/negatives.<miner>.d<depth>.jsonl),
hold out `holdout` train queries, train on the rest through the engine (checkpoints, resume),
pick the interpolation weight alpha on the held-out queries (nDCG@10 over BM25 top-`tune_depth`;
never on test), export the reranker to <out>/reranker with that alpha.
Any recipe field can be overridden: --lr 3e-5 --epochs 2 --alpha 0.5 ...
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from jaxir.cli_types import add_config_options, with_overrides


@dataclasses.dataclass(frozen=True)
class Recipe:
    # First-stage retriever for negatives, and how many candidates to keep per query.
    miner: str = "bm25"
    mine_depth: int = 100
    # Train queries held out to choose alpha when `alpha` is None (0: no interpolation).
    holdout: int = 80
    # First-stage depth reranked on the held-out queries (use the evaluation depth: the min-max
    # normalisation depends on it), and the alpha grid.
    tune_depth: int = 100
    alpha_grid: tuple = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    # Model + training (CrossEncoderConfig fields).
    max_length: int = 256
    n_negatives: int = 7
    neg_depth: int = 100
    lr: float = 2e-5
    head_lr_multiplier: float = 1.0
    warmup: float = 0.1
    epochs: int = 1
    batch_queries: int = 8
    alpha: float | None = None
    # AdamW details.
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    # "float32" (CPU reference) or "bfloat16" (accelerators).
    compute_dtype: str = "float32"
    checkpoint_every: int = 0
    log_every: int = 10
    # Stop after this many steps (0 = all epochs); for smoke runs.
    max_steps: int = 0
    # Warm start: a trained cross-encoder (reranker export or training folder) whose encoder and
    # head replace MiniLM + a fresh head, e.g. carrying a SciFact reranker over to NFCorpus.
    init_from: str | None = None
    seed: int = 0


MODES = {
    # LCE needs the new head to find a direction fast (x50 lr), more epochs with fresh negatives
    # beat more negatives per query at equal compute, top-30 BM25 negatives are the hard ones,
    # and 192 tokens keep most of a SciFact abstract. alpha is chosen on held-out train queries.
    "cpu": Recipe(max_length=192, n_negatives=3, neg_depth=30, lr=3e-5, head_lr_multiplier=50.0,
                  epochs=2, batch_queries=4, holdout=50, tune_depth=100),
    # MS MARCO: 500k train queries, 1 epoch, 64 queries x 8 passages per step, bf16.
    "tpu": Recipe(max_length=256, n_negatives=7, neg_depth=100, lr=2e-5, head_lr_multiplier=20.0,
                  epochs=1, batch_queries=64, holdout=500, tune_depth=100,
                  compute_dtype="bfloat16", checkpoint_every=2000, log_every=100),
}


def model_config(r: Recipe):
    from jaxir.methods.cross_encoder import CrossEncoderConfig

    return CrossEncoderConfig(max_length=r.max_length, n_negatives=r.n_negatives,
                              neg_depth=r.neg_depth, learning_rate=r.lr,
                              head_lr_multiplier=r.head_lr_multiplier, warmup=r.warmup,
                              epochs=r.epochs, batch_queries=r.batch_queries, alpha=r.alpha,
                              seed=r.seed)


def holdout_qids(qids: list[str], n: int, seed: int) -> list[str]:
    """`n` seeded train queries held out from training to choose alpha (sorted)."""
    return sorted(np.random.default_rng(seed).permutation(qids)[:n].tolist()) if n else []


def split_holdout(mined: Path, out: Path, n: int, seed: int) -> tuple[Path, list[str]]:
    """Write the mined records minus `n` seeded held-out queries; returns (file, held-out qids)."""
    from jaxir.data.mine import read_mined, write_mined

    held = holdout_qids([rec["qid"] for rec in read_mined(mined)], n, seed)
    keep = set(held)
    write_mined(out, (rec for rec in read_mined(mined) if rec["qid"] not in keep))
    return out, held


def tune_alpha(reranker, data, qids, r: Recipe, index_dir) -> dict:
    """nDCG@10 on held-out train queries for each alpha (0 = first stage only)."""
    from jaxir.eval.metrics import evaluate
    from jaxir.methods.cross_encoder import interpolate
    from jaxir.pipeline.evaluate import run_search
    from jaxir.pipeline.rerank import merge_reranked
    from jaxir.pipeline.retrievers import get_retriever

    queries = {q: data.queries[q] for q in qids}
    qrels = {q: data.qrels[q] for q in qids}
    first, _ = run_search(get_retriever(r.miner).open(index_dir), queries, r.tune_depth)
    ranked = {q: sorted(first[q].items(), key=lambda x: (-x[1], x[0])) for q in qids}
    ce = reranker.scores([queries[q] for q in qids],
                         [[data.text_of(d) for d, _ in ranked[q]] for q in qids],
                         desc="tune alpha: score held-out pairs")
    table = {}
    for alpha in (0.0, *r.alpha_grid):
        run = {q: merge_reranked(ranked[q], ranked[q],
                                 interpolate(s, np.array([x for _, x in ranked[q]]), alpha))
               for q, s in zip(qids, ce)}
        table[alpha] = float(evaluate(run, qrels, metrics=("ndcg@10",))["ndcg@10"])
    return table


def train(r: Recipe, data_dir: str, out_dir: str) -> dict:
    from jaxir.data.mine import mine_hard_negatives
    from jaxir.data.tuples import PairEncoder, TupleConfig, TupleSource
    from jaxir.eval.beir import load_beir
    from jaxir.methods.cross_encoder import CrossEncoder
    from jaxir.models.hf import load_bert
    from jaxir.pipeline.rerank import EXPORT_DIR, CrossEncoderReranker
    from jaxir.training.loop import FitConfig, fit
    from jaxir.training.optim import OptimConfig
    from jaxir.training.step import COMPUTE_DTYPES
    from jaxir.training.task import Task

    out = Path(out_dir)
    data = load_beir(data_dir, split="train")
    mined = out / f"negatives.{r.miner}.d{r.mine_depth}.jsonl"
    summary = {} if mined.is_file() else mine_hard_negatives(
        data, r.miner, r.mine_depth, out=mined, cache=out / "indexes")
    # A given alpha needs no tuning, so no query is held out then.
    n_held = r.holdout if r.alpha is None else 0
    train_file, held = split_holdout(mined, out / "train_tuples.jsonl", n_held, r.seed)

    cfg = model_config(r)
    bert_config, bert_params = load_bert(cfg.model, dtype=COMPUTE_DTYPES[r.compute_dtype])
    head_params = None
    if r.init_from:
        bert_params, head_params = warm_start_params(r.init_from, bert_config, bert_params)
    model = CrossEncoder(cfg, bert_config=bert_config, bert_params=bert_params,
                         head_params=head_params)
    source = TupleSource(train_file, data.queries, data.text_of,
                         PairEncoder(model.tokenizer, cfg.max_length),
                         TupleConfig(cfg.n_negatives, cfg.neg_depth, r.seed, draws=cfg.epochs))
    steps = len(source) // cfg.batch_queries
    steps = min(steps, r.max_steps) if r.max_steps else steps
    optim = OptimConfig(learning_rate=cfg.learning_rate, warmup_steps=int(cfg.warmup * steps),
                        total_steps=steps, weight_decay=r.weight_decay, clip_norm=r.clip_norm,
                        lr_multipliers=(("head", cfg.head_lr_multiplier),))
    task = Task(init=model.init, loss_fn=model.loss_fn, config=model.description())
    result = fit(task, source, optim=optim,
                 config=FitConfig(steps=steps, batch_size=cfg.batch_queries, seed=r.seed,
                                  out_dir=str(out), compute_dtype=r.compute_dtype,
                                  log_every=r.log_every, checkpoint_every=r.checkpoint_every))

    def reranker_with(alpha):
        model_alpha = CrossEncoder(dataclasses.replace(cfg, alpha=alpha), bert_config=bert_config)
        return CrossEncoderReranker(model_alpha, result.state.params)

    reranker, table = reranker_with(cfg.alpha), {}
    if held:
        index_dir = Path(summary.get("index") or _index_dir(data, r, out / "indexes"))
        table = tune_alpha(reranker, data, held, r, index_dir)
        reranker = reranker_with(float(max(r.alpha_grid, key=lambda a: table[a])))
    reranker.save(out / EXPORT_DIR)
    report = {"recipe": dataclasses.asdict(r), "steps": steps, "last_train": result.last_train,
              "examples_per_s": result.examples_per_s, "holdout_ndcg@10_by_alpha": table,
              "alpha": reranker.config.alpha, "reranker": str(out / EXPORT_DIR)}
    (out / "recipe_result.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def warm_start_params(path: str, bert_config, like: dict) -> tuple[dict, dict]:
    """(encoder, head) params of a trained cross-encoder, the encoder cast to the dtypes of
    ``like`` (the backbone params it replaces); its config must match ``bert_config``."""
    import jax

    from jaxir.errors import CheckpointError
    from jaxir.pipeline.rerank import CrossEncoderReranker

    source = CrossEncoderReranker.load(path)
    if source.model.bert_config.to_dict() != bert_config.to_dict():
        raise CheckpointError(f"--init-from {path}: its encoder config differs from this recipe's "
                              f"backbone ({source.model.bert_config.to_dict()} vs {bert_config.to_dict()})")
    bert = jax.tree_util.tree_map(lambda a, ref: np.asarray(a, ref.dtype), source.params["bert"], like)
    return bert, source.params["head"]


def main_tune_alpha(args) -> dict:
    """`jaxir tune-alpha`: held-out nDCG@10 by alpha for a trained reranker on a BEIR train split.

    The held-out queries are drawn as the recipe draws them (same seed, same query order: the train
    queries with a positive, in the order `jaxir mine` writes them), so the table of a training
    run can be recomputed, and a reranker trained elsewhere can get its alpha for a new dataset
    without looking at test.
    """
    from jaxir.data.mine import positives_of
    from jaxir.eval.beir import load_beir
    from jaxir.pipeline.rerank import CrossEncoderReranker

    data = load_beir(args.data, split="train")
    qids = [q for q in data.queries if positives_of(data.qrels.get(q, {}))]
    r = dataclasses.replace(MODES["cpu"], tune_depth=args.depth, seed=args.seed)
    held = holdout_qids(qids, args.holdout, args.seed)
    table = tune_alpha(CrossEncoderReranker.load(args.checkpoint), data, held, r,
                       _index_dir(data, r, Path(args.cache)))
    best = float(max(r.alpha_grid, key=lambda a: table[a]))
    report = {"checkpoint": str(args.checkpoint), "data": str(args.data), "held_out": len(held),
              "depth": args.depth, "ndcg@10_by_alpha": table, "alpha": best}
    print(json.dumps(report, indent=2))
    return report


def _index_dir(data, r: Recipe, out: Path) -> Path:
    from jaxir.pipeline.evaluate import build_or_reuse, default_index_dir
    from jaxir.pipeline.retrievers import get_retriever

    retriever = get_retriever(r.miner)
    return build_or_reuse(retriever, data, default_index_dir(out, data, retriever))[0]


def parse_args(argv=None) -> tuple[Recipe, str, str]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=sorted(MODES), default="cpu")
    ap.add_argument("--data", required=True, help="BEIR folder with a train split")
    ap.add_argument("--out", required=True)
    add_config_options(ap, Recipe, skip=("alpha_grid",))  # every recipe field can be overridden
    args = vars(ap.parse_args(argv))
    mode, data, out = args.pop("mode"), args.pop("data"), args.pop("out")
    return with_overrides(MODES[mode], args), data, out


def main(argv=None) -> dict:
    recipe, data, out = parse_args(argv)
    report = train(recipe, data, out)
    print(json.dumps({k: report[k] for k in ("steps", "last_train", "alpha", "reranker")}, indent=2))
    return report


if __name__ == "__main__":
    main()
