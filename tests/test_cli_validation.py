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
    (tmp_path / "a-file").write_text("")  # a missing folder is created (tests/test_score.py); a file is no folder
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
    # nan and inf, wherever a number is meant (one rule, jaxir.config_bounds)
    ("cross-encoder", "--optim.learning_rate", "inf", "must be a finite number, got inf"),
    ("cross-encoder", "--optim.lr_multipliers", "head=nan", "must hold finite numbers only, got nan"),
    ("cross-encoder", "--data.alpha_grid", "0.5,nan", "must hold finite numbers only, got nan"),
    ("cross-encoder", "--model.alpha", "nan", "must be a finite number, got nan"),
    ("cross-encoder", "--warmup-fraction", "inf", "must be a finite number, got inf"),
    ("i3", "--model.temperature", "nan", "must be a finite number, got nan"),
    ("i3", "--model.reconstruction_weight", "inf", "must be a finite number, got inf"),
    ("colbert", "--model.distill_temperature", "inf", "must be a finite number, got inf"),
    ("colbert", "--model.dropout", "nan", "must be a finite number, got nan"),
])
def test_recipe_fields_are_checked_at_parse_time(tmp_path, capsys, recipe, option, value, words):
    """Before any data is read: the --data folder does not even exist."""
    argv = ["train", "--recipe", recipe, "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"),
            option, value]
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {option}: {words}" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


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
