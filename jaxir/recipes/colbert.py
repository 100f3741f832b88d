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
scoring stays affordable. No NFCorpus cross-encoder is worth distilling from (docs/results-log.md), so the
measured run has no teacher and uses every query and positive:
    jaxir train --recipe colbert --mode cpu-nfcorpus --data <beir>/nfcorpus --out runs/colbert-nfcorpus \
        --data.max_queries 0 --data.max_positives 0
ColBERTv2's second round, as the paper runs it: mine the train split with the round-1 model
(through PLAID), let the same cross-encoder re-rank those candidates, and continue training the
round-1 model (projection included) on negatives drawn below the teacher's top ranks:
    jaxir mine --retriever colbert --checkpoint runs/colbert-scifact/colbert --data <beir>/scifact \
        --depth 100 --out runs/colbert-scifact/negatives.colbert-r1.jsonl
    jaxir train --recipe colbert --mode cpu-scifact-r2 --data <beir>/scifact --out runs/colbert-scifact-r2 \
        --init-from runs/colbert-scifact/colbert --negatives runs/colbert-scifact/negatives.colbert-r1.jsonl \
        --data.teacher_checkpoint runs/ce-scifact
The paper's public code does not say how its 64-way examples were drawn from the reranked list
(its examples file is downloaded, not built); `cpu-scifact-r2` scores the top 30 with the
teacher, skips the teacher's top 3 (SciFact judges about 1.1 documents per query, so the
teacher's best unjudged candidates are likely relevant) and draws the negatives from the rest.
`--nway N` sets the tuple width (the positive + N - 1 negatives; ColBERTv2: 64, CPU default 8).
TPU MS MARCO mode (ColBERTv2: 64-way tuples scored by a cross-encoder, KL distillation, bf16):
    jaxir train --recipe colbert --mode tpu-msmarco --out <dir> --data.examples examples.64.json \
        --data.collection collection.tsv --data.queries queries.train.tsv
where each examples line is [qid, [pid, teacher score], ...] (positive / teacher's top first).
Without --data.examples any mode mines a BEIR folder (--data) as the CPU modes do.
Outputs: <out>/negatives.bm25.d<depth>[.q<N>.p<P>].jsonl (or negatives.<FILE>.<digest>.jsonl, a
copy of --negatives) and <out>/teacher[.q<N>.p<P>].d<neg_depth>.<weights>.jsonl (BEIR data, each
reused only while the .key.json beside it matches the train split's content, miner and teacher),
metrics.jsonl, loss.png, checkpoints/ (resumable), <out>/colbert (params).
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from jaxir.config.options import mode_config
from jaxir.config.overrides import apply_overrides
from jaxir.methods.colbert import ColBERTModel
from jaxir.methods.colbert_config import ColBERTConfig
from jaxir.parallel import EMBED, VOCAB
from jaxir.recipes import entry_points
from jaxir.recipes.nway_data import (NWAY_DERIVED, NWAY_FLAGS, NWAY_SMOKE, NWAY_WARMUPS, NwayData, nway_source,
                                     prepare_beir)
from jaxir.recipes.warm_start import warm_init
from jaxir.training.loop import FitConfig
from jaxir.training.optim import OptimConfig


@dataclasses.dataclass(frozen=True)
class Recipe:
    # Student + loss: ColBERTv2's 180-token training docs, KL (given a teacher) + in-batch CE.
    model: ColBERTConfig = ColBERTConfig(doc_maxlen=180)
    # Train queries, mined negatives, teacher scores.
    data: NwayData = NwayData()
    # AdamW: the new projection needs more than ColBERTv2's 1e-5 to move in 300 CPU steps.
    optim: OptimConfig = OptimConfig(learning_rate=3e-5, warmup_steps=30)
    # 300 steps of 8 queries x 8 passages: ~3 passes over SciFact train, ~4.5 s/step on 2 cores.
    fit: FitConfig = FitConfig(steps=300, batch_size=8)
    # Start from a trained ColBERT model folder (backbone and projection): ColBERTv2's second round.
    init_from: str | None = None


MODES = {
    # SciFact train (809 queries) on CPU: the defaults (0.7301 nDCG@10, RESULTS).
    "cpu-scifact": {},
    # The same budget on NFCorpus: 800 of its train queries, 4 positives each.
    "cpu-nfcorpus": {"data.dataset": "nfcorpus", "data.max_queries": 800, "data.max_positives": 4},
    # The second round: negatives from the teacher-reranked top 30 below its top 3 (see above).
    "cpu-scifact-r2": {"data.tuples.neg_depth": 30, "data.tuples.teacher_skip": 3},
    # A run end to end in seconds once compiled (`jaxir.recipes.nway_data.NWAY_SMOKE`).
    "smoke": NWAY_SMOKE,
    # ColBERTv2's setup: 32 queries x 64 passages per step, 400k steps, lr 1e-5.
    "tpu-msmarco": {"data.tuples.n_negatives": 63, "fit.batch_size": 32, "fit.steps": 400_000,
                    "optim.learning_rate": 1e-5, "optim.warmup_steps": 20_000,
                    "fit.compute_dtype": "bfloat16", "fit.dropout_rng": "rbg"},
}
FLAGS = {**NWAY_FLAGS, "init_from": "--init-from"}  # `--data`, `--negatives`, `--nway`, `--init-from`
DERIVED, WARMUPS = NWAY_DERIVED, NWAY_WARMUPS
RECIPE = apply_overrides(Recipe(), {}, DERIVED)
PARAM_RULES = ((r"word/embedding$", (VOCAB, EMBED)),)


def config(mode: str = "cpu-scifact", overrides: dict | None = None) -> Recipe:
    """The recipe in `mode` with dotted `overrides` (given options), derived fields set: what the CLI builds."""
    return mode_config(RECIPE, MODES, mode, overrides or {}, derived=DERIVED, warmups=WARMUPS, flags=FLAGS)


def nway_arrays(model: ColBERTModel, queries: list[str], docs: list[list[str]]) -> dict:
    """Query texts [B] + docs [B][N] -> q_ids, q_mask [B, Lq]; d_ids, d_mask [B, N, Ld]."""
    n = len(docs[0])
    q = model.tokenize_queries(queries)
    d = model.tokenize_docs([t for row in docs for t in row])
    shape = (len(queries), n, d.input_ids.shape[1])
    return {"q_ids": q.input_ids, "q_mask": q.attention_mask,
            "d_ids": d.input_ids.reshape(shape), "d_mask": d.attention_mask.reshape(shape)}


def train(r: Recipe, out_dir: str):
    from jaxir.models.hf import load_bert
    from jaxir.retrievers.colbert import load_checkpoint, save_checkpoint
    from jaxir.training.loop import fit
    from jaxir.training.step import COMPUTE_DTYPES

    r = apply_overrides(r, {}, DERIVED)
    start = load_checkpoint(r.init_from)[1] if r.init_from else None  # a bad folder fails now
    prepared = prepare_beir(r.data, out_dir) if r.data.examples is None else None
    if prepared and prepared[2] is None and r.model.distillation:
        print("no teacher scores: training with n-way cross-entropy instead of KL")
        r = apply_overrides(r, {"model.distillation": False})
    bert_config, bert_params = load_bert(r.model.model, dtype=COMPUTE_DTYPES[r.fit.compute_dtype])
    model = ColBERTModel(r.model, bert_config=bert_config, bert_params=bert_params)
    source = nway_source(functools.partial(nway_arrays, model), r.data, r.fit.steps, r.fit.batch_size,
                         prepared)
    init = model.init if start is None else warm_init(
        model, start, where=r.init_from, what="ColBERT starting params (backbone and dim must match)")
    result = fit(task_for(r, model, init), source, config=dataclasses.replace(r.fit, out_dir=out_dir), optim=r.optim)
    return save_checkpoint(Path(out_dir) / "colbert", r.model, result.state.params), result


def task_for(r: Recipe, model: ColBERTModel, init=None):
    """The engine's task for `model` (`init`: its params; default fresh): train() and `jaxir plan`."""
    from jaxir.training.task import Task

    return Task(init=init or model.init, loss_fn=model.loss_fn, param_rules=PARAM_RULES,
                config={"method": "colbert", **dataclasses.asdict(r.model)})


parse_args, main = entry_points(__doc__, Recipe, RECIPE, train, modes=MODES, flags=FLAGS, derived=DERIVED,
                                warmups=WARMUPS)


if __name__ == "__main__":
    main()
