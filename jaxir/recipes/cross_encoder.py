"""Cross-encoder reranker recipe: BM25 hard negatives -> MiniLM cross-encoder with LCE loss.

Both modes share every line of code; only the numbers differ (see MODES).

CPU SciFact mode (the defaults: 759 train queries x 2 draws / 4 = 379 steps of 16 pairs x 192
tokens, plus 50 x 100 held-out pairs to choose alpha; estimated 30-40 min on 2 otherwise idle cores):
    jaxir train --recipe cross-encoder --mode cpu --data ../shared/data/beir/scifact --out runs/ce-scifact
    jaxir eval --method cross-encoder --checkpoint runs/ce-scifact --rerank bm25 --depth 100 \
        --data ../shared/data/beir/scifact --output-json runs/ce-scifact/test.json
NFCorpus: its train tuples (2-word topic queries, ~43 indirectly linked positives each) make the
reranker worse, trained from MiniLM or warm-started from SciFact (--init-from, docs/results-log.md). The SciFact
reranker carries over instead; choose its alpha on held-out NFCorpus train queries:
    jaxir tune-alpha --checkpoint runs/ce-scifact --data ../shared/data/beir/nfcorpus
    jaxir eval --method cross-encoder --checkpoint runs/ce-scifact --alpha 0.3 --rerank bm25 --depth 100 \
        --data ../shared/data/beir/nfcorpus
TPU MS MARCO mode (BEIR-format msmarco folder; train qrels give the positives). Mine once
(BM25 over 8.8M passages is slow) and put the file at <out>/negatives.bm25.d100.jsonl, with the
negatives.bm25.d100.jsonl.key.json `jaxir mine` writes beside it (what it was mined from: without
it, or for another train split, the recipe mines again), on every worker, then run the same
command on all workers:
    jaxir mine --retriever bm25 --depth 100 --data <beir>/msmarco --out runs/ce-msmarco/negatives.bm25.d100.jsonl
    jaxir train --recipe cross-encoder --mode tpu --data <beir>/msmarco --out runs/ce-msmarco

Steps: mine BM25 top-`mine_depth` negatives for the train split (or reuse <out>/negatives.<miner>.d<depth>.jsonl
when its key record matches the split's queries, qrels and corpus and the miner),
hold out `holdout` train queries, train on the rest through the engine (checkpoints, resume),
pick the interpolation weight alpha on the held-out queries (nDCG@10 over BM25 top-`tune_depth`;
never on test), save the model to <out>/cross-encoder with that alpha (figures: <out>/recipe_result.json).
Run length: data.tuples.draws passes over the train queries (each with fresh negatives), at
fit.batch_size queries per step; --fit.steps N > 0 stops after at most N steps (smoke runs).
Any field can be overridden: --optim.learning_rate 3e-5 --data.tuples.draws 1 --model.alpha 0.5 ...
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from jaxir.config.bounds import bounded, one_of
from jaxir.config.options import Derived, mode_config
from jaxir.config.overrides import apply_overrides
from jaxir.data.tuples import TupleConfig
from jaxir.fs import INDEX_CACHE
from jaxir.methods.cross_encoder_config import CrossEncoderConfig
from jaxir.recipes import entry_points
from jaxir.retrievers.registry import first_stage_methods
from jaxir.training.loop import FitConfig
from jaxir.training.optim import OptimConfig


@dataclasses.dataclass(frozen=True)
class CrossEncoderData:
    # BEIR folder with a train split (`jaxir train --data`).
    dataset: str = "scifact"
    # First-stage method mining the negatives (any of `jaxir mine`'s: bm25, dense, ...).
    miner: str = one_of("bm25", first_stage_methods())
    # Candidates mined per train query.
    mine_depth: int = bounded(100, ge=1)
    # 1 positive + n_negatives of the top neg_depth mined; draws = epochs, each with fresh negatives.
    tuples: TupleConfig = TupleConfig(n_negatives=3, neg_depth=30, draws=2)
    # Train queries held out to choose alpha when model.alpha is None (0: no interpolation).
    holdout: int = bounded(50, ge=0)
    # First-stage depth reranked on the held-out queries (the evaluation depth: min-max depends on it).
    tune_depth: int = bounded(100, ge=1)
    # The alphas tried on the held-out queries (each in [0, 1], as model.alpha).
    alpha_grid: tuple[float, ...] = bounded((0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), ge=0.0, le=1.0)


@dataclasses.dataclass(frozen=True)
class Recipe:
    # The reranker: 192-token pairs keep most of a SciFact abstract; alpha None: tuned on the holdout.
    model: CrossEncoderConfig = CrossEncoderConfig(pair_maxlen=192)
    # Train split, mined negatives (top-30 BM25: the hard ones), 2 passes of 3, held-out queries.
    data: CrossEncoderData = CrossEncoderData()
    # AdamW: LCE needs the new head to find a direction fast (x50 its learning rate).
    optim: OptimConfig = OptimConfig(learning_rate=3e-5, clip_norm=1.0, lr_multipliers=(("head", 50.0),))
    # 4 queries (x 4 pairs) per step; steps 0 = every draw of every train query.
    fit: FitConfig = FitConfig(steps=0, batch_size=4)
    # Warm-up as a fraction of all optimizer updates (optim.warmup_steps follows from it).
    warmup_fraction: float = 0.1
    # Warm start from a trained cross-encoder (its model folder or training output folder): its encoder and head.
    init_from: str | None = None


MODES = {
    # SciFact on CPU: the defaults.
    "cpu": {},
    # MS MARCO: 500k train queries, 1 pass, 64 queries x 8 passages per step, bf16.
    "tpu": {"model.pair_maxlen": 256, "data.tuples.n_negatives": 7, "data.tuples.neg_depth": 100,
            "data.tuples.draws": 1, "data.holdout": 500, "optim.learning_rate": 2e-5,
            "optim.lr_multipliers": (("head", 20.0),), "fit.batch_size": 64,
            "fit.compute_dtype": "bfloat16", "fit.dropout_rng": "rbg", "fit.checkpoint_every": 2000,
            "fit.log_every": 100},
    # A run end to end in seconds once compiled: its test's sizes (2 steps of 8 queries x 2 pairs
    # of 32 tokens, BM25 top 10), alpha chosen on 2 held-out queries' top 10.
    "smoke": {"data.mine_depth": 10, "data.tuples.n_negatives": 1, "data.tuples.neg_depth": 5,
              "data.tuples.draws": 1, "data.holdout": 2, "data.tune_depth": 10, "model.pair_maxlen": 32,
              "fit.steps": 2, "fit.batch_size": 8, "fit.fast_compile": True},
}
MODES["cpu-scifact"], MODES["tpu-msmarco"] = MODES["cpu"], MODES["tpu"]  # the other recipes' names
FLAGS = {"data.dataset": "--data"}  # the option `jaxir train --data` passes on
DERIVED = {
    "optim.total_steps": Derived("the updates: train tuples // fit.batch_size steps (at most fit.steps "
                                 "when > 0) // optim.accumulate"),
    "optim.warmup_steps": Derived("int(warmup_fraction * optim.total_steps)"),
    "model.seed": Derived("fit.seed", lambda get: get("fit.seed")),
    "data.tuples.seed": Derived("fit.seed (also seeds the held-out queries)", lambda get: get("fit.seed")),
    "fit.out_dir": Derived("--out"),
}
WARMUPS: dict = {}  # its one warm-up follows the run already: warmup_fraction of the updates (derived)
RECIPE = apply_overrides(Recipe(), {}, DERIVED)


def config(mode: str = "cpu", overrides: dict | None = None) -> Recipe:
    """The recipe in `mode` with dotted `overrides` (given options), derived fields set: what the CLI builds."""
    return mode_config(RECIPE, MODES, mode, overrides or {}, derived=DERIVED, warmups=WARMUPS, flags=FLAGS)


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


def tune_alpha(reranker, data, qids, index_dir, *, miner: str, depth: int, alphas) -> dict:
    """nDCG@10 on held-out train queries reranking the `miner` top `depth`, for each alpha
    (0 = first stage only, 1 = the reranker alone). `reranker.scores(queries, texts)`."""
    from jaxir.eval.metrics import evaluate
    from jaxir.methods.cross_encoder import interpolate
    from jaxir.pipeline.search import run_search
    from jaxir.pipeline.rerank import merge_reranked
    from jaxir.retrievers.registry import get_retriever

    queries = {q: data.queries[q] for q in qids}
    qrels = {q: data.qrels[q] for q in qids}
    first, _ = run_search(get_retriever(miner).open(index_dir), queries, depth)
    ranked = {q: sorted(first[q].items(), key=lambda x: (-x[1], x[0])) for q in qids}
    ce = reranker.scores([queries[q] for q in qids],
                         [[data.text_of(d) for d, _ in ranked[q]] for q in qids],
                         desc="tune alpha: score held-out pairs")
    table = {}
    for alpha in (0.0, *alphas):
        run = {q: merge_reranked(ranked[q], ranked[q],
                                 interpolate(s, np.array([x for _, x in ranked[q]]), alpha, query=q))
               for q, s in zip(qids, ce)}
        table[alpha] = float(evaluate(run, qrels, metrics=("ndcg@10",))["ndcg@10"])
    return table


def train(r: Recipe, out_dir: str):
    """(the saved model folder `OUT/cross-encoder`, FitResult); the alpha table and the run's
    figures go to OUT/recipe_result.json."""
    from jaxir.data.mine import mine_or_reuse
    from jaxir.eval.beir import load_beir
    from jaxir.retrievers.cross_encoder import METHOD

    r, out = apply_overrides(r, {}, DERIVED), Path(out_dir)
    d = r.data
    data = load_beir(d.dataset, split="train")
    # Reused only when its key record matches this train split's content and the miner.
    mined, summary = mine_or_reuse(data, d.miner, d.mine_depth, out=out / f"negatives.{d.miner}.d{d.mine_depth}.jsonl",
                                   cache=out / "indexes")
    # A given alpha needs no tuning, so no query is held out then.
    n_held = d.holdout if r.model.alpha is None else 0
    train_file, held = split_holdout(mined, out / "train_tuples.jsonl", n_held, r.fit.seed)
    model, result, steps = fit_model(r, data, train_file, out)
    reranker, table = scorer_with(model, result.state.params, r.model.alpha), {}
    if held:
        index_dir = Path(summary.get("index") or first_stage_index(data, d.miner, out / "indexes"))
        table = tune_alpha(reranker, data, held, index_dir, miner=d.miner, depth=d.tune_depth,
                           alphas=d.alpha_grid)
        reranker = scorer_with(model, result.state.params, float(max(d.alpha_grid, key=lambda a: table[a])))
    folder = reranker.save(out / METHOD)
    report = {"recipe": dataclasses.asdict(r), "steps": steps, "last_train": result.last_train,
              "examples_per_s": result.examples_per_s, "holdout_ndcg@10_by_alpha": table,
              "alpha": reranker.config.alpha, "model": str(folder)}
    (out / "recipe_result.json").write_text(json.dumps(report, indent=2) + "\n")
    return folder, result


def fit_model(r: Recipe, data, train_file: Path, out: Path):
    """(model, FitResult, steps): the cross-encoder trained on the tuples of `train_file`."""
    from jaxir.data.tuples import PairEncoder, TupleSource
    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.models.hf import load_bert
    from jaxir.training.loop import fit
    from jaxir.training.step import COMPUTE_DTYPES

    bert_config, bert_params = load_bert(r.model.model, dtype=COMPUTE_DTYPES[r.fit.compute_dtype])
    head_params = pooler_params = None
    if r.init_from:
        bert_params, head_params, pooler_params = warm_start_params(r.init_from, bert_config, bert_params,
                                                                    pooler=r.model.pooler)
    model = CrossEncoderModel(r.model, bert_config=bert_config, bert_params=bert_params,
                              head_params=head_params, pooler_params=pooler_params)
    source = TupleSource(train_file, data.queries, data.text_of,
                         PairEncoder(model.tokenizer, r.model.pair_maxlen), r.data.tuples)
    steps = len(source) // r.fit.batch_size
    steps = min(steps, r.fit.steps) if r.fit.steps else steps
    updates = max(1, steps // r.optim.accumulate)
    optim = dataclasses.replace(r.optim, warmup_steps=int(r.warmup_fraction * updates), total_steps=updates)
    result = fit(task_for(model), source, optim=optim,
                 config=dataclasses.replace(r.fit, steps=steps, out_dir=str(out)))
    return model, result, steps


def scorer_with(model, params, alpha):
    """The trained `model` as a scorer whose saved config carries `alpha`."""
    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.retrievers.cross_encoder import CrossEncoderScorer

    with_alpha = CrossEncoderModel(dataclasses.replace(model.config, alpha=alpha), bert_config=model.bert_config,
                                   tokenizer=model.tokenizer)
    return CrossEncoderScorer(with_alpha, params)


def task_for(model):
    """The engine's task for the CrossEncoderModel `model`: train() and `jaxir plan`."""
    from jaxir.training.task import Task

    return Task(init=model.init, loss_fn=model.loss_fn, config=model.description())


def warm_start_params(path: str, bert_config, like: dict, *, pooler: bool = False) -> tuple[dict, dict, dict | None]:
    """(encoder, head, pooler or None) params of a trained cross-encoder, the encoder cast to the
    dtypes of ``like`` (the backbone params it replaces); its config must match ``bert_config``,
    and it must read [CLS] through BERT's pooler exactly when ``pooler`` (a head trained on
    pooled [CLS] scores raw [CLS] wrongly, and the other way round)."""
    import jax

    from jaxir.errors import CheckpointError
    from jaxir.retrievers.cross_encoder import CrossEncoderScorer

    source = CrossEncoderScorer.load(path)
    if source.model.bert_config.to_dict() != bert_config.to_dict():
        raise CheckpointError(f"--init-from {path}: its encoder config differs from this recipe's "
                              f"backbone ({source.model.bert_config.to_dict()} vs {bert_config.to_dict()})")
    if source.model.config.pooler != pooler:
        raise CheckpointError(f"--init-from {path}: it {'reads' if source.model.config.pooler else 'has no'} "
                              f"BERT's pooler, this model {'needs' if pooler else 'has none'} "
                              f"(the cross-encoder recipe: --model.pooler {str(source.model.config.pooler).lower()})")
    bert = jax.tree_util.tree_map(lambda a, ref: np.asarray(a, ref.dtype), source.params["bert"], like)
    return bert, source.params["head"], source.params.get("pooler")


def tune_alpha_report(*, checkpoint, data, holdout: int = 50, depth: int = 100, seed: int = 0,
                      cache=INDEX_CACHE) -> dict:
    """`jaxir tune-alpha`: held-out nDCG@10 by alpha for a trained reranker on a BEIR train split.

    The held-out queries are drawn as the recipe draws them (same seed, same query order: the train
    queries with a positive, in the order `jaxir mine` writes them), so the table of a training
    run can be recomputed, and a reranker trained elsewhere can get its alpha for a new dataset
    without looking at test.
    """
    from jaxir.data.mine import positives_of
    from jaxir.eval.beir import load_beir
    from jaxir.retrievers.cross_encoder import CrossEncoderScorer

    dataset = load_beir(data, split="train")
    qids = [q for q in dataset.queries if positives_of(dataset.qrels.get(q, {}), dataset.corpus)]
    r = config("cpu", {"data.tune_depth": depth, "fit.seed": seed})
    held = holdout_qids(qids, holdout, seed)
    table = tune_alpha(CrossEncoderScorer.load(checkpoint), dataset, held,
                       first_stage_index(dataset, r.data.miner, Path(cache)), miner=r.data.miner,
                       depth=r.data.tune_depth, alphas=r.data.alpha_grid)
    best = float(max(r.data.alpha_grid, key=lambda a: table[a]))
    report = {"checkpoint": str(checkpoint), "data": str(data), "held_out": len(held),
              "depth": depth, "ndcg@10_by_alpha": table, "alpha": best}
    print(json.dumps(report, indent=2))
    return report


def first_stage_index(data, miner: str, out: Path) -> Path:
    """The `miner` index of `data`'s corpus in the cache folder `out` (built once)."""
    from jaxir.pipeline.built_from import index_for
    from jaxir.retrievers.registry import get_retriever

    return index_for(get_retriever(miner), data, None, out)[0]


parse_args, main = entry_points(__doc__, Recipe, RECIPE, train, modes=MODES, flags=FLAGS, derived=DERIVED,
                               out_help="output folder (see Steps above)")


if __name__ == "__main__":
    main()
