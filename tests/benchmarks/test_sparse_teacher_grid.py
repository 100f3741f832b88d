"""benchmarks/claims/sparse_teacher_grid.py: every command it would run parses through the real CLI and
recipes into the configuration the grid means, and a step whose output exists is not run again."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import ROOT
from benchmarks.claims import sparse_teacher_grid as grid
from benchmarks.harness import steps
from benchmarks.claims import teacher_ensemble
from jaxir.cli import build_parser
from jaxir.recipes import RECIPES


def _cli(step):
    assert step.argv[:3] == grid.JAXIR
    return build_parser().parse_known_args(step.argv[3:])


def _recipe_config(step):
    args, extra = _cli(step)
    recipe = importlib.import_module(f"jaxir.recipes.{RECIPES[args.recipe]}")
    config, out = recipe.parse_args([*extra, "--data", args.data, "--out", args.out])
    return args.recipe, config, Path(out)


@pytest.mark.parametrize("dataset,steps", [("scifact", 200), ("nfcorpus", 100)])
def test_every_training_step_parses_to_the_grid_it_means(tmp_path, dataset, steps):
    out = tmp_path / "grid"
    plan = {s.name: s for s in grid.plan(tmp_path / dataset, out)}
    recipe, plain, _ = _recipe_config(plan["plain"])
    assert recipe == "i3" and not plain.model.implicit_interaction and plain.fit.checkpoint_every == 50
    recipe, splade, _ = _recipe_config(plan["splade"])
    assert recipe == "splade" and splade.model.query_encoder == "mlm" and splade.fit.steps == steps
    for student in grid.STUDENTS:
        recipe, cfg, where = _recipe_config(plan[student.name])
        assert recipe == "sparse" and where == out / student.name
        assert cfg.fit.steps == steps and cfg.model.query_encoder == "idf"
        assert cfg.model.flops_mode == student.flops and cfg.model.lexical_prior == student.prior
        if student.teachers:
            assert cfg.data.teachers == tuple(
                {"plain": f"i3:{out}/plain/i3", "splade": f"splade:{out}/splade/splade"}[t]
                for t in student.teachers)
            assert tuple(cfg.model.teacher_weights) == (1.0,) * len(student.teachers)
        else:  # the recipe's default pair and weights, untouched
            default = importlib.import_module("jaxir.recipes.sparse").config()
            assert cfg.data.teachers == default.data.teachers
            assert cfg.model.teacher_weights == default.model.teacher_weights
        index_args, extra = _cli(plan[f"{student.name}-index"])
        assert not extra and index_args.checkpoint == str(out / student.name / "sparse")
        assert (index_args.head_scale == 0.25) == student.prior


def test_eval_and_matched_steps_name_what_they_read(tmp_path):
    plan = {s.name: s for s in grid.plan(tmp_path / "scifact", tmp_path / "g")}
    for teacher, method in (("plain", "i3"), ("splade", "splade")):
        (tmp_path / "g" / teacher).mkdir(parents=True)  # made by the teacher's training
        args, extra = _cli(plan[f"{teacher}-eval"])
        assert not extra and args.method == method and plan[f"{teacher}-eval"].after == [teacher]
    assert plan["teachers-ensemble"].argv[1:3] == ["-m", "benchmarks.claims.teacher_ensemble"]
    pair = teacher_ensemble.arguments(plan["teachers-ensemble"].argv[3:])
    assert pair.teachers == [f"i3:{tmp_path}/g/plain/i3", f"splade:{tmp_path}/g/splade/splade"]
    assert pair.weights == [[1, 0], [0, 1], [1, 1]] and plan["teachers-ensemble"].after == ["plain", "splade"]
    assert teacher_ensemble.arguments(plan["minilm-bm25-ensemble"].argv[3:]).teachers == ["dense", "bm25"]
    matched = plan["matched-no-prior"].argv
    named = [a.split("=", 1)[1] for a in matched if "=" in a and "/indexes/" in a]
    assert [Path(n).name for n in named] == [f"{s.name}-w1" for s in grid.STUDENTS if not s.prior]


def test_dependants_of_a_failed_step_are_skipped_and_the_rest_run(tmp_path, monkeypatch, capsys):
    ran = []

    def fake_run(step, logs, record):  # the plain teacher fails; every other step succeeds
        ran.append(step.name)
        if step.name == "plain":
            return False
        step.done.parent.mkdir(parents=True, exist_ok=True)
        step.done.write_text("{}")
        return True

    monkeypatch.setattr(steps, "run_step", fake_run)
    monkeypatch.setattr(sys, "argv", ["grid", "--data", str(tmp_path / "scifact"), "--out", str(tmp_path / "g")])
    with pytest.raises(SystemExit, match="failed"):
        grid.main()
    needs_plain = {s.name for s in grid.STUDENTS if "plain" in s.teachers}
    assert needs_plain and not needs_plain & set(ran)
    assert not {f"{n}-index" for n in needs_plain} & set(ran)
    assert {"splade", "splade-eval", "splade-idf", "splade-idf-index", "minilm-bm25-idf-index",
            "minilm-bm25-ensemble"} <= set(ran) and "teachers-ensemble" not in ran
    assert "matched-prior" not in ran and "matched-no-prior" not in ran  # each holds an ensemble row
    out = capsys.readouterr().out
    assert "ens-idf: skipped, needs ['plain']" in out and "ens-idf-index: skipped, needs ['ens-idf']" in out


def test_done_steps_are_not_run_again(tmp_path):
    script = [sys.executable, "-m", "benchmarks.claims.sparse_teacher_grid"]  # as the README runs it
    data = tmp_path / "scifact"
    out = tmp_path / "g"
    for step in grid.plan(data, out):  # every output there but one student's index
        if step.name != "ens-idf-index" and not step.name.startswith("matched"):
            step.done.parent.mkdir(parents=True, exist_ok=True)
            step.done.write_text("{}")
    dry = subprocess.run(script + ["--data", str(data), "--out", str(out), "--only", "matched-no-prior", "--dry-run"],
                         capture_output=True, text=True, cwd=ROOT)
    assert dry.returncode == 0, dry.stderr
    to_run = [line.split(":")[0] for line in dry.stdout.splitlines() if ": to run:" in line]
    assert to_run == ["ens-idf-index", "matched-no-prior"]  # nothing done is listed, nothing outside --only
    bad = subprocess.run(script + ["--data", str(data), "--only", "nope"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "unknown step" in bad.stderr


def test_flops_modes_plan_trains_each_mode_and_lambda_and_pairs_by_sparsity(tmp_path):
    """benchmarks/claims/flops_modes.py: each (mode, lambda) run parses to the sparse recipe with that
    FLOPS mode and lambda_d, its index has one window, and the report pairs runs by nnz/doc."""
    from benchmarks.claims import flops_modes

    out = tmp_path / "f"
    lambdas = {"idf_aware": ["0.01", "0.1"], "uniform": ["0.001", "0.01"]}
    plan = {s.name: s for s in flops_modes.plan(tmp_path / "scifact", out, lambdas)}
    for mode, values in lambdas.items():
        for lam in values:
            recipe, cfg, where = _recipe_config(plan[f"{mode}-{lam}"])
            assert recipe == "sparse" and where == out / f"{mode}-{lam}" and cfg.fit.steps == 200
            assert cfg.model.flops_mode == mode and cfg.model.flops_lambda == float(lam)
            index_args, extra = _cli(plan[f"{mode}-{lam}-index"])
            assert not extra and index_args.doc_windows == 1
    assert sorted(plan["matched"].after) == sorted(f"{m}-{v}-index" for m, vs in lambdas.items() for v in vs)
    nnz = {("idf_aware", "0.01"): 120.0, ("idf_aware", "0.1"): 40.0, ("uniform", "0.001"): 110.0,
           ("uniform", "0.01"): 55.0}
    assert flops_modes.nearest_pairs(nnz) == [("0.01", "0.001"), ("0.1", "0.01")]
    script = [sys.executable, "-m", "benchmarks.claims.flops_modes"]  # as the README runs it
    for bad, why in ((["--lambdas", "idf=0.1"], "MODE=L1,L2"),
                     (["--lambdas", "uniform=1,2,3,4"], "at most three")):
        proc = subprocess.run(script + ["--data", str(tmp_path / "scifact"), *bad, "--dry-run"],
                              capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode != 0 and why in proc.stderr, proc.stderr
