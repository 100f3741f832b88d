"""SPLADE recipe: the learned-sparse recipe (`jaxir.recipes.sparse`: same data, teachers, held-out
selection, engine) with the siamese query encoder: queries go through the same MLM-head BERT as
documents ([CLS] query [SEP], query_maxlen 32) and FLOPS regularises both sides (lambda_d on the
documents, lambda_q on the queries, one quadratic warm-up). The ranking loss is the sparse
recipe's: KL to the min-max ensemble of its teachers (dense MiniLM + BM25) over the candidates
of the batch.

CPU SciFact mode (the defaults):
    jaxir index --method dense --data <beir>/scifact --out runs/indexes/scifact-dense   # once
    jaxir train --recipe splade --mode cpu-scifact --data <beir>/scifact --out runs/splade-scifact \\
        --data.dense_index runs/indexes/scifact-dense
    jaxir eval --method splade --checkpoint runs/splade-scifact/splade --data <beir>/scifact
Outputs as the sparse recipe's, the checkpoint in <out>/splade (model folder + idf.json, the
scoring vocabulary).
"""
from __future__ import annotations

import dataclasses

from jaxir.config.options import mode_config
from jaxir.config.overrides import apply_overrides
from jaxir.methods.sparse_config import SparseConfig
from jaxir.recipes import entry_points
from jaxir.recipes import sparse as base


@dataclasses.dataclass(frozen=True)
class Recipe(base.Recipe):
    # The sparse recipe's student with the mlm query encoder.
    model: SparseConfig = dataclasses.replace(base.Recipe().model, query_encoder="mlm")


MODES = base.MODES
FLAGS, DERIVED, WARMUPS, PARAM_RULES = base.FLAGS, base.DERIVED, base.WARMUPS, base.PARAM_RULES
RECIPE = apply_overrides(Recipe(), {}, DERIVED)
train = base.train


def config(mode: str = "cpu-scifact", overrides: dict | None = None) -> Recipe:
    """The recipe in `mode` with dotted `overrides` (given options), derived fields set: what the CLI builds."""
    return mode_config(RECIPE, MODES, mode, overrides or {}, derived=DERIVED, warmups=WARMUPS, flags=FLAGS)


parse_args, main = entry_points(__doc__, Recipe, RECIPE, train, modes=MODES, flags=FLAGS, derived=DERIVED,
                                warmups=WARMUPS, eval_metrics=base.BestOnHoldout.METRICS)


if __name__ == "__main__":
    main()
