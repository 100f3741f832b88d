"""I³ training recipe: BM25 hard negatives -> contrastive (or KL-distilled) I³ dual encoder with
query reconstruction; `--model.implicit_interaction false` is the plain dual encoder baseline
(same backbone, data, negatives, teacher and updates; the loss without reconstruction).

CPU SciFact mode (the defaults; MiniLM in both towers, mean pooled, 300 steps of 8 queries x
(1 positive + 3 BM25 negatives) x 256 tokens, the reference's alpha 1 contrastive + beta
1/10^epoch reconstruction, new modules at 50x the encoders' rate, backbone dropout 0.1):
    jaxir train --recipe i3 --mode cpu-scifact --data <beir>/scifact --out runs/i3-scifact
    jaxir train --recipe i3 --mode cpu-scifact --data <beir>/scifact --out runs/plain-scifact \
        --model.implicit_interaction false
    jaxir eval --method i3 --checkpoint runs/i3-scifact/i3 --data <beir>/scifact
NFCorpus: --mode cpu-nfcorpus (same budget). Distillation stage (the card's second stage): KL to
a cross-encoder's scores over each query's candidates + beta 0.0002 reconstruction:
    jaxir train --recipe i3 --mode cpu-scifact --data <beir>/scifact --out runs/i3-kd \
        --init-from runs/i3-scifact/i3 --model.objective distill --model.reconstruction_weight 0.0002 \
        --data.teacher_checkpoint runs/ce-scifact
Reconstruction targets: the training query for the positive; --data.pseudo_queries FILE (JSONL
{"doc_id", "queries": [...]}) gives every passage of the tuple (positive and negatives) a
generated query of its own, as the reference trains (every passage that can be drawn needs one).
TPU MS MARCO mode (1 positive + 15 negatives, 64 queries per step, bf16): the launch line in tpu/README.md.
Outputs: <out>/negatives.bm25.d<depth>.jsonl (reused while its .key.json matches), [teacher file], metrics.jsonl,
loss.png, checkpoints/ (resumable), <out>/i3 (the model folder `--method i3` loads).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import zlib
from pathlib import Path

import numpy as np

from jaxir.config.options import mode_config
from jaxir.config.overrides import apply_overrides
from jaxir.data.tuples import TupleConfig
from jaxir.errors import DataError, OptionError, utf8_lines
from jaxir.methods.i3 import NEW_MODULES, I3Model
from jaxir.methods.i3_config import I3Config
from jaxir.parallel import EMBED, VOCAB
from jaxir.recipes import entry_points
from jaxir.recipes.nway_data import (NWAY_DERIVED, NWAY_FLAGS, NWAY_SMOKE, NWAY_WARMUPS, NwayData, nway_source,
                                     prepare_beir)
from jaxir.recipes.warm_start import warm_init
from jaxir.training.loop import FitConfig
from jaxir.training.optim import OptimConfig


@dataclasses.dataclass(frozen=True)
class I3Data(NwayData):
    # Generated queries JSONL {"doc_id", "queries": [...]}: a reconstruction target for every
    # passage of each tuple (None: the training query for the positive, none for negatives).
    pseudo_queries: str | None = None


@dataclasses.dataclass(frozen=True)
class Recipe:
    # Student + loss: the reference's alpha 1 / beta 1/10^epoch, Lq 32, 256-token passages.
    model: I3Config = I3Config()
    # Train queries, BM25 negatives (3 of the top 30 per tuple on CPU; the card's 15 on TPU).
    data: I3Data = I3Data(tuples=TupleConfig(n_negatives=3, neg_depth=30))
    # AdamW, linear warm-up and decay; the new modules (reconstructor, interactor, MLM head) at
    # 50x: the reference's 1e-3 against the encoders' 2e-5 (the plain encoder has none of them).
    optim: OptimConfig = OptimConfig(learning_rate=2e-5, warmup_steps=30,
                                     lr_multipliers=tuple((m, 50.0) for m in NEW_MODULES))
    # 300 steps of 8 queries: ~3 passes over SciFact's 809 train queries.
    fit: FitConfig = FitConfig(steps=300, batch_size=8)
    # Start from a saved I³ model folder (e.g. the contrastive stage's, for distillation).
    init_from: str | None = None


MODES = {
    "cpu-scifact": {},
    "cpu-nfcorpus": {"data.dataset": "nfcorpus"},
    # A run end to end in seconds once compiled (`jaxir.recipes.nway_data.NWAY_SMOKE`).
    "smoke": NWAY_SMOKE,
    # The card's 1 + 15 tuples at MS MARCO scale, bf16.
    "tpu-msmarco": {"data.dataset": "msmarco", "data.tuples.n_negatives": 15, "data.tuples.neg_depth": 100,
                    "fit.batch_size": 64, "fit.steps": 100_000, "optim.warmup_steps": 5_000,
                    "fit.compute_dtype": "bfloat16", "fit.dropout_rng": "rbg"},
}
FLAGS = {**NWAY_FLAGS, "init_from": "--init-from"}  # `--data`: what `jaxir train --data` passes on
DERIVED, WARMUPS = NWAY_DERIVED, NWAY_WARMUPS
RECIPE = apply_overrides(Recipe(), {}, DERIVED)
PARAM_RULES = ((r"word/embedding$", (VOCAB, EMBED)),)


def config(mode: str = "cpu-scifact", overrides: dict | None = None) -> Recipe:
    """The recipe in `mode` with dotted `overrides` (given options), derived fields set: what the CLI builds."""
    return mode_config(RECIPE, MODES, mode, overrides or {}, derived=DERIVED, warmups=WARMUPS, flags=FLAGS)


def _fixed(model: I3Model, texts, max_length: int, what: str):
    from jaxir.text import assemble, tokenize

    return assemble(model.tokenizer, tokenize(model.tokenizer, texts, what=what), max_length=max_length,
                    fixed_length=True)


def i3_arrays(model: I3Model, queries: list[str], docs: list[list[str]]) -> dict:
    """Query texts [B] + docs [B][N] -> q_ids, q_mask [B, Lq]; d_ids, d_mask [B, N, Ld] (fixed
    lengths: one compiled step)."""
    cfg, n = model.config, len(docs[0])
    q = _fixed(model, queries, cfg.query_maxlen, "query")
    d = _fixed(model, [t for row in docs for t in row], cfg.doc_maxlen, "document")
    shape = (len(queries), n, cfg.doc_maxlen)
    return {"q_ids": q.input_ids, "q_mask": q.attention_mask,
            "d_ids": d.input_ids.reshape(shape), "d_mask": d.attention_mask.reshape(shape)}


def load_pseudo_queries(path: str | Path, doc_ids) -> dict[str, list[str]]:
    """{doc id: [generated queries]} of a JSONL file; a malformed line, an unknown doc id or an
    empty query list is a DataError naming the line."""
    known, out = set(doc_ids), {}
    for lineno, line in utf8_lines(path):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            doc, queries = rec["doc_id"], rec["queries"]
            ok = isinstance(doc, str) and isinstance(queries, list) and queries and all(
                isinstance(q, str) and q.strip() for q in queries)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise DataError(f"{path}:{lineno}: expected {{\"doc_id\": str, \"queries\": [non-empty str, ...]}}")
        if doc not in known:
            raise DataError(f"{path}:{lineno}: doc_id {doc!r} is not in the corpus")
        out.setdefault(doc, []).extend(queries)
    return out


def target_arrays(tokenizer, texts: list[str], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Bare query tokens (no [CLS]/[SEP], cut to `length`, 0-padded) -> ids, mask int32 [n, length]:
    position i of the reconstructor predicts token i, as in the reference."""
    from jaxir.text import tokenize

    ids, mask = np.zeros((len(texts), length), np.int32), np.zeros((len(texts), length), np.int32)
    for i, toks in enumerate(tokenize(tokenizer, texts, what="query")):
        toks = toks[:length]
        ids[i, :len(toks)], mask[i, :len(toks)] = toks, 1
    return ids, mask


class PseudoQueryTargets:
    """`extra` for the tuple source: rec_ids, rec_mask [B, N, Lq], a generated query of every
    passage of each tuple (the same one for a (query, passage) pair in every pass: crc32 picks it).
    Every passage a tuple can draw (positives, top neg_depth candidates) must have one."""

    def __init__(self, model: I3Model, pseudo: dict[str, list[str]], mined: Path, neg_depth: int):
        from jaxir.data.mine import read_mined

        needed = {d for rec in read_mined(mined)
                  for d in [*rec["positives"], *(c[0] for c in rec["candidates"][:neg_depth])]}
        missing = sorted(needed - set(pseudo))
        if missing:
            raise DataError(f"pseudo queries: no entry for {len(missing)} passage(s) the tuples draw "
                            f"(positives and top-{neg_depth} negatives), e.g. {missing[0]!r}")
        self.model, self.pseudo = model, pseudo

    def __call__(self, tuples) -> dict[str, np.ndarray]:
        picked = []
        for t in tuples:
            for doc in t.doc_ids:
                options = self.pseudo[doc]
                picked.append(options[zlib.crc32(f"{t.qid}\t{doc}".encode()) % len(options)])
        lq = self.model.config.query_maxlen
        ids, mask = target_arrays(self.model.tokenizer, picked, lq)
        shape = (len(tuples), len(tuples[0].doc_ids), lq)
        return {"rec_ids": ids.reshape(shape), "rec_mask": mask.reshape(shape)}


def steps_per_epoch(mined: Path, batch_size: int) -> int:
    """Optimizer updates per pass over the mined train queries (beta decays per pass)."""
    from jaxir.data.mine import read_mined

    return max(1, -(-sum(1 for _ in read_mined(mined)) // batch_size))


def train(r: Recipe, out_dir: str):
    from jaxir.models.hf import load_bert
    from jaxir.retrievers.i3 import load_checkpoint, save_checkpoint
    from jaxir.training.loop import fit
    from jaxir.training.step import COMPUTE_DTYPES

    r = apply_overrides(r, {}, DERIVED)
    start = load_checkpoint(r.init_from)[1] if r.init_from else None  # a bad folder fails now
    prepared = prepare_beir(r.data, out_dir) if r.data.examples is None else None
    if r.model.objective == "distill" and not (r.data.examples or prepared[2]):
        raise OptionError("--model.objective distill needs teacher scores: give --data.teacher FILE "
                          "or --data.teacher_checkpoint CKPT")
    bert_config, bert_params = load_bert(r.model.model, dtype=COMPUTE_DTYPES[r.fit.compute_dtype])
    model = I3Model(r.model, bert_config=bert_config, bert_params=bert_params)
    extra = None
    if r.data.pseudo_queries:
        if prepared is None:
            raise OptionError("--data.pseudo_queries needs a mined BEIR train split, not --data.examples")
        pseudo = load_pseudo_queries(r.data.pseudo_queries, prepared[0].corpus)
        extra = PseudoQueryTargets(model, pseudo, prepared[1], r.data.tuples.neg_depth)
    source = nway_source(functools.partial(i3_arrays, model), r.data, r.fit.steps, r.fit.batch_size,
                         prepared, extra=extra)
    init = model.init if start is None else warm_init(
        model, start, where=r.init_from, what="I3 starting params (implicit_interaction and tie must match)")
    per_epoch = steps_per_epoch(prepared[1], r.fit.batch_size * r.optim.accumulate) if prepared else None
    result = fit(task_for(r, model, init, per_epoch), source, config=dataclasses.replace(r.fit, out_dir=out_dir), optim=optimizer_for(r))
    return save_checkpoint(Path(out_dir) / "i3", r.model, result.state.params), result


def task_for(r: Recipe, model: I3Model, init=None, per_epoch: int | None = None):
    """The engine's task for `model` (`init`: its params, default fresh; `per_epoch`: optimizer
    updates per pass, for beta's decay): train() and `jaxir plan`."""
    from jaxir.training.task import Task

    return Task(init=init or model.init, loss_fn=functools.partial(model.loss_fn, steps_per_epoch=per_epoch),
                step_aware=True, param_rules=PARAM_RULES, config={"method": "i3", **dataclasses.asdict(r.model)})


def optimizer_for(r: Recipe) -> OptimConfig:
    """The recipe's optimizer; the plain dual encoder has no new modules, so their multipliers
    (and only theirs) are dropped. Any other multiplier must name a parameter group."""
    if r.model.implicit_interaction:
        return r.optim
    return dataclasses.replace(r.optim, lr_multipliers=tuple(
        (g, m) for g, m in r.optim.lr_multipliers if g not in NEW_MODULES))


parse_args, main = entry_points(__doc__, Recipe, RECIPE, train, modes=MODES, flags=FLAGS, derived=DERIVED,
                                warmups=WARMUPS)


if __name__ == "__main__":
    main()
