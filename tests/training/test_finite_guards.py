"""nan / inf never pass silently: config numbers (command line and saved configs), teacher score
files, the training loss and gradient norm (the run stops, nothing non-finite is saved), saved
params, and a reranker's scores (never turned into numbers by min-max)."""
import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.cli import main
from jaxir.errors import CheckpointError, DataError, NonFiniteError
from jaxir.training.data import ArraySource
from jaxir.training.loop import FitConfig, fit
from jaxir.training.optim import OptimConfig
from jaxir.training.task import Task
from jaxir.training.toy import toy_data, toy_task

NAN, INF = float("nan"), float("inf")


# --- config numbers: one rule, command line and configs built any other way ---------------------

# (the command-line cases are rows of tests/cli/test_cli_validation.py's parse-time table)


def test_method_options_refuse_nonfinite_numbers(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", "--method", "cross-encoder", "--data", str(tmp_path), "--alpha", "nan"])
    assert e.value.code == 2 and "argument --alpha: must be a finite number, got nan" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, words", [
    ({"learning_rate": INF}, "learning_rate must be a finite number, got inf"),
    ({"lr_multipliers": (("head", NAN),)}, "lr_multipliers must hold finite numbers only, got nan"),
    ({"weight_decay": NAN}, "weight_decay must be a finite number, got nan"),
])
def test_configs_built_in_python_refuse_nonfinite_numbers(kwargs, words):
    with pytest.raises(ValueError, match=words):
        OptimConfig(**kwargs)


def test_a_field_may_allow_nonfinite_values():
    from jaxir.config.bounds import bounded, check_bounds

    @dataclasses.dataclass(frozen=True)
    class C:
        floor: float = bounded(-INF, finite=False)
        scale: float = 1.0

    check_bounds(C())  # -inf allowed where the field says so
    with pytest.raises(ValueError, match="scale must be a finite number, got inf"):
        check_bounds(C(scale=INF))


def test_saved_configs_refuse_nonfinite_numbers():
    from jaxir.methods.colbert_config import ColBERTConfig
    from jaxir.models.saved_model import config_from_dict

    saved = dataclasses.asdict(ColBERTConfig())
    assert config_from_dict(ColBERTConfig, {**saved, "distill_temperature": 2.0}).distill_temperature == 2.0
    with pytest.raises(CheckpointError, match="distill_temperature must be a finite number, got inf"):
        config_from_dict(ColBERTConfig, {**saved, "distill_temperature": INF})


# --- teacher score files ------------------------------------------------------------------------

def _mined_and_teacher(tmp_path, bad_score):
    from jaxir.data.mine import write_mined

    mined = tmp_path / "mined.jsonl"
    write_mined(mined, [{"qid": f"q{i}", "positives": [f"p{i}"],
                         "candidates": [[f"d{i}_{j}", float(-j)] for j in range(4)]} for i in range(3)])
    teacher = tmp_path / "teacher.jsonl"
    lines = [json.dumps({"qid": f"q{i}", "scores": {f"p{i}": 1.0, **{f"d{i}_{j}": 0.5 for j in range(4)}}})
             for i in range(3)]
    lines[1] = lines[1].replace('"d1_2": 0.5', f'"d1_2": {bad_score}')  # json writes NaN / Infinity
    teacher.write_text("\n".join(lines) + "\n")
    return mined, teacher


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", '"x"'])
def test_teacher_files_with_nonfinite_scores_are_refused_with_file_and_line(tmp_path, bad):
    from jaxir.data.tuples import TupleConfig, TupleSource

    mined, teacher = _mined_and_teacher(tmp_path, bad)
    with pytest.raises(DataError, match=r"teacher\.jsonl:2: teacher score of doc 'd1_2' is"):
        TupleSource(mined, {f"q{i}": "a query" for i in range(3)}, str, lambda q, d: {},
                    TupleConfig(n_negatives=2, neg_depth=4), teacher_path=teacher)


def test_a_finite_teacher_file_still_loads(tmp_path):
    from jaxir.data.tuples import TeacherScores

    _, teacher = _mined_and_teacher(tmp_path, "0.25")
    assert TeacherScores(teacher).scores("q1", ["d1_2", "p1"]).tolist() == [0.25, 1.0]


def test_a_teacher_scoring_nan_writes_no_file(tmp_path):
    from jaxir.data.mine import write_mined
    from jaxir.data.teacher import score_mined

    mined = tmp_path / "mined.jsonl"
    write_mined(mined, [{"qid": "q0", "positives": ["p0"], "candidates": [["d0", 1.0], ["d1", 0.0]]}])
    out = tmp_path / "teacher.jsonl"
    with pytest.raises(NonFiniteError, match="query 'q0' doc 'd0' nan"):
        score_mined(lambda qs, docs: [np.array([1.0, NAN, 2.0])], mined, {"q0": "a query"}, str,
                    depth=2, out=out)
    assert not out.exists()


def test_msmarco_nway_examples_with_nan_teacher_scores_are_refused(tmp_path):
    from jaxir.recipes.nway_data import NwayData, msmarco_examples

    (tmp_path / "c.tsv").write_text("1\tdoc one\n2\tdoc two\n")
    (tmp_path / "q.tsv").write_text("7\ta query\n")
    (tmp_path / "e.jsonl").write_text('[7, [1, 3.5], [2, 1.0]]\n[7, [1, 3.5], [2, NaN]]\n')
    d = NwayData(examples=str(tmp_path / "e.jsonl"), collection=str(tmp_path / "c.tsv"),
                 queries=str(tmp_path / "q.tsv"))
    with pytest.raises(DataError, match=r"e\.jsonl:2: teacher score of doc 2 is nan"):
        msmarco_examples(d)


# --- training: the first non-finite loss or gradient norm stops the run -------------------------

def _poisoned_task(from_update: int, where: str) -> Task:
    """The toy task whose loss (where="loss") or gradient only (where="grad": the loss stays
    finite) is nan from optimizer update `from_update` on."""
    base = toy_task(dropout=0.0)

    def loss_fn(params, batch, rng, step):
        loss, metrics = base.loss_fn(params, batch, rng)
        poison = step >= from_update
        if where == "loss":
            return jnp.where(poison, jnp.nan, loss), metrics
        # 0 * sqrt(0 * |x|) is 0, its gradient nan: a finite loss with a nan gradient.
        x = jnp.where(poison, 0.0 * jnp.abs(params["dense"]["bias"].sum()), 1.0)
        return loss + 0.0 * jnp.sqrt(x), metrics

    return dataclasses.replace(base, loss_fn=loss_fn, step_aware=True)


def _fit(task, tmp_path, *, steps, optim=None, **kw):
    cfg = FitConfig(steps=steps, batch_size=8, out_dir=str(tmp_path), progress=False,
                    fast_compile=True, **kw)
    return fit(task, ArraySource(toy_data(32)), config=cfg,
               optim=optim or OptimConfig(learning_rate=1e-2, total_steps=steps))


def _saved_steps(tmp_path):
    return sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())


@pytest.mark.parametrize("where, words", [("loss", "step 3: loss nan"), ("grad", "grad_norm nan")])
@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_training_stops_at_the_first_nonfinite_step_and_keeps_the_last_good_checkpoint(tmp_path, where, words):
    # Checked at the logging cadence (every 4 steps) and before each save (every 2): step 3 is
    # the first bad one, found at step 4 before step 4's state could be saved.
    with pytest.raises(NonFiniteError, match=words) as e:
        _fit(_poisoned_task(2, where), tmp_path, steps=6, log_every=4, checkpoint_every=2)
    assert "step 3" in str(e.value) and "last checkpoint, step 2" in str(e.value) and "\n" not in str(e.value)
    assert _saved_steps(tmp_path) == [2]
    log = tmp_path / "metrics.jsonl"
    records = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    assert all(math.isfinite(r["loss"]) for r in records)  # the nan record is not logged either


def test_training_never_saves_nonfinite_params(tmp_path):
    # Finite loss and gradient, but lr * multiplier overflows float32: the step's params are inf/nan.
    optim = OptimConfig(learning_rate=1e38, total_steps=1, lr_multipliers=(("dense", 10.0),))
    with pytest.raises(NonFiniteError, match=r"step 1: parameter \['dense'\]\['(bias|kernel)'\] holds nan or inf"):
        _fit(toy_task(dropout=0.0), tmp_path, steps=1, optim=optim)
    assert _saved_steps(tmp_path) == []


def test_a_finite_run_is_unchanged(tmp_path):
    result = _fit(toy_task(dropout=0.0), tmp_path, steps=3, log_every=2)
    assert _saved_steps(tmp_path) == [3] and math.isfinite(result.last_train["loss"])


# --- saved params -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Cfg:
    width: int = 2


def test_saving_nonfinite_params_is_refused_naming_the_parameter(tmp_path):
    from jaxir.models.saved_model import save_model

    params = {"bert": {"kernel": np.ones((2, 2), np.float32)},
              "head": {"bias": jnp.array([0.0, jnp.nan], jnp.bfloat16), "ids": np.arange(2)}}
    with pytest.raises(NonFiniteError, match=r"parameter \['head'\]\['bias'\] holds nan \(1 of 2"):
        save_model(tmp_path / "m", method="toy", config=_Cfg(), params=params)
    assert not (tmp_path / "m").exists()
    params["head"]["bias"] = jnp.zeros(2, jnp.bfloat16)
    assert (save_model(tmp_path / "m", method="toy", config=_Cfg(), params=params) / "model.json").is_file()


# --- reranker scores ----------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [None, 0.5])
def test_interpolation_refuses_nonfinite_reranker_scores_naming_the_query(alpha):
    from jaxir.methods.cross_encoder import interpolate, interpolate_all

    good, bad = np.array([1.0, 2.0, 3.0]), np.array([1.0, NAN, 3.0])
    first = [np.array([3.0, 2.0, 1.0])] * 2
    assert len(interpolate_all([good, good], first, alpha, ["q one", "q two"])) == 2
    with pytest.raises(NonFiniteError, match="query 'q two' nan"):
        interpolate_all([good, bad], first, alpha, ["q one", "q two"])
    with pytest.raises(NonFiniteError, match="query 'q9' inf"):
        interpolate(np.array([1.0, INF]), np.array([1.0, 0.0]), 0.5, query="q9")


def test_a_nan_cross_encoder_is_an_error_not_the_first_stage_ranking():
    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.methods.cross_encoder_config import CrossEncoderConfig
    from jaxir.models.bert import BertConfig
    from jaxir.retrievers.cross_encoder import CrossEncoderScorer
    from jaxir.pipeline.rerank import rerank_run

    model = CrossEncoderModel(CrossEncoderConfig(pair_maxlen=32, rerank_batch_size=4, alpha=0.5),
                         bert_config=BertConfig.tiny())
    params = model.init(jax.random.PRNGKey(0))
    params["head"] = jax.tree_util.tree_map(lambda x: jnp.full_like(x, jnp.nan), params["head"])
    texts = {"d1": "cells divide", "d2": "stocks fell"}
    with pytest.raises(NonFiniteError, match="query 'how do cells divide' nan"):
        rerank_run({"q1": {"d1": 2.0, "d2": 1.0}}, {"q1": "how do cells divide"}, texts.__getitem__,
                   CrossEncoderScorer(model, params), 2, progress=False)
