"""Bad command lines fail at parse time with one line and rc 2; library errors past parsing become
one line too (no traceback unless --debug); `jaxir index` never silently keeps what sits at --out."""
import json

import pytest

from jaxir.cli import main
from tests.toy_beir import write_toy_beir


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_beir(tmp_path_factory.mktemp("toy"))


def _usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("option,value,words", [
    ("--k", "0", "must be >= 1"), ("--k", "-1", "must be >= 1"), ("--k", "ten", "integer"),
    ("--depth", "0", "must be >= 1"), ("--depth", "-1", "must be >= 1"),
    ("--threads", "0", "must be >= 1, got 0"), ("--threads", "two", "invalid int value"),
])
def test_eval_rejects_bad_numbers_before_loading(toy, tmp_path, capsys, option, value, words):
    err = _usage_error(["eval", "--method", "bm25", "--data", str(toy), "--cache", str(tmp_path),
                        option, value], capsys)
    assert option in err and words in err
    assert not list(tmp_path.iterdir())  # rejected before any index was built


def test_other_commands_reject_bad_values(toy, tmp_path, capsys):
    run = tmp_path / "r.trec"
    run.write_text("q1 Q0 d1 1 1.0 x\n")
    assert "must be >= 1" in _usage_error(["compare", "--run", str(run), "--reference", str(run),
                                           "--k", "0"], capsys)
    assert "unknown metric" in _usage_error(["compare", "--run", str(run), "--reference", str(run),
                                             "--metric", "foo@10"], capsys)
    assert "must be >= 1" in _usage_error(["mine", "--data", str(toy), "--depth", "0",
                                           "--out", str(tmp_path / "m.jsonl")], capsys)
    assert "must be >= 1" in _usage_error(["tune-alpha", "--checkpoint", "x", "--data", str(toy),
                                           "--holdout", "0"], capsys)
    (tmp_path / "a-file").write_text("")  # a missing folder is created (tests/eval/test_score.py); a file is no folder
    assert "is not a folder" in _usage_error(["search", "--index", str(tmp_path), "--queries", str(toy),
                                              "--run", str(tmp_path / "a-file" / "r.trec")], capsys)
    assert "is not a folder" in _usage_error(["eval", "--method", "bm25", "--data", str(toy),
                                              "--run", str(tmp_path / "a-file" / "x" / "r.trec")], capsys)


@pytest.mark.parametrize("recipe, option, value, words", [
    ("mice", "--fit.steps", "-2", "must be >= 0, got -2"),
    ("colbert", "--fit.batch_size", "0", "must be >= 1, got 0"),
    ("cross-encoder", "--data.tuples.n_negatives", "0", "must be >= 1, got 0"),
    ("sparse", "--optim.learning_rate", "-1", "must be >= 0.0, got -1.0"),
    ("i3", "--fit.keep_checkpoints", "0", "must be >= 1, got 0"),
    # nan and inf, wherever a number is meant (one rule, jaxir.config.bounds)
    ("cross-encoder", "--optim.learning_rate", "inf", "must be a finite number, got inf"),
    ("cross-encoder", "--optim.lr_multipliers", "head=nan", "must hold finite numbers only, got nan"),
    ("cross-encoder", "--data.alpha_grid", "0.5,nan", "must hold finite numbers only, got nan"),
    ("cross-encoder", "--model.alpha", "nan", "must be a finite number, got nan"),
    ("cross-encoder", "--warmup-fraction", "inf", "must be a finite number, got inf"),
    ("i3", "--model.temperature", "nan", "must be a finite number, got nan"),
    ("i3", "--model.reconstruction_weight", "inf", "must be a finite number, got inf"),
    ("colbert", "--model.distill_temperature", "inf", "must be a finite number, got inf"),
    ("colbert", "--model.dropout", "nan", "must be a finite number, got nan"),
    # choices and ranges of every kind of field, before any data (issue 39 item 7)
    ("colbert", "--fit.compute_dtype", "foo", "must be one of float32, bfloat16, got 'foo'"),
    ("mice", "--fit.best_mode", "median", "must be one of min, max, got 'median'"),
    ("i3", "--fit.remat_policy", "everything", "must be one of nothing, dots, got 'everything'"),
    ("cross-encoder", "--data.alpha_grid", "2,3", "must be <= 1.0, got 2.0 in (2.0, 3.0)"),
    ("cross-encoder", "--data.alpha_grid", "0.5,-0.1", "must be >= 0.0, got -0.1 in (0.5, -0.1)"),
    ("cross-encoder", "--data.miner", "bogus", "must be one of bm25, dense,"),
    ("sparse", "--optim.lr_multipliers", "head=-1", "must be >= 0.0, got -1.0 in (('head', -1.0),)"),
])
def test_recipe_fields_are_checked_at_parse_time(tmp_path, capsys, recipe, option, value, words):
    """Before any data is read: the --data folder does not even exist."""
    argv = ["train", "--recipe", recipe, "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"),
            option, value]
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    # named as typed (was the recipe parser's default: argv[0], "cli.py" under python -m jaxir.cli)
    assert f"jaxir train --recipe {recipe}: error: argument {option}: {words}" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("recipe, argv, words", [
    # --fit.best_metric names a held-out metric the recipe evaluates while training, or nothing
    ("colbert", ["--fit.best_metric", "bogus"], "--fit.best_metric 'bogus': must be left unset: this run "
                                                 "evaluates no held-out metric"),
    ("sparse", ["--fit.best_metric", "bogus"], "must be one of holdout_rank, holdout_acc, holdout_doc_nnz"),
    ("splade", ["--fit.best_metric", "loss"], "must be one of holdout_rank, holdout_acc, holdout_doc_nnz"),
])
def test_recipe_checks_across_fields_are_usage_errors(tmp_path, capsys, recipe, argv, words):
    err = _usage_error(["train", "--recipe", recipe, "--data", str(tmp_path / "missing"), "--out",
                        str(tmp_path / "o"), *argv], capsys)
    assert words in err and not (tmp_path / "o").exists()


def test_best_metric_of_a_recipe_that_reports_it_is_accepted():
    from jaxir.recipes import sparse

    r, _ = sparse.parse_args(["--fit.best_metric", "holdout_acc", "--fit.best_mode", "max", "--out", "x"])
    assert (r.fit.best_metric, r.fit.best_mode) == ("holdout_acc", "max")


@pytest.mark.parametrize("recipe, argv, words", [
    # matched to the params by top-level key: checked on the model's shapes before any data is read
    ("cross-encoder", ["--optim.lr_multipliers", "haed=50"], "'haed' names no parameter group (groups: bert, head)"),
    ("i3", ["--model.tie", "true", "--model.implicit_interaction", "false", "--optim.lr_multipliers", "passage=2"],
     "'passage' names no parameter group (groups: query)"),
])
def test_lr_multipliers_name_the_models_parameter_groups(tmp_path, capsys, recipe, argv, words):
    argv = ["train", "--recipe", recipe, "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), *argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"jaxir train: error: --optim.lr_multipliers: {words}\n"
    assert not (tmp_path / "o").exists()


def test_lr_multipliers_of_an_optional_group_pass_when_the_config_has_it():
    from jaxir.plan.preflight import check_recipe
    from jaxir.recipes import cross_encoder

    r, _ = cross_encoder.parse_args(["--model.pooler", "true", "--optim.lr_multipliers", "pooler=3", "--out", "x"])
    check_recipe("cross-encoder", r)  # the pooler is a group of this config's model


@pytest.mark.parametrize("command, method, option, value, words", [
    ("index", "colbert", "--nbits", "3", "must be one of 1, 2, 4, got 3"),   # was: after encoding the corpus
    ("index", "dense", "--batch-size", "0", "must be >= 1, got 0"),          # was: range() arg 3 must not be zero
    ("index", "bm25", "--analyzer", "snowball", "must be one of word, wordpiece, got 'snowball'"),
    ("index", "bm25", "--b", "1.5", "must be <= 1.0, got 1.5"),
    ("index", "bm25", "--k1", "nan", "must be a finite number, got nan"),
    ("index", "sparse", "--dtype", "int4", "must be one of float32, float16, uint8, got 'int4'"),
    ("index", "sparse", "--top-k", "0", "must be >= 1, got 0"),
    ("index", "mice", "--state-dtype", "int8", "must be one of float16, float32, got 'int8'"),
    ("index", "mice", "--prune-tokens", "-1", "must be >= 0, got -1"),
    ("eval", "cross-encoder", "--alpha", "1.5", "must be <= 1.0, got 1.5"),
    ("eval", "colbert", "--ncells", "0", "must be >= 1, got 0"),
])
def test_method_options_are_checked_at_parse_time(toy, tmp_path, capsys, command, method, option, value, words):
    argv = [command, "--method", method, "--data", str(toy), option, value]
    err = _usage_error([*argv, "--out", str(tmp_path / "o")] if command == "index" else argv, capsys)
    assert f"argument {option}: {words}" in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("method, options, words", [
    ("colbert", {"nbits": 3}, "--nbits must be one of 1, 2, 4, got 3 (method colbert)"),
    ("colbert", {"doc_maxlen": 3}, "--doc-maxlen must be >= 4, got 3 (method colbert)"),
    ("dense", {"batch_size": 0}, "--batch-size must be >= 1, got 0 (method dense)"),
    ("mice", {"alpha": float("nan")}, "--alpha must be a finite number, got nan (method mice)"),
])
def test_get_retriever_checks_options_as_the_command_line_does(method, options, words):
    """The Python API (`jaxir.load`) and every command build retrievers through it."""
    from jaxir.errors import OptionError
    from jaxir.retrievers.registry import get_retriever

    with pytest.raises(OptionError) as e:
        get_retriever(method, **options)
    assert str(e.value) == words


def test_bm25_analyzer_choices_are_the_analyzers():
    from jaxir.retrievers.bm25 import ANALYZERS as offered
    from jaxir.text.analysis import ANALYZERS

    assert offered == ANALYZERS


def test_metric_names_are_canonical():
    from jaxir.cli_args import metric

    assert metric("NDCG@10") == "ndcg@10" and metric("map") == "map" and metric("ndcg_cut_10") == "ndcg@10"


def test_library_errors_become_one_line(tmp_path, capsys, monkeypatch):
    import jaxir.cli as cli

    def boom(args):
        raise ZeroDivisionError("deliberate")

    monkeypatch.setattr(cli, "cmd_compare", boom)  # build_parser binds the command by name
    run = tmp_path / "r.trec"
    run.write_text("q1 Q0 d1 1 1.0 x\n")
    argv = ["compare", "--run", str(run), "--reference", str(run)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ZeroDivisionError: deliberate" in err and "--debug" in err
    assert main([*argv, "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_index_out_existing_is_reused_only_if_identical(toy, tmp_path, capsys):
    out = tmp_path / "idx"
    base = ["index", "--method", "bm25", "--data", str(toy), "--split", "train", "--out", str(out)]
    assert main(base) == 0
    manifest = (out / "manifest.json").read_bytes()
    # The same corpus, settings and analyzer: reused (said so), nothing rewritten.
    assert main(base) == 0
    assert "reused" in capsys.readouterr().out
    assert (out / "manifest.json").read_bytes() == manifest
    # Other build settings: an error naming the difference, the old index untouched.
    assert main([*base, "--k1", "1.2"]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "k1=1.5" in err and err.count("\n") == 1
    assert (out / "manifest.json").read_bytes() == manifest
    # --force rebuilds in place (written aside, swapped in): a complete index with the new setting.
    assert main([*base, "--k1", "1.2", "--force"]) == 0
    rebuilt = json.loads((out / "manifest.json").read_text())
    assert rebuilt["built_from"]["settings"]["k1"] == 1.2
    # Nothing is left beside it: no temp folders, no lock file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    # Something at --out that is not an index is never replaced, even with --force.
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main(["index", "--method", "bm25", "--data", str(toy), "--split", "train", "--out", str(other), "--force"]) == 2
    assert "not an index" in capsys.readouterr().err and (other / "keep.txt").read_text() == "mine"


def test_two_runs_written_to_one_path_do_not_share_a_temp_file(tmp_path):
    from jaxir.eval.runs import read_trec, write_trec

    path = tmp_path / "r.trec"
    write_trec(path, {"q": {"a": 1.0}})
    write_trec(path, {"q": {"b": 2.0}})
    assert read_trec(path) == {"q": {"b": 2.0}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.trec"]  # no temp, no lock left


def test_non_utf8_queries_name_the_file_and_line(tmp_path):
    from jaxir.errors import DataError
    from jaxir.eval.queries import read_queries

    bad = tmp_path / "q.tsv"
    bad.write_bytes(b"1\tfine\n2\tcaf\xe9\n")
    with pytest.raises(DataError, match=r"q.tsv:2: not UTF-8 \(byte 0xe9\)"):
        read_queries(bad)
