"""SPLADE (siamese learned sparse) end to end on the toy BEIR folder with the real MiniLM: a
two-step recipe run exports a `splade` checkpoint, its index search equals a float64 q . w over
the indexed weights, and the CLI finds the method from the index; the two sparse methods never
open each other's indexes or checkpoints."""
import numpy as np
import pytest

from jaxir.errors import JaxirError
from jaxir.eval.beir import load_beir
from jaxir.recipes import splade as recipe

SMALL = ["--data.n_negatives", "1", "--data.mine_depth", "10", "--model.doc_maxlen", "24",
         "--model.query_maxlen", "12", "--fit.steps", "2", "--optim.accumulate", "1",
         "--optim.warmup_steps", "0", "--model.flops_warmup_steps", "1", "--data.holdout", "0",
         "--optim.learning_rate", "1e-3"]


@pytest.fixture(scope="module")
def trained(toy_beir, tmp_path_factory):
    out = tmp_path_factory.mktemp("splade") / "run"
    recipe.main([*SMALL, "--data", str(toy_beir), "--out", str(out), "--data.index_cache", str(out.parent / "indexes")])
    return out / "splade"


def test_recipe_exports_a_splade_checkpoint_with_query_flops(trained):
    import json

    from jaxir.retrievers.splade import load_checkpoint

    config, params = load_checkpoint(trained)
    assert config.query_encoder == "mlm" and config.query_maxlen == 12 and (trained / "idf.json").is_file()
    rows = [json.loads(line) for line in (trained.parent / "rank" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert train and all(np.isfinite(r["query_flops"]) and r["query_nnz"] > 0 for r in train)
    assert recipe.RECIPE.model.query_encoder == "mlm"


def test_search_is_the_dot_product_of_encoded_queries_and_indexed_weights(trained, toy_beir, tmp_path):
    from jaxir.retrievers.splade import SpladeRetriever

    data = load_beir(toy_beir, split="train")
    retriever = SpladeRetriever(checkpoint=str(trained), progress=False, dtype="float32", threads=2)
    searcher = retriever.open(retriever.build(data.doc_ids, data.doc_texts(), tmp_path / "idx"))
    queries = [data.queries[q] for q in ("q1", "r5", "q7")]
    vectors = searcher.encode(queries)
    # Dense float64 reference over every indexed posting.
    inv = searcher.index.inverted
    weights = np.zeros((len(data.doc_ids), len(searcher.index.idf)))
    for t in np.flatnonzero(np.diff(inv.offsets)):
        lo, hi = inv.offsets[t], inv.offsets[t + 1]
        weights[inv.postings[lo:hi], t] = inv.weights[lo:hi].astype(np.float64) * inv.scale
    for (ids, scores), (terms, w) in zip(searcher.search(queries, 5), vectors):
        q = np.zeros(weights.shape[1])
        q[terms] = w
        ref = weights @ q
        want = [i for i in np.argsort(-ref, kind="stable") if ref[i] > 0][:5]  # matching docs only
        np.testing.assert_allclose(scores, ref[want], rtol=1e-5)
        assert [searcher.index.doc_ids[i] for i in want] == ids
    stats = searcher.stats(queries)
    assert stats["query_terms"] > 0 and stats["postings_per_query"] > 0


def test_cli_eval_and_search_pick_the_method_and_refuse_the_other(trained, toy_beir, tmp_path, capsys):
    from jaxir import cli
    from jaxir.retrievers.sparse import SparseRetriever

    idx = tmp_path / "idx"
    common = ["--data", str(toy_beir), "--split", "train"]
    assert cli.main(["index", "--method", "splade", "--checkpoint", str(trained), "--out", str(idx), *common]) == 0
    assert cli.main(["eval", "--method", "splade", "--checkpoint", str(trained), "--index", str(idx),
                     "--k", "5", *common]) == 0
    queries = tmp_path / "q.tsv"
    queries.write_text("a\tinsulin resistance in obese adults\n")
    assert cli.main(["search", "--index", str(idx), "--checkpoint", str(trained), "--queries", str(queries),
                     "--run", str(tmp_path / "r.trec")]) == 0
    assert (tmp_path / "r.trec").read_text().split()[2].startswith("d0_")
    capsys.readouterr()
    # The inference-free method refuses the splade checkpoint and, with its own model, the index.
    assert cli.main(["eval", "--method", "sparse", "--checkpoint", str(trained), "--index", str(idx),
                     *common]) == 2
    assert "splade" in capsys.readouterr().err
    with pytest.raises(JaxirError, match="built with model"):
        SparseRetriever(progress=False).open(idx)
    # Untrained, both methods have the same weights: the index's query side still tells them apart.
    from jaxir.retrievers.splade import SpladeRetriever

    data = load_beir(toy_beir, split="train")
    fresh = SpladeRetriever(progress=False).build(data.doc_ids[:8], data.doc_texts()[:8], tmp_path / "fresh")
    with pytest.raises(JaxirError, match="for 'mlm' queries; this model encodes 'idf' queries"):
        SparseRetriever(progress=False).open(fresh)


def test_a_splade_checkpoint_teaches_the_sparse_recipe(trained, toy_beir, tmp_path):
    """The heterogeneous ensemble's sparse side: a registry teacher "splade:CKPT" scores every
    (train query, doc) pair as the SPLADE searcher does, 0 for docs sharing no term."""
    from jaxir.recipes.sparse_teachers import teacher_scores
    from jaxir.retrievers.splade import SpladeRetriever

    data = load_beir(toy_beir, split="train")
    queries = [data.queries[q] for q in list(data.qrels)[:5]]
    teacher = teacher_scores((f"splade:{trained}", "bm25"), data, queries, tmp_path / "indexes")
    assert teacher.scores.shape == (5, 2, len(data.doc_ids))
    retriever = SpladeRetriever(checkpoint=str(trained), progress=False)
    searcher = retriever.open(retriever.build(data.doc_ids, data.doc_texts(), tmp_path / "own"))
    for i, (ids, scores) in enumerate(searcher.search(queries, len(data.doc_ids))):
        np.testing.assert_allclose(teacher(i, ids)[0], scores, rtol=1e-5)
        rest = [d for d in data.doc_ids if d not in set(ids)]
        assert not rest or np.all(teacher(i, rest)[0] == 0)
