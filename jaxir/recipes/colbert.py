"""ColBERTv2 training recipe: n-way tuples -> KL distillation (or n-way CE) + in-batch CE.

AdamW (ColBERTv2: lr 1e-5; CPU modes 3e-5), linear warm-up/decay, global-norm clip 2.0,
doc_maxlen 180 (ColBERTConfig's indexing default is 220), query_maxlen 32.

CPU SciFact mode (the defaults; MiniLM backbone; denoised supervision: BM25 hard negatives mined
on the train split, scored by our trained cross-encoder, KL to its scores + in-batch CE):
    jaxir train --recipe cross-encoder --mode cpu --data <beir>/scifact --out runs/ce-scifact
    jaxir train --recipe colbert --mode cpu-scifact --data <beir>/scifact --out runs/colbert-scifact \
        --data.teacher_checkpoint runs/ce-scifact
    jaxir eval --method colbert --checkpoint runs/colbert-scifact/colbert --data <beir>/scifact
Without --data.teacher_checkpoint (or --data.teacher FILE) the mode trains with n-way CE instead
of KL. NFCorpus: --mode cpu-nfcorpus takes 800 train queries with 4 positives each, so that teacher
scoring stays affordable. No NFCorpus cross-encoder is worth distilling from (RESULTS), so the
measured run has no teacher and uses every query and positive:
    jaxir train --recipe colbert --mode cpu-nfcorpus --data <beir>/nfcorpus --out runs/colbert-nfcorpus \
        --data.max_queries 0 --data.max_positives 0
TPU MS MARCO mode (ColBERTv2: 64-way tuples scored by a cross-encoder, KL distillation, bf16):
    jaxir train --recipe colbert --mode tpu-msmarco --out <dir> --data.examples examples.64.json \
        --data.collection collection.tsv --data.queries queries.train.tsv
where each examples line is [qid, [pid, teacher score], ...] (positive / teacher's top first).
Without --data.examples any mode mines a BEIR folder (--data) as the CPU modes do.
Outputs: <out>/negatives.bm25.d<depth>[.q<N>.p<P>].jsonl and <out>/teacher[.q<N>.p<P>].d<neg_depth>.jsonl
(BEIR data, reused when present), metrics.jsonl, loss.png, checkpoints/ (resumable), <out>/colbert (params).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from jaxir.config_cli import Derived, apply_overrides, parse_config
from jaxir.data.tuples import TupleConfig
from jaxir.methods.colbert import ColBERTConfig, ColBERTModel
from jaxir.parallel import EMBED, VOCAB
from jaxir.training.loop import FitConfig
from jaxir.training.optim import OptimConfig


@dataclasses.dataclass(frozen=True)
class ColBERTData:
    # BEIR folder or name whose train qrels give the positives (`jaxir train --data`).
    dataset: str = "scifact"
    # MS MARCO n-way examples JSONL (None: mine `dataset` instead).
    examples: str | None = None
    # MS MARCO collection TSV (pid, text) of the examples.
    collection: str | None = None
    # MS MARCO queries TSV (qid, text) of the examples.
    queries: str | None = None
    # BM25 top-k mined per train query; negatives are drawn from its top tuples.neg_depth.
    mine_depth: int = 100
    # Tuples: 1 positive + n_negatives drawn (fresh each pass) from the top neg_depth.
    tuples: TupleConfig = TupleConfig(n_negatives=7, neg_depth=15)
    # Teacher scores JSONL ({"qid", "scores": {doc: s}}) of the mined candidates (None: no file).
    teacher: str | None = None
    # Cross-encoder checkpoint that scores each query's positives + top neg_depth now (if no teacher).
    teacher_checkpoint: str | None = None
    # A seeded subset of the mined queries (0: all): affordable teacher scoring on CPU (NFCorpus).
    max_queries: int = 0
    # At most this many positives per query (0: all).
    max_positives: int = 0


@dataclasses.dataclass(frozen=True)
class Recipe:
    # Student + loss: ColBERTv2's 180-token training docs, KL (given a teacher) + in-batch CE.
    model: ColBERTConfig = ColBERTConfig(doc_maxlen=180)
    # Train queries, mined negatives, teacher scores.
    data: ColBERTData = ColBERTData()
    # AdamW: the new projection needs more than ColBERTv2's 1e-5 to move in 300 CPU steps.
    optim: OptimConfig = OptimConfig(learning_rate=3e-5, warmup_steps=30)
    # 300 steps of 8 queries x 8 passages: ~3 passes over SciFact train, ~4.5 s/step on 2 cores.
    fit: FitConfig = FitConfig(steps=300, batch_size=8)


MODES = {
    # SciFact train (809 queries) on CPU: the defaults (0.7301 nDCG@10, RESULTS).
    "cpu-scifact": {},
    # The same budget on NFCorpus: 800 of its train queries, 4 positives each.
    "cpu-nfcorpus": {"data.dataset": "nfcorpus", "data.max_queries": 800, "data.max_positives": 4},
    # ColBERTv2's setup: 32 queries x 64 passages per step, 400k steps, lr 1e-5.
    "tpu-msmarco": {"data.tuples.n_negatives": 63, "fit.batch_size": 32, "fit.steps": 400_000,
                    "optim.learning_rate": 1e-5, "optim.warmup_steps": 20_000,
                    "fit.compute_dtype": "bfloat16"},
}
FLAGS = {"data.dataset": "--data"}  # the option `jaxir train --data` passes on
DERIVED = {
    "optim.total_steps": Derived("max(1, fit.steps // optim.accumulate)",
                                 lambda get: max(1, get("fit.steps") // get("optim.accumulate"))),
    "model.seed": Derived("fit.seed", lambda get: get("fit.seed")),
    "data.tuples.seed": Derived("fit.seed (also seeds the query subset)", lambda get: get("fit.seed")),
    "data.tuples.draws": Derived("enough passes over the mined queries for fit.steps x fit.batch_size rows"),
    "fit.out_dir": Derived("--out"),
}
RECIPE = apply_overrides(Recipe(), {}, DERIVED)
PARAM_RULES = ((r"word/embedding$", (VOCAB, EMBED)),)


def config(mode: str = "cpu-scifact", overrides: dict | None = None) -> Recipe:
    """The recipe in `mode` with dotted `overrides`, derived fields set: what the CLI builds."""
    return apply_overrides(RECIPE, {**MODES[mode], **(overrides or {})}, DERIVED, skip_none=False)


def nway_arrays(model: ColBERTModel, queries: list[str], docs: list[list[str]]) -> dict:
    """Query texts [B] + docs [B][N] -> q_ids, q_mask [B, Lq]; d_ids, d_mask [B, N, Ld]."""
    n = len(docs[0])
    q = model.tokenize_queries(queries)
    d = model.tokenize_docs([t for row in docs for t in row])
    shape = (len(queries), n, d.input_ids.shape[1])
    return {"q_ids": q.input_ids, "q_mask": q.attention_mask,
            "d_ids": d.input_ids.reshape(shape), "d_mask": d.attention_mask.reshape(shape)}


class NwaySource:
    """BatchSource over (query, [nway passages], teacher scores) examples, tokenised per batch."""

    def __init__(self, model: ColBERTModel, examples: list[tuple[str, list[str], list[float]]]):
        self.model, self.examples = model, examples

    def __len__(self) -> int:
        return len(self.examples)

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        picked = [self.examples[int(r)] for r in rows]
        out = nway_arrays(self.model, [e[0] for e in picked], [e[1] for e in picked])
        out["teacher"] = np.asarray([e[2] for e in picked], np.float32)
        return out


def subset_mined(mined: Path, max_queries: int, max_positives: int, seed: int) -> Path:
    """A seeded subset of the mined records (positives capped), written beside ``mined``."""
    from jaxir.data.mine import read_mined, write_mined

    if not (max_queries or max_positives):
        return mined
    out = mined.with_name(f"{mined.stem}.q{max_queries}.p{max_positives}{mined.suffix}")
    if not out.exists():
        records = list(read_mined(mined))
        order = np.random.default_rng(seed).permutation(len(records))
        keep = sorted(order[:max_queries] if max_queries else order)
        cap = max_positives or None
        write_mined(out, ({**records[i], "positives": records[i]["positives"][:cap]} for i in keep))
    return out


def prepare_beir(d: ColBERTData, out_dir: str):
    """Mine BM25 train negatives and teacher-score them (each reused when on disk).

    Returns (train split, mined file, teacher file or None).
    """
    from jaxir.data.mine import mine_hard_negatives
    from jaxir.data.teacher import score_mined
    from jaxir.eval.beir import load_beir

    data = load_beir(d.dataset, split="train")
    mined = Path(out_dir) / f"negatives.bm25.d{d.mine_depth}.jsonl"
    if not mined.exists():
        print(mine_hard_negatives(data, "bm25", d.mine_depth, out=mined))
    mined = subset_mined(mined, d.max_queries, d.max_positives, d.tuples.seed)
    teacher = d.teacher
    if teacher is None and d.teacher_checkpoint:
        from jaxir.retrievers.cross_encoder import CrossEncoderReranker

        tag = mined.stem.removeprefix(f"negatives.bm25.d{d.mine_depth}")
        teacher = Path(out_dir) / f"teacher{tag}.d{d.tuples.neg_depth}.jsonl"
        if not teacher.exists():
            scorer = CrossEncoderReranker.load(d.teacher_checkpoint).scores
            print(score_mined(scorer, mined, data.queries, data.text_of,
                              depth=d.tuples.neg_depth, out=teacher))
    return data, mined, teacher


def beir_source(model: ColBERTModel, r: Recipe, data, mined: Path, teacher):
    """TupleSource: every pass over the train queries draws fresh negatives."""
    from jaxir.data.tuples import TupleSource

    n_queries = sum(1 for _ in open(mined, "rb"))
    draws = max(1, -(-r.fit.steps * r.fit.batch_size // n_queries))
    return TupleSource(mined, data.queries, data.text_of, lambda q, d: nway_arrays(model, q, d),
                       dataclasses.replace(r.data.tuples, draws=draws), teacher_path=teacher)


def _read_tsv(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return dict(line.rstrip("\n").split("\t", 1) for line in f)


def msmarco_examples(d: ColBERTData) -> list:
    """ColBERTv2 n-way JSONL ([qid, [pid, score], ...]) + collection/queries TSVs, cut to
    1 + tuples.n_negatives passages."""
    collection, queries = _read_tsv(d.collection), _read_tsv(d.queries)
    examples = []
    with open(d.examples, encoding="utf-8") as f:
        for line in f:
            qid, *pairs = json.loads(line)
            pairs = pairs[: 1 + d.tuples.n_negatives]
            examples.append((queries[str(qid)], [collection[str(p)] for p, _ in pairs],
                             [float(s) for _, s in pairs]))
    return examples


def train(r: Recipe, out_dir: str):
    from jaxir.models.hf import load_bert
    from jaxir.retrievers.colbert import save_checkpoint
    from jaxir.training.loop import fit
    from jaxir.training.step import COMPUTE_DTYPES
    from jaxir.training.task import Task

    r = apply_overrides(r, {}, DERIVED)
    if r.data.examples is None:
        data, mined, teacher = prepare_beir(r.data, out_dir)
        if r.model.distillation and teacher is None:
            print("no teacher scores: training with n-way cross-entropy instead of KL")
            r = apply_overrides(r, {"model.distillation": False})
    bert_config, bert_params = load_bert(r.model.model, dtype=COMPUTE_DTYPES[r.fit.compute_dtype])
    model = ColBERTModel(r.model, bert_config=bert_config, bert_params=bert_params)
    source = (beir_source(model, r, data, mined, teacher) if r.data.examples is None
              else NwaySource(model, msmarco_examples(r.data)))
    task = Task(init=model.init, loss_fn=model.loss_fn, param_rules=PARAM_RULES,
                config={"method": "colbert", **dataclasses.asdict(r.model)})
    result = fit(task, source, config=dataclasses.replace(r.fit, out_dir=out_dir), optim=r.optim)
    return save_checkpoint(Path(out_dir) / "colbert", r.model, result.state.params), result


def parse_args(argv=None) -> tuple[Recipe, str]:
    """(the mode's config with every given option applied, output folder)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (see Outputs above)")
    r, args = parse_config(ap, Recipe, RECIPE, argv, modes=MODES, flags=FLAGS, derived=DERIVED)
    return r, args.out


def main(argv=None) -> None:
    r, out = parse_args(argv)
    path, result = train(r, out)
    print(f"saved {path}; last train metrics {result.last_train}")


if __name__ == "__main__":
    main()
