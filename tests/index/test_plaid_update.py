"""Incremental PLAID: an append equals a build of the same documents with the same codec, a delete
hides at once and equals the compacted index, folder updates are atomic under SIGKILL, unchanged
arrays are hard-linked, and bad input (another dim, another model, duplicate or unknown ids) is
one clear error that leaves the index as it was."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jaxir
from jaxir.errors import DataError, IndexFormatError
from jaxir.index import plaid_update
from jaxir.index.codec import fit_codec_numpy
from jaxir.index.plaid import PlaidIndex
from jaxir.index.plaid_builder import PlaidIndexBuilder
from jaxir.index.manifest import BUILT_FROM, read_manifest, stamp_manifest
from tests.index.test_plaid import make_docs, make_query, topic_centers

ROOT = Path(jaxir.__file__).resolve().parents[1]
FP = "model-a"


@pytest.fixture(scope="module")
def parts():
    """(centers, codec, first 300 docs, 120 more docs)."""
    rng = np.random.default_rng(3)
    centers = topic_centers(1)
    docs = make_docs(rng, centers, 420)
    codec = fit_codec_numpy(np.concatenate(docs[:300]), 64, 2, seed=0)
    return centers, codec, docs[:300], docs[300:]


def _build(codec, docs, ids) -> PlaidIndex:
    b = PlaidIndexBuilder(codec)
    b.add(docs, ids)
    return b.finish()


def _ids(n, start=0, prefix="d"):
    return [f"{prefix}{i}" for i in range(start, start + n)]


def _queries(centers, n=15):
    return np.stack([make_query(np.random.default_rng(500 + i), centers) for i in range(n)])


def _doc_hits(index, queries, k=10):
    scores, rows = index.search_batch(queries, k, threads=1)
    return [index.doc_ids[r].tolist() for r in rows], scores


def test_append_equals_a_build_of_all_documents_with_the_same_codec(parts):
    _, codec, first, more = parts
    base = _build(codec, first, _ids(300))
    grown = plaid_update.add_documents(base, more, _ids(120, 300))
    whole = _build(codec, first + more, _ids(420))
    for name, array in whole.to_arrays().items():
        np.testing.assert_array_equal(grown.to_arrays()[name], array, err_msg=name)
    assert base.num_docs == 300  # the input index is untouched


def test_delete_hides_at_once_and_equals_the_compacted_index(parts):
    centers, codec, first, more = parts
    index = _build(codec, first + more, _ids(420))
    queries = _queries(centers)
    before, _ = _doc_hits(index, queries)
    gone = sorted({d for hits in before for d in hits[:3]})  # the best hits of every query
    hidden = plaid_update.delete_documents(index, gone)
    after, scores = _doc_hits(hidden, queries)
    assert not {d for hits in after for d in hits} & set(gone)
    assert hidden.num_docs == 420 and hidden.num_live == 420 - len(gone)
    compacted = plaid_update.compact(hidden)
    assert compacted.num_docs == 420 - len(gone) and compacted.deleted is None
    ref, ref_scores = _doc_hits(compacted, queries)
    assert after == ref
    np.testing.assert_array_equal(scores, ref_scores)
    keep = [i for i, d in enumerate(_ids(420)) if d not in set(gone)]
    fresh = _build(codec, [(first + more)[i] for i in keep], [_ids(420)[i] for i in keep])
    for name, array in fresh.to_arrays().items():
        np.testing.assert_array_equal(compacted.to_arrays()[name], array, err_msg=name)
    # Exhaustive search skips the deleted rows too.
    from jaxir.index import exact

    _, rows = exact.exhaustive_search(hidden, queries[0], 10)
    assert not set(hidden.doc_ids[rows].tolist()) & set(gone)


def test_a_search_returns_every_live_document_when_k_exceeds_them(parts):
    centers, codec, first, _ = parts
    index = plaid_update.delete_documents(_build(codec, first[:12], _ids(12)), _ids(9))
    scores, rows = index.search(make_query(np.random.default_rng(1), centers), 10)
    assert set(index.doc_ids[rows].tolist()) == set(_ids(3, 9)) and len(scores) == 3


def test_bad_updates_are_refused_with_one_line(parts):
    _, codec, first, more = parts
    index = _build(codec, first[:20], _ids(20))
    add, delete = plaid_update.add_documents, plaid_update.delete_documents
    cases = [
        (lambda: add(index, [np.ones((4, codec.dim + 1), np.float32)], ["x"]), "has vectors of shape \\(4, 33\\)"),
        (lambda: add(index, more[:2], ["x", "x"]), "'x' appears twice"),
        (lambda: add(index, more[:2], ["d3", "new"]), "already in the index \\(first: 'd3'\\)"),
        (lambda: add(index, more[:2], ["a"]), "1 doc ids for 2 documents"),
        (lambda: delete(index, ["nope"]), "cannot delete 'nope': no such document"),
        (lambda: delete(delete(index, ["d1"]), ["d1"]), "'d1': it is already deleted"),
        (lambda: delete(index, _ids(20)), "cannot delete every document"),
    ]
    for call, words in cases:
        with pytest.raises(DataError, match=words):
            call()


def _saved(tmp_path, codec, docs, ids, name="idx"):
    folder = tmp_path / name
    _build(codec, docs, ids).save(folder, model_fingerprint=FP, meta={"note": "kept"})
    stamp_manifest(folder, {BUILT_FROM: {"corpus_sha256": "abc", "n_docs": len(ids), "settings": {}}})
    return folder


def test_folder_updates_link_unchanged_arrays_and_log_each_change(parts, tmp_path):
    centers, codec, first, more = parts
    folder = _saved(tmp_path, codec, first, _ids(300))
    inode = {f.name: f.stat().st_ino for f in folder.glob("*.npy")}
    plaid_update.delete_from_folder(folder, ["d4", "d7"], model_fingerprint=FP)
    after = {f.name: f.stat().st_ino for f in folder.glob("*.npy")}
    assert {n for n in after if after[n] != inode.get(n)} == {"deleted.npy"}  # one array written
    manifest = read_manifest(folder)
    assert BUILT_FROM not in manifest  # the corpus changed: no stale record
    assert manifest["meta"]["note"] == "kept" and manifest["meta"]["num_live"] == 298
    plaid_update.append_to_folder(folder, more[:5], _ids(5, 300), model_fingerprint=FP,
                                  fields={BUILT_FROM: {"corpus_sha256": "new", "n_docs": 303, "settings": {}}})
    plaid_update.compact_folder(folder)
    manifest = read_manifest(folder)
    assert [u["op"] for u in manifest["meta"]["updates"]] == ["delete", "add", "compact"]
    assert manifest["meta"]["num_docs"] == 303 and "num_live" not in manifest["meta"]
    index = PlaidIndex.load(folder, model_fingerprint=FP)  # checksums verified
    assert "d4" not in index.doc_ids.tolist() and index.doc_ids.tolist()[-5:] == _ids(5, 300)


def test_another_model_or_no_index_is_refused_and_nothing_changes(parts, tmp_path):
    _, codec, first, more = parts
    folder = _saved(tmp_path, codec, first[:30], _ids(30))
    before = (folder / "manifest.json").read_bytes()
    with pytest.raises(IndexFormatError, match="built with model 'model-a'"):
        plaid_update.append_to_folder(folder, more[:2], ["n1", "n2"], model_fingerprint="model-b")
    with pytest.raises(DataError, match="already in the index"):
        plaid_update.append_to_folder(folder, more[:2], ["d1", "n2"], model_fingerprint=FP)
    assert (folder / "manifest.json").read_bytes() == before
    with pytest.raises(IndexFormatError, match="holds no index"):
        plaid_update.delete_from_folder(tmp_path / "missing", ["d1"])


# Child: append 40 docs to the index at argv[1]; KILL_AT=1 or 2 SIGKILLs itself at that os.replace
# (1: the old index moved aside, 2: the new one moved in), 3 when removing the old one after the swap.
APPEND = """
import os, shutil, signal, sys
import numpy as np
folder, kill_at = sys.argv[1], int(sys.argv[2])
real, calls, rmtree = os.replace, [0], shutil.rmtree
def replace(a, b):
    calls[0] += 1
    if calls[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(a, b)
def remove(path, *a, **kw):
    if kill_at == 3 and ".old-" in str(path):
        os.kill(os.getpid(), signal.SIGKILL)
    return rmtree(path, *a, **kw)
os.replace, shutil.rmtree = replace, remove
from jaxir.index.plaid_update import append_to_folder
rng = np.random.default_rng(0)
docs = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in rng.normal(size=(40, 6, 32)).astype(np.float32)]
append_to_folder(folder, docs, [f"new{i}" for i in range(40)])
"""


@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_a_killed_append_leaves_the_previous_index_searchable(parts, tmp_path, kill_at):
    centers, codec, first, _ = parts
    folder = _saved(tmp_path, codec, first[:50], _ids(50))
    query = make_query(np.random.default_rng(2), centers)
    want = PlaidIndex.load(folder).search(query, 10)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", APPEND, str(folder), str(kill_at)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    index = PlaidIndex.load(folder)  # a reader finds the old index or (killed after the swap) the new
    if kill_at < 3:
        assert index.num_docs == 50
        np.testing.assert_array_equal(index.search(query, 10)[1], want[1])
    else:
        assert index.num_docs == 90 and index.doc_ids.tolist()[-1] == "new39"
    # The next writer succeeds and leaves no debris beside the folder.
    plaid_update.delete_from_folder(folder, ["d0"])
    assert PlaidIndex.load(folder).num_live == index.num_docs - 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".idx")) == []


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_jaxir_index_append_grows_an_index_to_its_corpus(tmp_path, capsys):
    """`jaxir index --append`: the corpus's new documents are added with the index's codec, the
    corpus record follows (so `jaxir eval --index` takes it), and a second append adds nothing;
    other settings, a corpus lacking indexed documents and --force with it are refused."""
    import json

    from jaxir import cli
    from tests.toy_beir import write_toy_beir

    full = write_toy_beir(tmp_path / "full")
    part = write_toy_beir(tmp_path / "part")
    docs = [json.loads(line) for line in (full / "corpus.jsonl").read_text().splitlines()]
    (part / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs if not d["_id"].endswith("_3")))
    out = tmp_path / "idx"
    base = ["index", "--method", "colbert", "--split", "train", "--out", str(out)]
    assert cli.main([*base, "--data", str(part)]) == 0
    codec_before = np.load(out / "centroids.npy")
    assert cli.main([*base, "--data", str(full), "--append"]) == 0
    assert "appended 8 documents" in capsys.readouterr().out
    index = PlaidIndex.load(out)
    assert index.num_docs == 32 and sorted(index.doc_ids.tolist()) == sorted(d["_id"] for d in docs)
    np.testing.assert_array_equal(np.load(out / "centroids.npy"), codec_before)  # no re-fit
    assert cli.main([*base, "--data", str(full), "--append"]) == 0
    assert "nothing to append" in capsys.readouterr().out
    assert cli.main(["eval", "--method", "colbert", "--index", str(out), "--data", str(full),
                     "--split", "train", "--k", "5"]) == 0
    capsys.readouterr()
    before = (out / "manifest.json").read_bytes()
    for argv, words in [([*base, "--data", str(full), "--append", "--nbits", "4"], "built with nbits=2"),
                        ([*base, "--data", str(part), "--append"], "holds 8 documents part's corpus lacks (first: 'd0_3')"),
                        ([*base, "--data", str(full), "--append", "--force"], "give one"),
                        (["index", "--method", "bm25", "--split", "train", "--out", str(tmp_path / "b"),
                          "--data", str(full), "--append"], "cannot grow in place")]:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("jaxir index: error")]
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in err, err
    assert (out / "manifest.json").read_bytes() == before
    # A document already indexed whose text changed: refused (its vectors would be stale).
    edited = write_toy_beir(tmp_path / "edited")
    (edited / "corpus.jsonl").write_text("".join(json.dumps({**d, "text": d["text"] + " revised"} if d["_id"] == "d0_0" else d) + "\n"
                                                 for d in docs))
    assert cli.main([*base, "--data", str(edited), "--append"]) == 2
    assert "have other texts" in capsys.readouterr().err


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_append_takes_the_index_build_options_it_is_not_given(tmp_path, capsys):
    import json

    from jaxir import cli
    from jaxir.index.manifest import read_manifest
    from tests.toy_beir import write_toy_beir

    full, part = write_toy_beir(tmp_path / "full"), write_toy_beir(tmp_path / "part")
    docs = [json.loads(line) for line in (full / "corpus.jsonl").read_text().splitlines()]
    (part / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[:20]))
    out = tmp_path / "idx"
    base = ["index", "--method", "colbert", "--split", "train", "--out", str(out)]
    assert cli.main([*base, "--data", str(part), "--doc-maxlen", "20"]) == 0
    assert cli.main([*base, "--data", str(full), "--append", "--doc-maxlen", "30"]) == 2
    assert "built with doc_maxlen=20" in capsys.readouterr().err
    assert cli.main([*base, "--data", str(full), "--append"]) == 0
    record = read_manifest(out)[BUILT_FROM]
    assert record["settings"]["doc_maxlen"] == 20 and record["appended_docs"] == 12
    assert PlaidIndex.load(out).doclens.max() <= 20


def test_deleted_documents_are_out_of_every_colbert_path(parts, tmp_path):
    """The ColBERT searcher's PLAID (threaded), exhaustive and fp16 modes, colbert-rerank and a
    recompressed index all leave deleted documents out."""
    from jaxir.retrievers.colbert import ColBERTSearcher
    from jaxir.retrievers.colbert_rerank import MaxSimScorer

    centers, codec, first, _ = parts
    index = _build(codec, first, _ids(300))
    fp16 = np.concatenate(first).astype(np.float16)
    queries = _queries(centers, 6)
    best = {d for q in queries for d in index.doc_ids[index.search(q, 5)[1]].tolist()}
    hidden = plaid_update.delete_documents(index, sorted(best))
    for tokens, exhaustive, threads in [(None, False, 2), (None, True, 1), (fp16, False, 2)]:
        s = ColBERTSearcher(None, None, hidden, tokens, exhaustive, {}, False, threads)
        for q in queries:
            _, rows = s.search_vectors(q, 10)
            assert len(rows) == 10 and not set(hidden.doc_ids[rows].tolist()) & best
    rerank = MaxSimScorer(ColBERTSearcher(None, None, hidden, None, False, {}, False))
    with pytest.raises(IndexFormatError, match="has no document"):
        rerank.rows([sorted(best)[0]])
    folder = tmp_path / "fp16"
    from jaxir.index.store import save_index

    save_index(folder, {**index.to_arrays(), "tokens_fp16": fp16}, method="colbert-plaid",
               model_fingerprint=FP, meta=index.info())
    plaid_update.delete_from_folder(folder, sorted(best))
    from jaxir.retrievers.colbert_build import IndexOptions, recompress_index

    recompress_index(folder, tmp_path / "nb4", IndexOptions(nbits=4, device_compress=False, progress=False))
    again = PlaidIndex.load(tmp_path / "nb4")
    assert again.codec.nbits == 4 and again.num_live == 300 - len(best)
    assert not set(again.doc_ids[again.live(np.arange(300))].tolist()) & best
