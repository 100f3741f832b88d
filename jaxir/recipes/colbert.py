"""ColBERTv2 training recipe: n-way tuples -> KL distillation (or n-way CE) + in-batch CE.

AdamW lr 1e-5, linear warm-up/decay, global-norm clip 2.0, doc_maxlen 180, query_maxlen 32.

CPU SciFact mode (MiniLM backbone, 1 positive + BM25 hard negatives, no teacher -> n-way CE):
    jaxir train --recipe colbert --mode cpu-scifact --data <beir>/scifact --out runs/colbert-scifact
    jaxir eval --method colbert --checkpoint runs/colbert-scifact/colbert --data <beir>/scifact
TPU MS MARCO mode (ColBERTv2: 64-way tuples scored by a cross-encoder, KL distillation, bf16):
    jaxir train --recipe colbert --mode tpu-msmarco --out <dir> --examples examples.64.json \
        --collection collection.tsv --queries queries.train.tsv
where each examples line is [qid, [pid, teacher score], ...] (positive / teacher's top first).
Outputs: <out>/metrics.jsonl, loss.png, checkpoints/ (resumable) and <out>/colbert (final params).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from jaxir.methods.colbert import ColBERTConfig, ColBERTModel
from jaxir.parallel import EMBED, VOCAB


@dataclasses.dataclass(frozen=True)
class RecipeConfig:
    # BEIR folder or name (SciFact mode) whose train qrels give the positives.
    data: str = "scifact"
    # MS MARCO mode: n-way examples JSONL, collection TSV (pid, text), queries TSV (qid, text).
    examples: str | None = None
    collection: str | None = None
    queries: str | None = None
    # Candidates per query (1 positive + nway-1 negatives) and BM25 depth for mining them.
    nway: int = 8
    bm25_depth: int = 100
    # Token lengths (ColBERTv2 training: 32 / 180).
    query_maxlen: int = 32
    doc_maxlen: int = 180
    # KL to teacher scores (needs them) or n-way CE; in-batch negatives on/off.
    distillation: bool = False
    use_ib_negatives: bool = True
    # Optimisation (queries per step; each brings nway passages).
    batch_size: int = 8
    steps: int = 200
    learning_rate: float = 1e-5
    warmup_steps: int = 20
    clip_norm: float = 2.0
    compute_dtype: str = "float32"
    seed: int = 0


MODES = {
    # ~2 epochs of SciFact train (809 queries) on CPU; a few seconds per step on 2 cores.
    "cpu-scifact": RecipeConfig(),
    # ColBERTv2's setup: 32 queries x 64 passages per step, 400k steps.
    "tpu-msmarco": RecipeConfig(nway=64, distillation=True, batch_size=32, steps=400_000,
                                warmup_steps=20_000, compute_dtype="bfloat16"),
}
PARAM_RULES = ((r"word/embedding$", (VOCAB, EMBED)),)


class NwaySource:
    """BatchSource over (query, [nway passages], teacher scores) examples, tokenised per batch."""

    def __init__(self, model: ColBERTModel, examples: list[tuple[str, list[str], list[float]]]):
        self.model, self.examples = model, examples

    def __len__(self) -> int:
        return len(self.examples)

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        picked = [self.examples[int(r)] for r in rows]
        n = len(picked[0][1])
        q = self.model.tokenize_queries([e[0] for e in picked])
        d = self.model.tokenize_docs([t for e in picked for t in e[1]])
        shape = (len(picked), n, d.input_ids.shape[1])
        return {"q_ids": q.input_ids, "q_mask": q.attention_mask,
                "d_ids": d.input_ids.reshape(shape), "d_mask": d.attention_mask.reshape(shape),
                "teacher": np.asarray([e[2] for e in picked], np.float32)}


def scifact_examples(cfg: RecipeConfig) -> list:
    """One example per train query: its first positive + the top BM25 non-relevant documents."""
    from jaxir.eval.beir import load_beir
    from jaxir.index.bm25 import BM25Index

    data = load_beir(cfg.data, split="train")
    texts = dict(zip(data.doc_ids, data.doc_texts()))
    bm25 = BM25Index.build(list(texts.values()), doc_ids=list(texts))
    examples = []
    for qid, rel in data.qrels.items():
        positives = [d for d, g in rel.items() if g > 0]
        if not positives:
            continue
        ranked, _ = bm25.search(data.queries[qid], cfg.bm25_depth)
        negatives = [d for d in ranked if d not in rel][: cfg.nway - 1]
        if len(negatives) == cfg.nway - 1:
            examples.append((data.queries[qid], [texts[d] for d in [positives[0], *negatives]],
                             [0.0] * cfg.nway))  # no teacher: distillation must be off
    return examples


def _read_tsv(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return dict(line.rstrip("\n").split("\t", 1) for line in f)


def msmarco_examples(cfg: RecipeConfig) -> list:
    """ColBERTv2 n-way JSONL ([qid, [pid, score], ...]) + collection/queries TSVs."""
    collection, queries = _read_tsv(cfg.collection), _read_tsv(cfg.queries)
    examples = []
    with open(cfg.examples, encoding="utf-8") as f:
        for line in f:
            qid, *pairs = json.loads(line)
            pairs = pairs[: cfg.nway]
            examples.append((queries[str(qid)], [collection[str(p)] for p, _ in pairs],
                             [float(s) for _, s in pairs]))
    return examples


def train(cfg: RecipeConfig, out_dir: str, mode: str):
    from jaxir.models.hf import load_bert
    from jaxir.pipeline.colbert_retriever import save_checkpoint
    from jaxir.training.loop import FitConfig, fit
    from jaxir.training.optim import OptimConfig
    from jaxir.training.step import COMPUTE_DTYPES
    from jaxir.training.task import Task

    colbert = ColBERTConfig(query_maxlen=cfg.query_maxlen, doc_maxlen=cfg.doc_maxlen, nway=cfg.nway,
                            distillation=cfg.distillation, use_ib_negatives=cfg.use_ib_negatives,
                            seed=cfg.seed)
    bert_config, bert_params = load_bert(colbert.model, dtype=COMPUTE_DTYPES[cfg.compute_dtype])
    model = ColBERTModel(colbert, bert_config=bert_config, bert_params=bert_params)
    examples = scifact_examples(cfg) if mode == "cpu-scifact" else msmarco_examples(cfg)
    task = Task(init=model.init, loss_fn=model.loss_fn, param_rules=PARAM_RULES,
                config={"method": "colbert", **dataclasses.asdict(colbert)})
    result = fit(task, NwaySource(model, examples),
                 config=FitConfig(steps=cfg.steps, batch_size=cfg.batch_size, seed=cfg.seed,
                                  out_dir=out_dir, compute_dtype=cfg.compute_dtype),
                 optim=OptimConfig(learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_steps,
                                   total_steps=cfg.steps, clip_norm=cfg.clip_norm))
    return save_checkpoint(Path(out_dir) / "colbert", colbert, result.state.params), result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=sorted(MODES), default="cpu-scifact")
    ap.add_argument("--out", required=True)
    for field in dataclasses.fields(RecipeConfig):  # every recipe field can be overridden
        kind = field.type if field.type in ("int", "float") else "str"
        ap.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name,
                        type={"int": int, "float": float, "str": str}[kind])
    args = vars(ap.parse_args(argv))
    mode, out = args.pop("mode"), args.pop("out")
    cfg = MODES[mode]
    for name, value in args.items():
        if value is not None:
            default = getattr(cfg, name)
            value = value.lower() in ("1", "true", "yes") if isinstance(default, bool) else value
            cfg = dataclasses.replace(cfg, **{name: value})
    path, result = train(cfg, out, mode)
    print(f"saved {path}; last train metrics {result.last_train}")


if __name__ == "__main__":
    main()
