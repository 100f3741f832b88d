"""What `jaxir train` hands the engine, built without data or weights: each recipe's task (its own
`task_for`), optimizer and one global example batch at the recipe's shapes.

The batch comes from the recipe's own tokenising code (`nway_arrays`, `PairEncoder`,
`TupleTexts`, ...) run on synthetic texts longer than every length limit, plus the arrays the
recipe's batch source adds (`valid`, teacher scores), so its shapes and dtypes are the ones the
step compiles for in training; it is built on first use (`jaxir train`'s option checks need only
the task and optimizer). Params are never materialised: the plan only traces `task.init`.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from jaxir.errors import OptionError

_QUERY = " ".join(["what", "is", "dense", "retrieval"] * 40)   # > any query_maxlen in tokens
_DOC = " ".join(["passages", "of", "the", "training", "collection"] * 160)  # > any doc / pair length


@dataclasses.dataclass(frozen=True)
class StepInputs:
    task: object               # jaxir.training.task.Task
    optim: object              # jaxir.training.optim.OptimConfig
    make_batch: Callable[[], dict]  # -> one global batch: name -> np.ndarray (`batch`)
    encoded: tuple[str, ...]   # the batch's token arrays that run through the encoder(s)

    @functools.cached_property
    def batch(self) -> dict:
        return self.make_batch()

    @property
    def encoder_tokens(self) -> int:
        """Token positions one global batch runs through the encoder(s)."""
        return int(sum(self.batch[n].size for n in self.encoded))


def _nway(arrays: Callable, batch_size: int, nway: int, *, teacher: bool) -> dict:
    """`arrays(queries [B], docs [B][N])` of synthetic texts + the tuple source's `valid` (and
    `teacher`) [B, N] (`jaxir.data.tuples.TupleSource.take`)."""
    out = dict(arrays([_QUERY] * batch_size, [[_DOC] * nway for _ in range(batch_size)]))
    out["valid"] = np.ones((batch_size, nway), bool)
    if teacher:
        out["teacher"] = np.zeros((batch_size, nway), np.float32)
    return out


def colbert(r, bert, tokenizer) -> StepInputs:
    from jaxir.methods.colbert import ColBERTModel
    from jaxir.recipes import colbert as recipe

    model = ColBERTModel(r.model, bert_config=bert, tokenizer=tokenizer)
    batch = functools.partial(_nway, functools.partial(recipe.nway_arrays, model), r.fit.batch_size,
                              1 + r.data.tuples.n_negatives, teacher=r.model.distillation)
    return StepInputs(recipe.task_for(r, model), r.optim, batch, ("q_ids", "d_ids"))


def i3(r, bert, tokenizer) -> StepInputs:
    from jaxir.methods.i3 import I3Model
    from jaxir.recipes import i3 as recipe

    model = I3Model(r.model, bert_config=bert, tokenizer=tokenizer)
    nway = 1 + r.data.tuples.n_negatives

    def batch() -> dict:
        out = _nway(functools.partial(recipe.i3_arrays, model), r.fit.batch_size, nway,
                    teacher=r.model.objective == "distill")
        if r.data.pseudo_queries:  # a reconstruction target for every passage (PseudoQueryTargets)
            ids, mask = recipe.target_arrays(tokenizer, [_QUERY] * (r.fit.batch_size * nway), r.model.query_maxlen)
            shape = (r.fit.batch_size, nway, r.model.query_maxlen)
            out.update(rec_ids=ids.reshape(shape), rec_mask=mask.reshape(shape))
        return out
    # per_epoch: any number traces the same program (beta's decay is a traced function of it).
    task = recipe.task_for(r, model, per_epoch=max(1, r.optim.total_steps))
    return StepInputs(task, recipe.optimizer_for(r), batch, ("q_ids", "d_ids"))


def mice(r, bert, tokenizer) -> StepInputs:
    from jaxir.methods.mice import MiceModel
    from jaxir.recipes import mice as recipe

    model = MiceModel(r.model, bert_config=bert, tokenizer=tokenizer)  # fresh encoder and head
    batch = functools.partial(_nway, functools.partial(recipe.mice_arrays, model), r.fit.batch_size,
                              1 + r.data.tuples.n_negatives, teacher=True)  # Margin-MSE always distils
    return StepInputs(recipe.task_for(r, model), r.optim, batch, ("q_ids", "d_ids"))


def cross_encoder(r, bert, tokenizer) -> StepInputs:
    from jaxir.data.tuples import PairEncoder
    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.recipes import cross_encoder as recipe

    model = CrossEncoderModel(r.model, bert_config=bert, tokenizer=tokenizer)
    batch = functools.partial(_nway, PairEncoder(tokenizer, r.model.pair_maxlen), r.fit.batch_size,
                              1 + r.data.tuples.n_negatives, teacher=False)
    return StepInputs(recipe.task_for(model), r.optim, batch, ("input_ids",))


def sparse(r, bert, tokenizer) -> StepInputs:
    """The learned-sparse and SPLADE recipes: `TupleTexts.take` over a synthetic corpus, teacher
    scores of zeros, an idf table that keeps the whole vocabulary (the widest scoring vocabulary:
    the most memory a real idf table can ask for)."""
    from jaxir.methods.sparse import SparseModel
    from jaxir.recipes import sparse as recipe
    from jaxir.recipes.sparse_batches import TupleTexts
    from jaxir.recipes.sparse_teachers import TeacherScores

    model = SparseModel(r.model, idf=np.full(bert.vocab_size, 10.0, np.float32), bert_config=bert,
                        tokenizer=tokenizer)
    b, nway = r.fit.batch_size, 1 + r.data.n_negatives

    def batch() -> dict:
        if r.model.lexical_prior:
            raise OptionError("jaxir plan does not model --model.lexical_prior (its width depends on the corpus)")
        doc_ids = [f"d{i}" for i in range(b * nway)]
        teacher = TeacherScores([_QUERY] * b, doc_ids, [np.zeros((b, len(doc_ids)), np.float32)
                                                        for _ in r.data.teachers])
        candidates = [doc_ids[i * nway:(i + 1) * nway] for i in range(b)]
        return TupleTexts(model, r.data, range(b), candidates, dict.fromkeys(doc_ids, _DOC), teacher).take(np.arange(b))
    encoded = ("q_ids", "d_ids") if r.model.query_encoder == "mlm" else ("d_ids",)
    return StepInputs(recipe.task_for(r, model), r.optim, batch, encoded)


# Recipe name (`jaxir.recipes.RECIPES`) -> its inputs; a new recipe adds one line (a test checks).
BUILDERS = {"colbert": colbert, "i3": i3, "mice": mice, "cross-encoder": cross_encoder, "sparse": sparse,
            "splade": sparse}


def step_inputs(recipe: str, r, bert, tokenizer) -> StepInputs:
    if recipe not in BUILDERS:
        raise OptionError(f"jaxir plan has no inputs for recipe {recipe!r} (known: {', '.join(BUILDERS)})")
    try:
        return BUILDERS[recipe](r, bert, tokenizer)
    except ValueError as e:  # a model config that does not fit the backbone, e.g. MICE's layers
        if isinstance(e, OptionError):
            raise
        raise OptionError(f"recipe {recipe} on this backbone: {e}") from None
