"""ColBERT CPU recipe data path: seeded query subsets and n-way batches with teacher scores."""
import json

import numpy as np

from jaxir.data.mine import read_mined, write_mined
from jaxir.data.teacher import score_mined
from jaxir.eval.beir import BeirDataset
from jaxir.methods.colbert import ColBERTConfig, ColBERTModel
from jaxir.models.bert import BertConfig
from jaxir.recipes.colbert import RecipeConfig, beir_source, subset_mined


def _mined(tmp_path, n=12):
    recs = [{"qid": f"q{i}", "positives": [f"p{i}_{j}" for j in range(1 + i % 5)],
             "candidates": [[f"d{i}_{j}", float(-j)] for j in range(20)]} for i in range(n)]
    write_mined(tmp_path / "negatives.bm25.d100.jsonl", recs)
    return tmp_path / "negatives.bm25.d100.jsonl", recs


def test_subset_is_seeded_capped_and_in_file_order(tmp_path):
    mined, recs = _mined(tmp_path)
    assert subset_mined(mined, 0, 0, seed=0) == mined
    a = subset_mined(mined, 5, 2, seed=3)
    assert a.name == "negatives.bm25.d100.q5.p2.jsonl"
    got = list(read_mined(a))
    index = {r["qid"]: i for i, r in enumerate(recs)}
    assert len(got) == 5 and [index[r["qid"]] for r in got] == sorted(index[r["qid"]] for r in got)
    for r in got:
        assert r["positives"] == recs[index[r["qid"]]]["positives"][:2]
        assert r["candidates"] == recs[index[r["qid"]]]["candidates"]
    a.unlink()
    assert [r["qid"] for r in read_mined(subset_mined(mined, 5, 2, seed=3))] == [r["qid"] for r in got]
    b = subset_mined(mined, 5, 3, seed=4)
    assert [r["qid"] for r in read_mined(b)] != [r["qid"] for r in got]


def test_beir_source_gives_nway_token_batches_with_teacher_scores(tmp_path):
    mined, recs = _mined(tmp_path)
    corpus = {d: {"title": "", "text": f"document {d} about cells"}
              for r in recs for d in [*r["positives"], *(c[0] for c in r["candidates"])]}
    data = BeirDataset("toy", "train", corpus, {r["qid"]: f"query {r['qid']}?" for r in recs}, {})
    teacher = tmp_path / "teacher.jsonl"
    score_mined(lambda qs, docs: [np.arange(len(d), dtype=np.float32) for d in docs], mined,
                data.queries, data.text_of, depth=6, out=teacher)
    cfg = RecipeConfig(nway=4, neg_depth=6, steps=3, batch_size=8, query_maxlen=16, doc_maxlen=24)
    model = ColBERTModel(ColBERTConfig(query_maxlen=16, doc_maxlen=24, nway=4),
                         bert_config=BertConfig(), bert_params=None)
    src = beir_source(model, cfg, data, mined, teacher)
    assert len(src) == 12 * 2  # 3 steps x 8 rows need two passes over 12 queries
    batch = src.take(np.array([0, 13, 5]))
    assert batch["q_ids"].shape == (3, 16) and batch["d_ids"].shape == (3, 4, 24)
    assert batch["d_mask"].shape == (3, 4, 24) and batch["teacher"].shape == (3, 4)
    lines = {r["qid"]: r["scores"] for r in map(json.loads, teacher.read_text().splitlines())}
    t = src.tuple_at(5, 0)
    np.testing.assert_allclose(batch["teacher"][2], [lines["q5"][d] for d in t.doc_ids])
