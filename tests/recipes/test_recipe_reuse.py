"""Recipes reuse mined negatives, their subsets and teacher scores only while the key record
beside each matches the train split's content and the miner / teacher (issue 39, item 3)."""
import dataclasses
import json

import pytest

from jaxir.data.mine import key_path, read_mined
from jaxir.recipes.nway_data import NwayData, prepare_beir, subset_mined
from tests.toy_beir import write_toy_beir


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    """A saved tiny cross-encoder (random weights): cheap teacher scores."""
    import jax

    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.methods.cross_encoder_config import CrossEncoderConfig
    from jaxir.models.bert import BertConfig
    from jaxir.retrievers.cross_encoder import CrossEncoderScorer

    model = CrossEncoderModel(CrossEncoderConfig(pair_maxlen=32), bert_config=BertConfig.tiny())
    folder = tmp_path_factory.mktemp("ce") / "cross-encoder"
    CrossEncoderScorer(model, model.init(jax.random.PRNGKey(0))).save(folder)
    return folder


def _move_positive(data, qid, doc):
    """Correct the train qrels in place: `qid`'s one positive is now `doc`."""
    qrels = data / "qrels" / "train.tsv"
    lines = qrels.read_text().splitlines()
    qrels.write_text("\n".join(f"{qid}\t{doc}\t1" if line.startswith(f"{qid}\t") else line
                               for line in lines) + "\n")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the miner's default index cache (runs/indexes) lands here


def test_corrected_qrels_are_mined_again_not_reused(tmp_path, tiny_teacher, capsys):
    data = write_toy_beir(tmp_path / "toy")
    out = tmp_path / "run"
    cfg = NwayData(dataset=str(data), mine_depth=6, teacher_checkpoint=str(tiny_teacher),
                   tuples=dataclasses.replace(NwayData().tuples, neg_depth=2))
    _, mined, teacher = prepare_beir(cfg, str(out))
    assert "negatives: building" in capsys.readouterr().out and key_path(mined).is_file()
    assert {r["qid"]: r["positives"] for r in read_mined(mined)}["q0"] == ["d0_0"]
    before = {r["qid"]: r["scores"] for r in map(json.loads, teacher.read_text().splitlines())}

    # An identical re-run reuses both files, and says so.
    assert prepare_beir(cfg, str(out))[1:] == (mined, teacher)
    said = capsys.readouterr().out
    assert "negatives: reused" in said and f"teacher scores of {tiny_teacher}: reused" in said

    _move_positive(data, "q0", "d0_1")
    _, mined2, teacher2 = prepare_beir(cfg, str(out))
    said = capsys.readouterr().out
    assert mined2 == mined and teacher2 == teacher  # same names, new contents
    assert "negatives: building" in said and "split.qrels_sha256" in said
    assert f"teacher scores of {tiny_teacher}: building" in said and "negatives_sha256" in said
    rec = {r["qid"]: r for r in read_mined(mined)}["q0"]
    assert rec["positives"] == ["d0_1"] and "d0_1" not in [c[0] for c in rec["candidates"]]
    after = {r["qid"]: r["scores"] for r in map(json.loads, teacher.read_text().splitlines())}
    assert "d0_1" in after["q0"] and "d0_1" not in before["q0"]  # the new positive is scored


def test_negatives_without_a_matching_record_are_mined_again(tmp_path, capsys):
    """A file there with no key record (by hand, or an older jaxir), or edited since, is not
    trusted; a changed corpus text is a new split content too."""
    data = write_toy_beir(tmp_path / "toy")
    out = tmp_path / "run"
    cfg = NwayData(dataset=str(data), mine_depth=6)
    mined = prepare_beir(cfg, str(out))[1]
    good = mined.read_bytes()
    key_path(mined).unlink()
    mined.write_text(mined.read_text().replace('"d0_0"', '"d0_3"'))  # a stale positive
    capsys.readouterr()
    prepare_beir(cfg, str(out))
    assert "no negatives.bm25.d6.jsonl.key.json beside it" in capsys.readouterr().out
    assert mined.read_bytes() == good
    mined.write_bytes(good.replace(b'"d0_0"', b'"d0_3"'))  # edited after it was recorded
    prepare_beir(cfg, str(out))
    assert "its bytes changed" in capsys.readouterr().out and mined.read_bytes() == good
    corpus = data / "corpus.jsonl"
    corpus.write_text(corpus.read_text().replace("Study 0 of insulin", "Trial 0 of insulin"))
    prepare_beir(cfg, str(out))
    assert "split.corpus_sha256" in capsys.readouterr().out


def test_subsets_are_keyed_by_their_source_and_seed(tmp_path):
    data = write_toy_beir(tmp_path / "toy")
    mined = prepare_beir(NwayData(dataset=str(data), mine_depth=6), str(tmp_path / "run"))[1]
    qids = lambda path: [r["qid"] for r in read_mined(path)]  # noqa: E731
    a = qids(subset_mined(mined, 4, 0, seed=1))
    assert qids(subset_mined(mined, 4, 0, seed=1)) == a
    seeds = {tuple(qids(subset_mined(mined, 4, 0, seed=s))) for s in range(2, 6)}
    assert seeds - {tuple(a)}  # another seed at the same name is drawn again, not reused


def test_a_file_jaxir_mine_wrote_is_taken_by_the_recipe(tmp_path, capsys):
    """The MS MARCO workflow: mine once (`jaxir mine` records the key beside its output), copy
    both files into the run: the recipe reuses them; for another depth it mines again."""
    from jaxir.cli import main
    from jaxir.data.mine import mine_or_reuse
    from jaxir.eval.beir import load_beir

    data = write_toy_beir(tmp_path / "toy")
    out = tmp_path / "negatives.bm25.d6.jsonl"
    assert main(["mine", "--retriever", "bm25", "--depth", "6", "--data", str(data), "--out", str(out)]) == 0
    assert json.loads(key_path(out).read_text())["key"]["depth"] == 6
    capsys.readouterr()
    split = load_beir(data, split="train")
    assert mine_or_reuse(split, "bm25", 6, out=out) == (out, {})
    assert "negatives: reused" in capsys.readouterr().out
    _, summary = mine_or_reuse(split, "bm25", 6, out=out, k1=0.9)  # another miner setting
    assert summary["options"] == {"k1": "0.9"} and "miner.settings.k1" in capsys.readouterr().out
