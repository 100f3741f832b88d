"""BEIR loader: real SciFact/NFCorpus folders, the download path (file:// zip), bad input."""
import csv
import gzip
import json
import subprocess
import sys
import warnings
import zipfile

import pytest

from jaxir.errors import DataError, EmptyInputError
from jaxir.eval.beir import BeirDataWarning, doc_text, load_beir


def _no_warnings(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", BeirDataWarning)
        return load_beir(*args, **kwargs)


def _qrels_query_order(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    return list(dict.fromkeys(r[0] for r in rows)), len(rows)


def test_scifact_counts_and_order(scifact_dir):
    test = _no_warnings(scifact_dir, "test")
    assert (test.name, test.split) == ("scifact", "test")
    assert len(test.corpus) == 5183 and len(test.queries) == 300
    assert sum(len(j) for j in test.qrels.values()) == 339
    assert len(_no_warnings(scifact_dir, split="train").queries) == 809
    with gzip.open(scifact_dir / "corpus.jsonl.gz", "rt") as f:
        first = [json.loads(next(f)) for _ in range(3)]
    assert test.doc_ids[:3] == [r["_id"] for r in first]
    assert test.doc_texts()[0] == f"{first[0]['title']} {first[0]['text']}".strip()
    assert set(test.corpus[first[0]["_id"]]) == {"title", "text"}
    order, _ = _qrels_query_order(scifact_dir / "qrels" / "test.tsv")
    assert test.query_ids == order == list(test.qrels)
    assert all(isinstance(t, str) and t.strip() for t in test.query_texts())


def test_nfcorpus_counts_and_grades(nfcorpus_dir):
    test = _no_warnings(nfcorpus_dir, "test")
    order, n_rows = _qrels_query_order(nfcorpus_dir / "qrels" / "test.tsv")
    assert len(test.corpus) == 3633 and len(test.queries) == 323 == len(order)
    assert sum(len(j) for j in test.qrels.values()) == n_rows
    assert {g for j in test.qrels.values() for g in j.values()} == {1, 2}


def test_doc_text_convention():
    assert doc_text({"title": "", "text": " body "}) == "body"
    assert doc_text({"title": "T", "text": "body"}) == "T body"
    assert doc_text({"title": "T", "text": ""}) == "T"


def _zip_folder(src, zip_path, name):
    """A zip laid out like the public BEIR ones: <name>/corpus.jsonl, queries.jsonl, qrels/."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for stem in ("corpus", "queries"):
            with gzip.open(src / f"{stem}.jsonl.gz", "rb") as f:
                zf.writestr(f"{name}/{stem}.jsonl", f.read())
        for split in sorted((src / "qrels").glob("*.tsv")):
            zf.write(split, f"{name}/qrels/{split.name}")


def test_download_from_file_url(scifact_dir, tmp_path):
    served = tmp_path / "server"
    served.mkdir()
    _zip_folder(scifact_dir, served / "scifact.zip", "scifact")
    url = served.as_uri() + "/{name}.zip"
    cache = tmp_path / "cache"
    got = _no_warnings("scifact", "test", cache_dir=cache, url=url)
    local = load_beir(scifact_dir, "test")
    assert got.name == "scifact"
    assert (got.corpus, got.queries, got.qrels) == (local.corpus, local.queries, local.qrels)
    assert [p.name for p in cache.iterdir()] == ["scifact"]  # no temp dirs left behind
    (served / "scifact.zip").unlink()  # second load comes from the cache
    assert len(load_beir("scifact", "train", cache_dir=cache, url=url).queries) == 809


def test_download_failures_leave_cache_clean(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="could not download BEIR dataset 'nosuch'"):
        load_beir("nosuch", cache_dir=cache, url=tmp_path.as_uri() + "/{name}.zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a zip"):
        load_beir("junk", cache_dir=cache, url=tmp_path.as_uri() + "/{name}.zip")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("empty/readme.txt", "hi")
    with pytest.raises(DataError, match="no corpus.jsonl"):
        load_beir("empty", cache_dir=cache, url=tmp_path.as_uri() + "/{name}.zip")
    assert list(cache.iterdir()) == []
    with pytest.raises(DataError, match="neither an existing folder"):
        load_beir(tmp_path / "missing" / "folder")


CORPUS = [{"_id": "d1", "title": "T1", "text": "one"}, {"_id": "d2", "title": "", "text": "two"},
          {"_id": "d3", "title": "T3", "text": "three"}]
QUERIES = [{"_id": "q1", "text": "first"}, {"_id": "q2", "text": "second"},
           {"_id": "q3", "text": ""}]
QRELS = "query-id\tcorpus-id\tscore\nq2\td2\t1\nq1\td1\t2\nq1\td3\t0\n"


def _write(folder, corpus=None, queries=None, qrels=QRELS, *, gz=False, newline="\n"):
    """A small BEIR folder; ``corpus``/``queries`` are lists of dicts or raw text lines."""
    (folder / "qrels").mkdir(parents=True)
    for stem, rows in (("corpus", corpus or CORPUS), ("queries", queries or QUERIES)):
        text = newline.join(r if isinstance(r, str) else json.dumps(r) for r in rows) + newline
        if gz:
            with gzip.open(folder / f"{stem}.jsonl.gz", "wt") as f:
                f.write(text)
        else:
            (folder / f"{stem}.jsonl").write_bytes(text.encode())
    (folder / "qrels" / "test.tsv").write_bytes(qrels.replace("\n", newline).encode())
    (folder / "qrels" / "dev.tsv").write_text(QRELS)
    return folder


@pytest.mark.parametrize("gz, newline", [(False, "\n"), (True, "\n"), (False, "\r\n")])
def test_small_folder(tmp_path, gz, newline):
    ds = _no_warnings(_write(tmp_path / "tiny", gz=gz, newline=newline))
    assert ds.doc_ids == ["d1", "d2", "d3"] and ds.doc_texts() == ["T1 one", "two", "T3 three"]
    assert ds.queries == {"q2": "second", "q1": "first"}  # qrels order; unused empty q3 is fine
    assert ds.qrels == {"q2": {"d2": 1}, "q1": {"d1": 2, "d3": 0}}  # grade 0 kept


def test_qrels_without_header(tmp_path):
    ds = load_beir(_write(tmp_path / "tiny", qrels="q1\td1\t1\n"))
    assert ds.qrels == {"q1": {"d1": 1}}


def test_unknown_split_lists_available(tmp_path):
    with pytest.raises(DataError, match=r"unknown split 'train'.*\['dev', 'test'\]"):
        load_beir(_write(tmp_path / "tiny"), "train")


@pytest.mark.parametrize("stem, lines, message", [
    ("corpus", [CORPUS[0], '{"_id": "d2", "text": '], "malformed JSON"),
    ("corpus", [CORPUS[0], {"title": "x", "text": "y"}], "no string '_id'"),
    ("corpus", [CORPUS[0], '["d2"]'], "no string '_id'"),
    ("corpus", [CORPUS[0], {"_id": "d1", "text": "again"}], "duplicate id 'd1' .first on line 1"),
    ("corpus", [CORPUS[0], {"_id": "d2", "text": 5}], "field 'text' is int"),
    ("queries", [QUERIES[0], {"_id": "q1", "text": "again"}], "duplicate id 'q1'"),
])
def test_bad_jsonl_names_file_and_line(tmp_path, stem, lines, message):
    kwargs = {stem: lines}
    folder = _write(tmp_path / "tiny", **kwargs)
    with pytest.raises(DataError, match=message) as info:
        load_beir(folder)
    assert f"{stem}.jsonl:2:" in str(info.value)


@pytest.mark.parametrize("row, message", [
    ("q1\td1", "expected 3 tab-separated fields"),
    ("q1\td1\t1\textra", "expected 3 tab-separated fields"),
    ("q1\td1\t1.5", "score '1.5' is not an integer"),
    ("q1\td1\thigh", "score 'high' is not an integer"),
    ("q9\td1\t1", "query id 'q9' has no text"),
])
def test_bad_qrels_row_names_file_and_line(tmp_path, row, message):
    folder = _write(tmp_path / "tiny", qrels=QRELS + row + "\n")
    with pytest.raises(DataError, match=message) as info:
        load_beir(folder)
    assert "test.tsv:5:" in str(info.value)


def test_empty_query_text_is_an_error(tmp_path):
    folder = _write(tmp_path / "tiny", qrels=QRELS + "q3\td1\t1\n")
    with pytest.raises(EmptyInputError, match="queries.jsonl:3: query 'q3'"):
        load_beir(folder)


def test_qrels_naming_missing_docs_are_kept_as_misses_like_pytrec_eval(tmp_path):
    """BEIR's loader and pytrec_eval keep a judged document the corpus lacks (no run can find it)
    and the query all of whose judged documents are missing: both lower the mean."""
    import ir_measures
    from ir_measures import RR, R, nDCG

    from jaxir.eval.metrics import evaluate

    qrels = QRELS + "q1\tgone\t1\nq3x\tgone\t1\n"
    queries = QUERIES + [{"_id": "q3x", "text": "only missing docs"}]
    folder = _write(tmp_path / "tiny", queries=queries, qrels=qrels)
    with pytest.warns(BeirDataWarning, match="2 qrels rows name documents not in the corpus.*kept"):
        ds = load_beir(folder)
    assert ds.qrels == {"q2": {"d2": 1}, "q1": {"d1": 2, "d3": 0, "gone": 1}, "q3x": {"gone": 1}}
    assert "q3x" in ds.queries
    run = {"q1": {"d1": 2.0, "d2": 1.0, "d3": 0.5}, "q2": {"d2": 1.0, "d1": 0.5}, "q3x": {"d1": 1.0, "d2": 0.3}}
    ours = evaluate(run, ds.qrels, metrics=["ndcg@10", "recall@100", "mrr@10"])
    reference = ir_measures.calc_aggregate([nDCG @ 10, R @ 100, RR @ 10], ds.qrels, run)
    assert ours["ndcg@10"] == pytest.approx(reference[nDCG @ 10], abs=1e-12)
    assert ours["recall@100"] == pytest.approx(reference[R @ 100], abs=1e-12)
    assert ours["mrr@10"] == pytest.approx(reference[RR @ 10], abs=1e-12)
    assert ours["recall@100"] == pytest.approx((0.5 + 1 + 0) / 3)  # the missing doc is a miss
    # Training takes only positives it has text for.
    from jaxir.data.mine import positives_of
    assert positives_of(ds.qrels["q1"], ds.corpus) == ["d1"] and positives_of(ds.qrels["q3x"], ds.corpus) == []


def test_conflicting_duplicate_qrels_rows_are_an_error_naming_both_lines(tmp_path):
    folder = _write(tmp_path / "tiny", qrels=QRELS + "q2\td2\t1\n")  # identical repeat: fine
    assert load_beir(folder).qrels["q2"] == {"d2": 1}
    folder = _write(tmp_path / "tiny2", qrels=QRELS + "q2\td2\t0\n")
    with pytest.raises(DataError, match=r"test.tsv:\d+: query 'q2', document 'd2' graded 0 here but 1 on line \d+"):
        load_beir(folder)


def test_empty_documents_are_skipped_with_a_count(tmp_path):
    corpus = CORPUS + [{"_id": "e1", "title": " ", "text": ""}, {"_id": "e2"}]
    folder = _write(tmp_path / "tiny", corpus=corpus, qrels=QRELS + "q2\te1\t1\n")
    with pytest.warns(BeirDataWarning) as record:
        ds = load_beir(folder)
    messages = [str(w.message) for w in record]
    assert any("skipped 2 empty documents" in m for m in messages)
    assert any("1 qrels rows name documents not in the corpus" in m for m in messages)
    assert ds.doc_ids == ["d1", "d2", "d3"] and ds.qrels["q2"] == {"d2": 1, "e1": 1}


def test_missing_files(tmp_path):
    folder = _write(tmp_path / "tiny")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(DataError, match="missing queries.jsonl or queries.jsonl.gz"):
        load_beir(folder)


def test_undecodable_files_name_the_line(tmp_path):
    folder = _write(tmp_path / "tiny")
    bad_utf8 = b'{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "\xff"}\n'
    (folder / "corpus.jsonl").write_bytes(bad_utf8)
    with pytest.raises(DataError, match=r"corpus.jsonl:2: not UTF-8"):
        load_beir(folder)
    (folder / "corpus.jsonl").unlink()
    (folder / "corpus.jsonl.gz").write_bytes(gzip.compress(json.dumps(CORPUS[0]).encode())[:-9])
    with pytest.raises(DataError, match=r"corpus.jsonl.gz:1: cannot read"):
        load_beir(folder)


def test_eval_package_does_not_import_jax():
    code = ("import sys, jaxir.eval.beir, jaxir.eval.metrics, jaxir.eval.runs; "
            "bad = [m for m in ('jax', 'flax', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
