"""MICE recipe: start from a trained cross-encoder, distil it into the masked model (Margin-MSE).

CPU SciFact mode (the defaults): the cross-encoder of `jaxir train --recipe cross-encoder` is both
the starting point and the teacher; BM25 mines each train query's top 100, the teacher scores
its positives and top `data.tuples.neg_depth` once (reused from <out>), then fit.steps steps of
fit.batch_size queries x (1 positive + n negatives) with n-way Margin-MSE:
    jaxir train --recipe cross-encoder --mode cpu --data ../shared/data/beir/scifact --out runs/ce-scifact --data.tuples.draws 1
    jaxir train --recipe mice --mode cpu-scifact --data ../shared/data/beir/scifact --out runs/mice-scifact \\
        --init-from runs/ce-scifact
    jaxir index --method mice --checkpoint runs/mice-scifact/mice --data ../shared/data/beir/scifact \\
        --out runs/indexes/scifact-mice
    jaxir eval --method mice --checkpoint runs/mice-scifact/mice --index runs/indexes/scifact-mice \\
        --rerank bm25 --depth 100 --data ../shared/data/beir/scifact
The fusion layer and the configuration are fields (--model.fusion_layer 4,
--model.configuration mice-no-qq); `data.holdout` train queries (drawn as the cross-encoder
recipe draws its own, so the same queries) stay out of training and MICE's nDCG@10 reranking
their BM25 top 100 is reported: configurations are compared there, never on test.
TPU MS MARCO mode: the same with 1 + 7 negatives, 64 queries per step, bf16 (launch line in
tpu/README.md); give --data.teacher FILE scored once offline rather than a checkpoint.
Outputs: <out>/negatives.bm25.d<depth>.jsonl, <out>/teacher*.jsonl (reused while their .key.json match), metrics.jsonl,
loss.png, checkpoints/ (resumable), <out>/mice (the folder `--method mice` loads),
recipe_result.json (held-out nDCG@10).
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

from jaxir.config.bounds import bounded
from jaxir.config.options import mode_config
from jaxir.config.overrides import apply_overrides
from jaxir.data.tuples import TupleConfig
from jaxir.errors import OptionError
from jaxir.methods.mice_config import MiceConfig
from jaxir.recipes import entry_points
from jaxir.recipes.nway_data import (NWAY_DERIVED, NWAY_FLAGS, NWAY_SMOKE, NWAY_WARMUPS, NwayData, nway_source,
                                     prepare_beir)
from jaxir.training.loop import FitConfig
from jaxir.training.optim import OptimConfig


@dataclasses.dataclass(frozen=True)
class MiceData(NwayData):
    # Train queries kept out of training for the held-out nDCG@10 (seeded as the cross-encoder
    # recipe's alpha holdout: with the same seed, the same queries). 0: none.
    holdout: int = bounded(50, ge=0)


@dataclasses.dataclass(frozen=True)
class Recipe:
    # The student: l_f 3 of MiniLM's 6 layers, 32 + 160 tokens (the cross-encoder's 192).
    model: MiceConfig = MiceConfig()
    # BM25 negatives (3 of the top 10: the ones the teacher scores), teacher = --init-from.
    data: MiceData = MiceData(tuples=TupleConfig(n_negatives=3, neg_depth=10))
    # AdamW, linear warm-up and decay.
    optim: OptimConfig = OptimConfig(learning_rate=2e-5, warmup_steps=20, clip_norm=1.0)
    # 200 steps of 4 queries x 4 pairs: about one pass over SciFact's train queries.
    fit: FitConfig = FitConfig(steps=200, batch_size=4)
    # The trained cross-encoder MICE starts from (its encoder and score head); it is also the
    # teacher unless data.teacher / data.teacher_checkpoint name another.
    init_from: str | None = None


MODES = {
    "cpu-scifact": {},
    # A run end to end in seconds once compiled (still --init-from a cross-encoder): the n-way
    # smoke sizes with its tests' 12 query tokens, 2 held-out queries.
    "smoke": {**NWAY_SMOKE, "model.query_maxlen": 12, "data.holdout": 2},
    "tpu-msmarco": {"data.dataset": "msmarco", "data.tuples.n_negatives": 7, "data.tuples.neg_depth": 100,
                    "data.holdout": 500, "fit.batch_size": 64, "fit.steps": 50_000,
                    "optim.warmup_steps": 2_000, "fit.compute_dtype": "bfloat16",
                    "fit.dropout_rng": "rbg"},
}
FLAGS = {**NWAY_FLAGS, "init_from": "--init-from"}  # --data, --negatives, --nway, --init-from
DERIVED, WARMUPS = NWAY_DERIVED, NWAY_WARMUPS
RECIPE = apply_overrides(Recipe(), {}, DERIVED)
HELDOUT_DEPTH = 100  # BM25 candidates reranked per held-out query (the evaluation depth)


def config(mode: str = "cpu-scifact", overrides: dict | None = None) -> Recipe:
    """The recipe in `mode` with dotted `overrides` (given options), derived fields set: what the CLI builds."""
    return mode_config(RECIPE, MODES, mode, overrides or {}, derived=DERIVED, warmups=WARMUPS, flags=FLAGS)


def mice_arrays(model, queries: list[str], docs: list[list[str]]) -> dict:
    """Query texts [B] + docs [B][N] -> q_ids, q_mask [B, Lq]; d_ids, d_mask [B, N, Ld]."""
    q_ids, q_mask = model.query_arrays(queries)
    d_ids, d_mask = model.doc_arrays([t for row in docs for t in row])
    shape = (len(queries), len(docs[0]), model.config.doc_maxlen)
    return {"q_ids": q_ids, "q_mask": q_mask, "d_ids": d_ids.reshape(shape), "d_mask": d_mask.reshape(shape)}


def train(r: Recipe, out_dir: str):
    from jaxir.methods.mice import MiceModel
    from jaxir.models.hf import load_bert
    from jaxir.recipes.cross_encoder import first_stage_index, split_holdout, tune_alpha, warm_start_params
    from jaxir.retrievers.mice import MiceScorer, save_checkpoint
    from jaxir.training.loop import fit
    from jaxir.training.step import COMPUTE_DTYPES

    r, out = apply_overrides(r, {}, DERIVED), Path(out_dir)
    if not r.init_from:
        raise OptionError("the MICE recipe starts from a trained cross-encoder: give --init-from CKPT "
                          "(jaxir train --recipe cross-encoder writes one)")
    if r.data.examples is not None:
        raise OptionError("the MICE recipe mines a BEIR train split; --data.examples is not supported yet")
    # The model first: a bad --init-from or L' (--model.num_layers) fails before any mining.
    bert_config, bert_params = load_bert(r.model.model, dtype=COMPUTE_DTYPES[r.fit.compute_dtype])
    bert, head, _ = warm_start_params(r.init_from, bert_config, bert_params)  # MICE: no pooler
    model = MiceModel(r.model, bert_config=bert_config, bert_params=bert, head_params=head)
    data_cfg = r.data if (r.data.teacher or r.data.teacher_checkpoint) else dataclasses.replace(
        r.data, teacher_checkpoint=r.init_from)
    data, mined, teacher = prepare_beir(data_cfg, out_dir)
    train_file, held = split_holdout(mined, out / f"{mined.stem}.train.jsonl", r.data.holdout, r.fit.seed)
    source = nway_source(functools.partial(mice_arrays, model), data_cfg, r.fit.steps, r.fit.batch_size,
                         (data, train_file, teacher))
    result = fit(task_for(r, model), source, config=dataclasses.replace(r.fit, out_dir=out_dir), optim=r.optim)
    folder = save_checkpoint(out / "mice", r.model, result.state.params)
    report = {"recipe": dataclasses.asdict(r), "mice": str(folder), "last_train": result.last_train,
              "held_out": len(held)}
    if held:
        index_dir = first_stage_index(data, "bm25", out / "indexes")
        table = tune_alpha(MiceScorer(model, result.state.params), data, held, index_dir, miner="bm25",
                           depth=HELDOUT_DEPTH, alphas=(1.0,))
        report["heldout_ndcg@10"] = {"bm25": table[0.0], "mice": table[1.0]}
    (out / "recipe_result.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report.get(k) for k in ("mice", "last_train", "heldout_ndcg@10")}, indent=2))
    return folder, result


def task_for(r: Recipe, model):
    """The engine's task for the MiceModel `model`: train() and `jaxir plan`."""
    from jaxir.training.task import Task

    return Task(init=model.init, loss_fn=model.loss_fn, config={"method": "mice", **dataclasses.asdict(r.model)})


parse_args, main = entry_points(__doc__, Recipe, RECIPE, train, modes=MODES, flags=FLAGS, derived=DERIVED,
                                warmups=WARMUPS)


if __name__ == "__main__":
    main()
