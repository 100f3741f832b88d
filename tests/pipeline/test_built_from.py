"""Indexes are used only for the corpus and settings they were built from (issue probes 1 and 2)."""
import json
import shutil

import pytest

from jaxir.cli import main
from jaxir.eval.beir import corpus_fingerprint, load_beir
from tests.toy_beir import write_toy_beir
from tests.tiny_hf import tiny_bert_folder


def _eval(data, *extra):
    return ["eval", "--method", "bm25", "--data", str(data), "--split", "train", *extra]


def _ndcg(capsys) -> float:
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| toy"))
    return float(row.split("|")[3])


def _rewrite_texts(folder):
    """Same ids, same count, texts moved one document along: every positive now holds another
    topic's text, so a correct evaluation collapses."""
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    docs = [json.loads(line) for line in lines]
    texts = [d["text"] for d in docs]
    for d, t in zip(docs, texts[4:] + texts[:4]):
        d["text"] = t
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))


def test_corpus_fingerprint_covers_ids_texts_and_order():
    base = corpus_fingerprint(["a", "b"], ["x", "y"])
    assert base == corpus_fingerprint(["a", "b"], ["x", "y"])
    others = [(["a", "b"], ["y", "x"]), (["b", "a"], ["x", "y"]), (["a", "b"], ["x", "y "]),
              (["ab", ""], ["x", "y"]), (["a"], ["xb"])]
    assert all(corpus_fingerprint(i, t) != base for i, t in others)


def test_rewritten_corpus_is_reindexed_not_served_from_the_cache(tmp_path, capsys):
    data = write_toy_beir(tmp_path / "toy")
    cache = tmp_path / "cache"
    assert main(_eval(data, "--cache", str(cache))) == 0
    before = _ndcg(capsys)
    _rewrite_texts(data)
    assert main(_eval(data, "--cache", str(cache))) == 0
    after = _ndcg(capsys)
    assert main(_eval(data, "--cache", str(tmp_path / "fresh"))) == 0
    truth = _ndcg(capsys)
    assert after == truth < before / 2  # the cache answered for the new corpus, not the old one
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 2


def test_index_of_another_corpus_is_refused_unless_allowed(tmp_path, capsys):
    a, b = write_toy_beir(tmp_path / "a"), write_toy_beir(tmp_path / "b")
    _rewrite_texts(b)
    index = tmp_path / "idx-a"
    assert main(["index", "--method", "bm25", "--data", str(a), "--split", "train", "--out", str(index)]) == 0
    capsys.readouterr()
    assert main(_eval(b, "--index", str(index))) == 2
    err = capsys.readouterr().err
    assert "another corpus" in err and "--allow-corpus-mismatch" in err and err.count("\n") == 1
    assert main(_eval(b, "--index", str(index), "--allow-corpus-mismatch")) == 0
    assert "warning: --allow-corpus-mismatch" in capsys.readouterr().err
    # Its own corpus is accepted, and with the settings it was built with.
    assert main(_eval(a, "--index", str(index))) == 0
    capsys.readouterr()
    assert main(_eval(a, "--index", str(index), "--k1", "0.9")) == 2
    assert "k1=1.5" in capsys.readouterr().err


def test_index_without_a_corpus_record_is_refused(tmp_path, capsys):
    from jaxir.retrievers.bm25 import BM25Retriever

    data = write_toy_beir(tmp_path / "toy")
    ds = load_beir(data, split="train")
    legacy = tmp_path / "legacy"
    BM25Retriever().build(ds.doc_ids, ds.doc_texts(), legacy)  # the library call alone records no corpus
    assert main(_eval(data, "--index", str(legacy))) == 2
    assert "no corpus fingerprint" in capsys.readouterr().err


def test_cache_folder_with_a_stale_record_is_rebuilt(tmp_path, capsys):
    """A cache folder whose record does not match (e.g. written by an older jaxir) is rebuilt."""
    from jaxir.index.manifest import read_manifest
    from jaxir.index.store import load_index

    data = write_toy_beir(tmp_path / "toy")
    cache = tmp_path / "cache"
    assert main(_eval(data, "--cache", str(cache))) == 0
    first = _ndcg(capsys)
    (folder,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    from jaxir.retrievers.bm25 import BM25Retriever

    ds = load_beir(data, split="train")
    shutil.rmtree(folder)
    BM25Retriever().build(ds.doc_ids, ds.doc_texts(), folder)  # same path, no record
    assert "built_from" not in read_manifest(folder)
    assert main(_eval(data, "--cache", str(cache))) == 0
    assert _ndcg(capsys) == first and "built_from" in read_manifest(folder)
    load_index(folder, verify=True)  # the stamped manifest's digest holds


@pytest.mark.parametrize("field", ["n_docs", "corpus_sha256"])
def test_edited_record_is_refused_by_the_digest(tmp_path, capsys, field):
    data = write_toy_beir(tmp_path / "toy")
    index = tmp_path / "idx"
    assert main(["index", "--method", "bm25", "--data", str(data), "--split", "train", "--out", str(index)]) == 0
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["built_from"][field] = 0
    (index / "manifest.json").write_text(json.dumps(manifest))
    assert main(_eval(data, "--index", str(index))) == 2
    assert "edited" in capsys.readouterr().err


def test_eval_compares_only_the_options_it_was_given(tmp_path, capsys):
    data = write_toy_beir(tmp_path / "toy")
    index = tmp_path / "idx"
    assert main(["index", "--method", "bm25", "--data", str(data), "--split", "train", "--out", str(index),
                 "--k1", "0.9"]) == 0
    assert main(_eval(data, "--index", str(index))) == 0  # k1 not given: the index's 0.9 is used
    capsys.readouterr()
    assert main(_eval(data, "--index", str(index), "--k1", "1.5")) == 2
    err = capsys.readouterr().err
    assert "k1=0.9, this command asks for 1.5" in err and "allow-corpus-mismatch" not in err


def test_a_crashed_swap_is_restored_then_checked(tmp_path, capsys):
    """The old index put back by recovery is still checked: another corpus's eval is refused
    and the restored index is left as it was (not rebuilt over)."""
    a, b = write_toy_beir(tmp_path / "a"), write_toy_beir(tmp_path / "b")
    _rewrite_texts(b)
    index = tmp_path / "idx"
    assert main(["index", "--method", "bm25", "--data", str(a), "--split", "train", "--out", str(index)]) == 0
    manifest = (index / "manifest.json").read_bytes()
    from jaxir.fs_aside import stamp

    stamp(index, ".idx.old-1-deadbeef")  # what a kill between the swap's renames leaves: the
    index.rename(tmp_path / ".idx.old-1-deadbeef")  # old index aside, stamped as jaxir's
    capsys.readouterr()
    assert main(_eval(b, "--index", str(index))) == 2
    assert "another corpus" in capsys.readouterr().err
    assert (index / "manifest.json").read_bytes() == manifest


def test_an_index_that_appears_while_waiting_is_checked(tmp_path):
    """A second writer that found --out empty, then waited for the first's lock, refuses the
    different index the first one wrote (it does not replace it without --force)."""
    import threading
    import time

    from jaxir.errors import OptionError
    from jaxir.fs_lock import writer_lock
    from jaxir.retrievers.bm25 import BM25Retriever
    from jaxir.pipeline.built_from import build_index, index_at

    ds = load_beir(write_toy_beir(tmp_path / "toy"), split="train")
    out = tmp_path / "idx"
    inside = threading.Event()

    def first():
        with writer_lock(out):
            inside.set()
            time.sleep(0.3)
            build_index(BM25Retriever(k1=1.2), ds, out)

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait()
    with pytest.raises(OptionError, match="k1=1.2"):
        index_at(BM25Retriever(k1=0.9), ds, out)
    thread.join()
    assert json.loads((out / "manifest.json").read_text())["built_from"]["settings"]["k1"] == 1.2
    assert index_at(BM25Retriever(k1=1.2), ds, out) == ("reused", 0.0)


# Content keys (issue 39, item 3): a model folder's config.json and an --idf file rewritten in
# place are another index; the same files again are the same one.

def _tiny_bert(folder, minilm_dir):
    return tiny_bert_folder(folder, minilm_dir, max_position=64)


def _edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}, indent=1))


def test_model_config_edited_in_place_rebuilds_the_index(tmp_path, minilm_dir):
    """Same path, same weights (same fingerprint), another config.json: the cache builds a new
    index, `index --out` refuses the old one; an identical re-run reuses."""
    import numpy as np

    from jaxir.errors import OptionError
    from jaxir.index.flat import FlatIndex
    from jaxir.index.manifest import read_manifest
    from jaxir.pipeline.built_from import index_at, index_for
    from jaxir.retrievers.dense import DenseRetriever

    ds = load_beir(write_toy_beir(tmp_path / "toy"), split="train")
    model, cache, out = _tiny_bert(tmp_path / "bert", minilm_dir), tmp_path / "cache", tmp_path / "idx"
    dense = lambda: DenseRetriever(model=str(model), doc_maxlen=32)  # noqa: E731
    first, secs = index_for(dense(), ds, None, cache)
    assert secs > 0 and index_for(dense(), ds, None, cache) == (first, 0.0)  # identical: reused
    assert index_at(dense(), ds, out)[0] == "built" and index_at(dense(), ds, out) == ("reused", 0.0)
    vectors = np.array(FlatIndex.load(first, kind="dense").embeddings)

    _edit_json(model / "config.json", hidden_act="relu")  # same weights, other activations
    second, secs = index_for(dense(), ds, None, cache)
    assert secs > 0 and second != first
    assert read_manifest(second)["built_from"]["contents"]["model"] != read_manifest(first)["built_from"]["contents"]["model"]
    assert not np.allclose(np.array(FlatIndex.load(second, kind="dense").embeddings), vectors)
    with pytest.raises(OptionError, match="the files at that path changed since it was built"):
        index_at(dense(), ds, out)
    assert index_for(dense(), ds, None, cache) == (second, 0.0)  # and that one is reused in turn

    # The same files at another path are the same index (keyed by content, not path).
    moved = tmp_path / "moved"
    shutil.copytree(model, moved)
    assert index_for(DenseRetriever(model=str(moved), doc_maxlen=32), ds, None, cache) == (second, 0.0)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_idf_file_rewritten_in_place_rebuilds_the_index(tmp_path, minilm_dir, capsys):
    import numpy as np

    from jaxir.errors import OptionError
    from jaxir.pipeline.built_from import index_at, index_for
    from jaxir.retrievers.sparse import SparseRetriever
    from jaxir.text.idf import save_idf

    ds = load_beir(write_toy_beir(tmp_path / "toy"), split="train")
    model = _tiny_bert(tmp_path / "bert", minilm_dir)
    vocab = (model / "vocab.txt").read_text(encoding="utf-8").splitlines()
    idf = tmp_path / "idf.json"
    save_idf(idf, np.random.default_rng(0).uniform(0.5, 5.0, len(vocab)), vocab)
    cache, out = tmp_path / "cache", tmp_path / "idx"
    sparse = lambda: SparseRetriever(model=str(model), idf=str(idf), doc_maxlen=32, progress=False)  # noqa: E731
    first, secs = index_for(sparse(), ds, None, cache)
    assert secs > 0 and index_for(sparse(), ds, None, cache) == (first, 0.0)
    assert index_at(sparse(), ds, out)[0] == "built" and index_at(sparse(), ds, out) == ("reused", 0.0)

    save_idf(idf, np.random.default_rng(1).uniform(0.5, 5.0, len(vocab)), vocab)  # same path, new table
    second, secs = index_for(sparse(), ds, None, cache)
    assert secs > 0 and second != first
    with pytest.raises(OptionError, match=r"idf=.*idf\.json \(sha256 .*the files at that path changed"):
        index_at(sparse(), ds, out)
    assert index_at(sparse(), ds, out, force=True)[0] == "built"
    assert index_at(sparse(), ds, out) == ("reused", 0.0)
    # The eval through the CLI: an --index given with the rewritten idf is refused too.
    save_idf(idf, np.random.default_rng(2).uniform(0.5, 5.0, len(vocab)), vocab)
    capsys.readouterr()
    assert main(["eval", "--method", "sparse", "--data", str(tmp_path / "toy"), "--split", "train",
                 "--index", str(out), "--model", str(model), "--idf", str(idf)]) == 2
    assert "changed since it was built" in capsys.readouterr().err
