"""Outputs never clobber inputs (issue 39, item 6): every command refuses an output path that is,
or lies inside, one of its inputs (through symbolic links, `..` and hard links too), with one line
naming both and rc 2, before any data is read; the input is left as it was."""
import os
import shutil
from pathlib import Path

import pytest

from jaxir.cli import main
from tests.toy_beir import write_toy_beir


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("outs")
    data = write_toy_beir(root / "data")
    idx = root / "idx"
    assert main(["index", "--method", "bm25", "--data", str(data), "--split", "train", "--out", str(idx)]) == 0
    (root / "mined.jsonl").write_text('{"qid": "q0", "pos": ["d0_0"], "neg": ["d0_1"]}\n')
    (root / "ckpt").mkdir()
    (root / "ckpt" / "model.json").write_text("{}")
    return root


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cases(r):
    d, idx, ck = r / "data", r / "idx", r / "ckpt"
    return {
        "mine --out the corpus": (["mine", "--data", d, "--out", d / "corpus.jsonl"], "--out", "--data"),
        "idf --out the queries": (["idf", "--data", d, "--out", d / "queries.jsonl"], "--out", "--data"),
        "eval --run an index's manifest": (["eval", "--method", "bm25", "--data", d, "--split", "train",
                                            "--index", idx, "--run", idx / "manifest.json"], "--run", "--index"),
        "eval --output-json in the BEIR folder": (["eval", "--method", "bm25", "--data", d, "--split", "train",
                                                   "--index", idx, "--output-json", d / "qrels" / "train.tsv"],
                                                  "--output-json", "--data"),
        "eval --run in a cached index": (["eval", "--method", "bm25", "--data", d, "--split", "train",
                                          "--cache", r, "--run", idx / "doc_ids.npy"], "--run", "--cache"),
        "search --run the queries": (["search", "--index", idx, "--queries", d / "queries.jsonl",
                                      "--run", d / "queries.jsonl"], "--run", "--queries"),
        "search --run in the index": (["search", "--index", idx, "--queries", d, "--run", idx / "r.trec"],
                                      "--run", "--index"),
        "teacher --out the mined file": (["teacher", "--checkpoint", ck, "--mined", r / "mined.jsonl",
                                          "--data", d, "--out", r / "mined.jsonl"], "--out", "--mined"),
        "teacher --out in the checkpoint": (["teacher", "--checkpoint", ck, "--mined", r / "mined.jsonl",
                                             "--data", d, "--out", ck / "model.json"], "--out", "--checkpoint"),
        "export --out in the index": (["export", "--index", idx, "--format", "anserini",
                                       "--out", idx / "manifest.json"], "--out", "--index"),
        "export-model --out the checkpoint": (["export-model", "--checkpoint", ck, "--format", "pylate",
                                               "--out", ck, "--force"], "--out", "--checkpoint"),
        "export-model --out above the checkpoint": (["export-model", "--checkpoint", ck, "--format", "pylate",
                                                     "--out", r, "--force"], "--out", "--checkpoint"),
        "index --out inside the BEIR folder": (["index", "--method", "bm25", "--data", d, "--split", "train",
                                                "--out", d / "qrels", "--force"], "--out", "--data"),
        "index --out above the BEIR folder": (["index", "--method", "bm25", "--data", d, "--split", "train",
                                               "--out", r, "--force"], "--out", "--data"),
        "index --append --out with .. into the data": (["index", "--method", "bm25", "--data", d, "--split",
                                                        "train", "--append", "--out", f"{idx}/../data"],
                                                       "--out", "--data"),
        "train --out the BEIR folder": (["train", "--recipe", "colbert", "--data", d, "--out", d], "--out", "--data"),
        "train --out the --init-from checkpoint": (["train", "--recipe", "colbert", "--data", d, "--out", ck,
                                                    "--init-from", ck], "--out", "a recipe option"),
        "demo --out the BEIR folder": (["demo", "--data", d, "--split", "train", "--out", d], "--out", "--data"),
    }


CASES = list(_cases(Path("/x")))


@pytest.mark.parametrize("case", CASES)
def test_an_output_over_an_input_is_refused_before_any_work(setup, capsys, case):
    argv, out_option, in_option = _cases(setup)[case]
    before = _snapshot(setup)
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    line = err[0]
    assert f"{out_option} " in line and f"{in_option} " in line and "write the output elsewhere" in line, line
    assert _snapshot(setup) == before  # nothing written, nothing replaced
    assert not (setup / "runs").exists() and not list(setup.glob(".*"))


def test_links_do_not_hide_an_input(setup, tmp_path, capsys):
    """A link to the BEIR folder, a BEIR folder of links to shared files, a hard link to a file."""
    link = tmp_path / "link"
    link.symlink_to(setup / "data")
    assert main(["mine", "--data", str(setup / "data"), "--out", str(link / "corpus.jsonl")]) == 2
    linked = tmp_path / "linked"
    (linked / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv"):
        (linked / name).symlink_to(setup / "data" / name)
    assert main(["idf", "--data", str(linked), "--out", str(setup / "data" / "corpus.jsonl")]) == 2
    assert main(["idf", "--data", str(linked), "--out", str(setup / "data" / "qrels" / "train.tsv")]) == 2
    hard = tmp_path / "q.jsonl"
    os.link(setup / "data" / "queries.jsonl", hard)
    assert main(["search", "--index", str(setup / "idx"), "--queries", str(setup / "data" / "queries.jsonl"),
                 "--run", str(hard)]) == 2
    err = capsys.readouterr().err
    assert err.count("write the output elsewhere") == 4


def test_outputs_beside_inputs_still_work(setup, tmp_path, capsys):
    """Not over-strict: an output next to the BEIR folder, or directly in the index cache folder."""
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copytree(setup / "idx", cache / "some-index")
    assert main(["idf", "--data", str(setup / "data"), "--split", "train", "--out", str(tmp_path / "idf.json")]) == 0
    assert main(["eval", "--method", "bm25", "--data", str(setup / "data"), "--split", "train",
                 "--cache", str(cache), "--run", str(cache / "run.trec")]) == 0
    assert (cache / "run.trec").is_file()
    assert main(["search", "--index", str(setup / "idx"), "--queries", str(setup / "data"), "--split", "train",
                 "--run", str(tmp_path / "r.trec")]) == 0
