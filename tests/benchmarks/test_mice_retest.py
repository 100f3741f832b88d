"""benchmarks/claims/mice_retest.py: every command it would run parses through the real CLI and
recipes into the configuration the issue names, each evaluation reranks BM25's top 100 on both
test sets, and every comparison's runs are made by the plan."""
import importlib
from pathlib import Path

from benchmarks.claims import mice_retest
from jaxir.cli import build_parser
from jaxir.recipes import RECIPES


def _parse(step):
    assert step.argv[:3] == mice_retest.JAXIR
    return build_parser().parse_known_args(step.argv[3:])


def test_every_step_parses_to_the_configuration_it_names(tmp_path):
    beir, out = tmp_path / "beir", tmp_path / "out"
    plan = {s.name: s for s in mice_retest.plan(beir, out)}
    trained = {}
    for name in ["ce", *mice_retest.MODELS]:
        args, extra = _parse(plan[name])
        recipe = importlib.import_module(f"jaxir.recipes.{RECIPES[args.recipe]}")
        config, _ = recipe.parse_args([*extra, "--data", args.data, "--out", args.out])
        assert Path(args.data) == beir / "scifact"
        trained[name] = config
    for name in mice_retest.MODELS:
        assert trained[name].init_from == str(out / "ce")  # the one cross-encoder: start and teacher
    layout = {n: (c.model.doc_layout, c.model.fusion_layer, c.model.num_layers) for n, c in trained.items() if n != "ce"}
    assert layout == {"sinks-lf3": ("sinks", 3, None), "bare-lf3": ("bare", 3, None), "sinks-lf2": ("sinks", 2, None),
                      "bare-lf2": ("bare", 2, None), "sinks-lf3-L5": ("sinks", 3, 5), "sinks-lf3-L4": ("sinks", 3, 4)}
    runs = set()
    for step in plan.values():
        if "-eval-" in step.name:
            args, extra = _parse(step)
            assert not extra and (args.rerank, args.depth) == ("bm25", 100)
            assert (args.index is not None) == (args.method == "mice")
            runs.add(Path(args.run))
    for ds in mice_retest.DATASETS:
        for run, ref in mice_retest.COMPARISONS:
            assert {mice_retest.run_file(out, run, ds), mice_retest.run_file(out, ref, ds)} <= runs
    assert set(plan["report"].after) == {n for n in plan if "-eval-" in n}
