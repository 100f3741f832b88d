"""The n-way training data two recipes share (ColBERT, I³): 1 positive + n hard negatives per
train query, mined by BM25 on a BEIR train split (fresh negatives each pass) or read from
MS MARCO n-way examples, with teacher scores when a cross-encoder (or a scores file) gives them.

`arrays(queries [B], docs [B][N]) -> dict` is the method's tokeniser; this module knows no model.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from jaxir.config.bounds import Spelled, bounded
from jaxir.config.options import Derived
from jaxir.data.tuples import TupleConfig, check_teacher_scores
from jaxir.errors import DataError, OptionError, utf8_lines


@dataclasses.dataclass(frozen=True)
class NwayData:
    # BEIR folder or name whose train qrels give the positives (`jaxir train --data`).
    dataset: str = "scifact"
    # MS MARCO n-way examples JSONL (None: mine `dataset` instead).
    examples: str | None = None
    # MS MARCO collection TSV (pid, text) of the examples.
    collection: str | None = None
    # MS MARCO queries TSV (qid, text) of the examples.
    queries: str | None = None
    # BM25 top-k mined per train query; negatives are drawn from its top tuples.neg_depth.
    mine_depth: int = bounded(100, ge=1)
    # Mined JSONL of `jaxir mine` (any retriever, e.g. a round-1 ColBERT) used instead of BM25's.
    negatives: str | None = None
    # Tuples: 1 positive + n_negatives drawn (fresh each pass) from the top neg_depth.
    tuples: TupleConfig = TupleConfig(n_negatives=7, neg_depth=15)
    # Teacher scores JSONL ({"qid", "scores": {doc: s}}) of the mined candidates (None: no file).
    teacher: str | None = None
    # Cross-encoder checkpoint that scores each query's positives + top neg_depth now (if no teacher).
    teacher_checkpoint: str | None = None
    # A seeded subset of the mined queries (0: all): affordable teacher scoring on CPU (NFCorpus).
    max_queries: int = bounded(0, ge=0)
    # At most this many positives per query (0: all).
    max_positives: int = bounded(0, ge=0)


# The derived fields of a one-stage recipe on this data (ColBERT, I³).
NWAY_DERIVED = {
    "optim.total_steps": Derived("max(1, fit.steps // optim.accumulate)",
                                 lambda get: max(1, get("fit.steps") // get("optim.accumulate"))),
    "model.seed": Derived("fit.seed", lambda get: get("fit.seed")),
    "data.tuples.seed": Derived("fit.seed (also seeds the query subset)", lambda get: get("fit.seed")),
    "data.tuples.draws": Derived("enough passes over the mined queries for fit.steps x fit.batch_size rows"),
    "fit.out_dir": Derived("--out"),
}


# The warm-up a one-stage recipe shortens to fit a shorter run (`jaxir.config.warmup`).
NWAY_WARMUPS = {"optim.warmup_steps": "optim.total_steps"}

# The smoke mode of a recipe on this data: its tests' sizes (2 steps of 8 queries x 2 passages,
# BM25 top 10, 8 + 24 tokens, fast compile) on 16 train queries (all a teacher then scores).
NWAY_SMOKE = {"data.mine_depth": 10, "data.tuples.n_negatives": 1, "data.tuples.neg_depth": 5,
              "data.max_queries": 16, "model.query_maxlen": 8, "model.doc_maxlen": 24, "fit.steps": 2,
              "fit.batch_size": 8, "optim.warmup_steps": 1, "fit.fast_compile": True}


# The options of a recipe on this data: `jaxir train --data`, `--negatives FILE`, `--nway N`.
NWAY_FLAGS = {
    "data.dataset": "--data",
    "data.negatives": "--negatives",
    "data.tuples.n_negatives": Spelled("--nway", 1, "passages per training tuple: the positive and "
                                       "nway - 1 hard negatives (ColBERTv2: 64)"),
}


def subset_mined(mined: Path, max_queries: int, max_positives: int, seed: int,
                 folder: Path | None = None) -> Path:
    """A seeded subset of the mined records (positives capped), written in `folder` (default:
    beside ``mined``); reused only for the same mined content, sizes and seed (`keyed_output`)."""
    from jaxir.data.mine import keyed_output, read_mined, write_mined
    from jaxir.models.hf import content_digest

    if not (max_queries or max_positives):
        return mined

    def build(out):
        records = list(read_mined(mined))
        order = np.random.default_rng(seed).permutation(len(records))
        keep = sorted(order[:max_queries] if max_queries else order)
        cap = max_positives or None
        write_mined(out, ({**records[i], "positives": records[i]["positives"][:cap]} for i in keep))

    out = (folder or mined.parent) / f"{mined.stem}.q{max_queries}.p{max_positives}{mined.suffix}"
    key = {"negatives_sha256": content_digest(mined), "max_queries": max_queries,
           "max_positives": max_positives, "seed": seed}
    return keyed_output(out, key, build, what="negatives subset")


def given_negatives(path: str, data, out_dir: str) -> Path:
    """`--negatives FILE` checked against the train split (every query a train query with
    positives, every candidate in the corpus: one line naming the first that is not) and copied
    into `out_dir` under its content digest, so what the run trained on stays beside it and a file
    rewritten in place never meets the teacher scores or subsets of the old one. Positives must
    be judged relevant in the split's qrels and held by the corpus."""
    import hashlib
    import shutil

    from jaxir.data.mine import read_mined
    from jaxir.errors import DataError

    src = Path(path)
    if not src.is_file():
        raise DataError(f"--negatives {src}: no such file (write one with `jaxir mine`)")
    for rec in read_mined(src):
        if rec["qid"] not in data.queries:
            raise DataError(f"--negatives {src}: query {rec['qid']!r} is not a {data.split} query of {data.name}")
        judged = {d for d, g in data.qrels.get(rec["qid"], {}).items() if g > 0}
        wrong = next((d for d in rec["positives"] if d not in judged or d not in data.corpus), None)
        if wrong is not None:
            raise DataError(f"--negatives {src}: positive {wrong!r} of query {rec['qid']!r} is not a "
                            f"judged-relevant {data.name} document of the {data.split} qrels")
        missing = next((c[0] for c in rec["candidates"] if c[0] not in data.corpus), None)
        if missing is not None:
            raise DataError(f"--negatives {src}: candidate {missing!r} of query {rec['qid']!r} "
                            f"is not in the {data.name} corpus")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:10]
    mined = Path(out_dir) / f"negatives.{src.stem.removeprefix('negatives.')}.{digest}.jsonl"
    if not mined.exists():
        from jaxir.fs import atomic_output

        with atomic_output(mined) as tmp:
            shutil.copyfile(src, tmp)
    return mined


def prepare_beir(d: NwayData, out_dir: str):
    """Mine BM25 train negatives (or take `d.negatives`) and teacher-score them. Each is reused
    from `out_dir` only when its key record matches (`jaxir.data.mine.keyed_output`): negatives
    for the same train split content (queries, qrels, corpus) and miner, teacher scores for the
    same negatives, split and teacher (its folder's content and weights); else rebuilt.

    Returns (train split, mined file, teacher file or None).
    """
    from jaxir.data.mine import keyed_output, mine_or_reuse, split_digests
    from jaxir.data.teacher import score_mined
    from jaxir.eval.beir import load_beir
    from jaxir.models.hf import content_digest

    data = load_beir(d.dataset, split="train")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    if d.negatives is not None:
        mined = given_negatives(d.negatives, data, out_dir)
    else:
        mined, _ = mine_or_reuse(data, "bm25", d.mine_depth,
                                 out=Path(out_dir) / f"negatives.bm25.d{d.mine_depth}.jsonl")
    mined = subset_mined(mined, d.max_queries, d.max_positives, d.tuples.seed, folder=Path(out_dir))
    teacher = d.teacher
    if teacher is None and d.teacher_checkpoint:
        from jaxir.retrievers.cross_encoder import CrossEncoderScorer

        tag = "." + mined.stem.removeprefix("negatives.")  # named by the negatives file it scores
        reranker = CrossEncoderScorer.load(d.teacher_checkpoint)
        # Named by the teacher's weights: another (or retrained) checkpoint never reuses its scores.
        weights = reranker.model.fingerprint(reranker.params)
        teacher = Path(out_dir) / f"teacher{tag}.d{d.tuples.neg_depth}.{weights[:12]}.jsonl"
        # Reused only for the same negatives, split content and teacher (weights and folder).
        key = {"split": split_digests(data), "negatives_sha256": content_digest(mined),
               "depth": d.tuples.neg_depth,
               "teacher": {"weights": weights, "folder_sha256": content_digest(d.teacher_checkpoint)}}
        keyed_output(teacher, key, lambda out: print(score_mined(
            reranker.scores, mined, data.queries, data.text_of, depth=d.tuples.neg_depth, out=out)),
            what=f"teacher scores of {d.teacher_checkpoint}")
    return data, mined, teacher


def tuple_source(arrays, d: NwayData, steps: int, batch_size: int, prepared, *, extra=None):
    """TupleSource over `prepare_beir`'s output: enough passes over the train queries for
    steps x batch_size rows, each pass with fresh negatives. `extra(tuples) -> dict` adds arrays
    that need the tuples' ids (e.g. I³'s pseudo-query targets)."""
    from jaxir.data.tuples import TupleSource

    data, mined, teacher = prepared
    n_queries = sum(1 for _ in open(mined, "rb"))
    draws = max(1, -(-steps * batch_size // n_queries))
    return TupleSource(mined, data.queries, data.text_of, arrays,
                       dataclasses.replace(d.tuples, draws=draws), teacher_path=teacher, extra=extra)


class NwaySource:
    """BatchSource over (query, [nway passages], teacher scores) examples, tokenised per batch."""

    def __init__(self, arrays, examples: list[tuple[str, list[str], list[float]]]):
        self.arrays, self.examples = arrays, examples

    def __len__(self) -> int:
        return len(self.examples)

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        picked = [self.examples[int(r)] for r in rows]
        out = self.arrays([e[0] for e in picked], [e[1] for e in picked])
        out["teacher"] = np.asarray([e[2] for e in picked], np.float32)
        return out


def _read_tsv(path: str) -> dict[str, str]:
    """id -> text of a TSV (id<TAB>text per line)."""
    out = {}
    for lineno, line in utf8_lines(path):
        key, tab, text = line.rstrip("\r\n").partition("\t")
        if not tab:
            raise DataError(f"{path}:{lineno}: expected 'id<TAB>text'")
        out[key] = text
    return out


def msmarco_examples(d: NwayData) -> list:
    """ColBERTv2 n-way JSONL ([qid, [pid, score], ...]) + collection/queries TSVs, cut to
    1 + tuples.n_negatives passages."""
    collection, queries = _read_tsv(d.collection), _read_tsv(d.queries)
    examples = []
    for lineno, line in utf8_lines(d.examples):
        qid, *pairs = json.loads(line)
        pairs = pairs[: 1 + d.tuples.n_negatives]
        check_teacher_scores(pairs, d.examples, lineno)  # nan / inf targets: refused, file:line
        examples.append((queries[str(qid)], [collection[str(p)] for p, _ in pairs],
                         [float(s) for _, s in pairs]))
    return examples


def nway_source(arrays, d: NwayData, steps: int, batch_size: int, prepared=None, *, extra=None):
    """The recipe's BatchSource: tuples over `prepared` (`prepare_beir`'s output) or, with
    `d.examples`, the MS MARCO n-way examples."""
    if d.examples is None:
        return tuple_source(arrays, d, steps, batch_size, prepared, extra=extra)
    if d.negatives is not None:
        raise OptionError("--negatives is for a mined BEIR train split; --data.examples brings its own")
    if extra is not None:
        raise ValueError("this option needs a mined BEIR train split, not --data.examples")
    return NwaySource(arrays, msmarco_examples(d))
