"""Cross-encoder: pair scoring, LCE loss, training steps, reranking, checkpoint round trip."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxir.errors import CheckpointError
from jaxir.methods.cross_encoder import CrossEncoderModel, interpolate
from jaxir.methods.cross_encoder_config import CrossEncoderConfig
from jaxir.models.bert import BertConfig
from jaxir.retrievers.cross_encoder import CrossEncoderScorer
from jaxir.pipeline.rerank import merge_reranked, rerank_run

QUERY = "how do cells divide"
DOCS = ["cells divide by mitosis", "the stock market fell sharply today",
        "mitosis and meiosis are the two ways a cell divides into daughter cells"]


@pytest.fixture(scope="module")
def tiny():
    model = CrossEncoderModel(CrossEncoderConfig(pair_maxlen=32, rerank_batch_size=4),
                         bert_config=BertConfig.tiny())
    return model, model.init(jax.random.PRNGKey(0))


def _pairs(model, queries, docs, n):
    from jaxir.data.tuples import PairEncoder

    return PairEncoder(model.tokenizer, model.config.pair_maxlen)(queries, [docs[:n]] * len(queries))


def test_loss_is_nway_softmax_cross_entropy(tiny):
    model, params = tiny
    batch = _pairs(model, [QUERY, "stock prices"], DOCS, 3)
    batch["valid"] = np.array([[1, 1, 1], [1, 1, 0]], bool)
    loss, metrics = model.loss_fn(params, batch, None)
    flat = {k: v.reshape(6, -1) for k, v in batch.items() if k != "valid"}
    s = np.asarray(model.score(params, flat), np.float64).reshape(2, 3)
    ref0 = -s[0, 0] + np.log(np.exp(s[0]).sum())
    ref1 = -s[1, 0] + np.log(np.exp(s[1, :2]).sum())  # the invalid column leaves the softmax
    np.testing.assert_allclose(float(loss), (ref0 + ref1) / 2, rtol=1e-5)
    acc = np.mean([s[0, 0] > s[0, 1:].max(), s[1, 0] > s[1, 1]])
    assert float(metrics["acc"]) == pytest.approx(acc)


def test_pair_layout_and_segment_ids(tiny):
    model, params = tiny
    batch = _pairs(model, [QUERY], DOCS, 1)
    tok = model.tokenizer
    ids = batch["input_ids"][0, 0][batch["attention_mask"][0, 0] == 1].tolist()
    assert ids == tok(QUERY, DOCS[0])["input_ids"]  # HF's own pair encoding
    tt = batch["token_type_ids"][0, 0][batch["attention_mask"][0, 0] == 1].tolist()
    assert tt == tok(QUERY, DOCS[0])["token_type_ids"]


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_loss_decreases_with_head_lr_multiplier(tiny):
    model, params = tiny
    from jaxir.training.optim import OptimConfig, make_optimizer

    from jaxir.data.tuples import PairEncoder
    from jaxir.training.step import FAST_CPU_COMPILE

    # Column 0 is each query's positive: the mitosis doc, then the stock-market doc.
    batch = PairEncoder(model.tokenizer, model.config.pair_maxlen)(
        [QUERY, "stock market news"], [DOCS, [DOCS[1], DOCS[0], DOCS[2]]])
    tx, _ = make_optimizer(OptimConfig(learning_rate=1e-3, total_steps=30, lr_multipliers=(("head", 10.0),)))
    grad = jax.value_and_grad(lambda p: model.loss_fn(p, batch, None)[0])

    @functools.partial(jax.jit, compiler_options=FAST_CPU_COMPILE)
    def step(p, opt_state):
        loss, g = grad(p)
        updates, opt_state = tx.update(g, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    first, g0 = jax.jit(grad, compiler_options=FAST_CPU_COMPILE)(params)
    p, opt_state = params, tx.init(params)
    for _ in range(10):
        p, opt_state, loss = step(p, opt_state)
    assert float(loss) < 0.5 * float(first)
    # The head moved ~10x further per step than the same optimizer without the multiplier.
    tx1, _ = make_optimizer(OptimConfig(learning_rate=1e-3, total_steps=30, lr_multipliers=(("head", 1.0),)))
    u10, _ = tx.update(g0, tx.init(params), params)
    u1, _ = tx1.update(g0, tx1.init(params), params)
    head = lambda u: float(jnp.abs(u["head"]["dense"]["kernel"]).mean())
    assert head(u10) == pytest.approx(10 * head(u1), rel=1e-4)
    enc = lambda u: u["bert"]["layer_0"]["intermediate"]["kernel"]
    np.testing.assert_allclose(enc(u10), enc(u1), rtol=1e-6)


def test_rerank_is_jitted_bucketed_and_matches_direct_scoring(tiny):
    model, params = tiny
    rr = CrossEncoderScorer(model, params)
    scores = rr.rerank(QUERY, DOCS)
    direct = [float(model.score(params, {k: v[0] for k, v in _pairs(model, [QUERY], [d], 1).items()})[0])
              for d in DOCS]
    np.testing.assert_allclose(scores, direct, rtol=1e-5, atol=1e-6)
    many = rr.rerank_many([QUERY, "stocks"], [DOCS, DOCS[:2]])
    np.testing.assert_allclose(many[0], scores, rtol=1e-5, atol=1e-6)
    assert many[1].shape == (2,)


def test_interpolation_is_per_query_minmax():
    ce, bm = np.array([2.0, 0.0, 1.0]), np.array([10.0, 30.0, 20.0])
    np.testing.assert_allclose(interpolate(ce, bm, 0.25), 0.25 * np.array([1, 0, .5]) +
                               0.75 * np.array([0, 1, .5]), rtol=1e-6)


def test_interpolation_of_a_query_without_candidates_is_empty():
    # A query whose first stage finds nothing (only unknown terms) must not break reranking.
    out = interpolate(np.zeros(0), np.zeros(0), 0.5)
    assert out.shape == (0,) and out.dtype == np.float32
    with pytest.raises(ValueError, match="equal 1-D"):
        interpolate(np.zeros(3), np.zeros(2), 0.5)


def test_rerank_keeps_doc_sets_and_only_reorders_the_top_depth(tiny):
    model, params = tiny
    rr = CrossEncoderScorer(model, params)
    rng = np.random.default_rng(0)
    texts = {f"d{i}": f"document {i} about {w}" for i, w in
             enumerate(rng.choice(["cells", "stocks", "mitosis", "markets"], 12))}
    run = {"q1": {d: float(12 - i) for i, d in enumerate(texts)},
           "q2": {d: float(rng.random()) for d in list(texts)[:9]}}
    out = rerank_run(run, {"q1": QUERY, "q2": "stock market"}, texts.__getitem__, rr, 5,
                     progress=False)
    for q in run:
        first = sorted(run[q], key=lambda d: -run[q][d])
        new = sorted(out[q], key=lambda d: -out[q][d])
        assert set(new) == set(first)
        assert set(new[:5]) == set(first[:5]) and new[5:] == first[5:]
        ce = rr.rerank(run and {"q1": QUERY, "q2": "stock market"}[q], [texts[d] for d in first[:5]])
        assert new[:5] == [first[:5][i] for i in np.argsort(-ce, kind="stable")]
    assert merge_reranked([("a", 3.0), ("b", 2.0)], [], []) == {"a": -1.0, "b": -2.0}


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_checkpoint_round_trip_and_mismatch(tiny, tmp_path):
    model, params = tiny
    params = jax.tree_util.tree_map(lambda x: x + 0.01, params)  # not the init values
    rr = CrossEncoderScorer(model, params)
    rr.save(tmp_path / "ce")
    back = CrossEncoderScorer.load(tmp_path / "ce")
    assert back.config == model.config and back.model.bert_config == model.bert_config
    jax.tree_util.tree_map(np.testing.assert_array_equal, back.params, params)
    np.testing.assert_allclose(back.rerank(QUERY, DOCS), rr.rerank(QUERY, DOCS), rtol=1e-6)
    assert CrossEncoderScorer.load(tmp_path / "ce", alpha=0.3).config.alpha == 0.3

    # Params that do not fit the saved config (wider BERT saved under the tiny config).
    wide = CrossEncoderModel(model.config, bert_config=BertConfig.tiny(hidden_size=48))
    bad = CrossEncoderScorer(wide, wide.init(jax.random.PRNGKey(1)))
    bad.model.bert_config = model.bert_config  # lie about the architecture
    bad.save(tmp_path / "bad")
    with pytest.raises(CheckpointError, match="does not fit"):
        CrossEncoderScorer.load(tmp_path / "bad")
    # A model folder of another method, and a folder without one.
    from jaxir.models.saved_model import save_model

    save_model(tmp_path / "other", method="colbert", config=model.config, params={"w": jnp.ones(3)})
    with pytest.raises(CheckpointError, match="not a 'cross-encoder'"):
        CrossEncoderScorer.load(tmp_path / "other")
    with pytest.raises(CheckpointError):
        CrossEncoderScorer.load(tmp_path / "missing")


def test_warm_start_carries_encoder_and_head_and_rejects_another_backbone(tiny, tmp_path):
    from jaxir.recipes.cross_encoder import warm_start_params

    model, params = tiny
    trained = jax.tree_util.tree_map(lambda x: x + 0.02, params)
    CrossEncoderScorer(model, trained).save(tmp_path / "ce")
    bert, head, pooler = warm_start_params(str(tmp_path / "ce"), model.bert_config, params["bert"])
    assert pooler is None
    warm = CrossEncoderModel(model.config, bert_config=model.bert_config, bert_params=bert,
                        head_params=head, tokenizer=model.tokenizer)
    started = warm.init(jax.random.PRNGKey(7))  # the rng must not matter any more
    jax.tree_util.tree_map(np.testing.assert_array_equal, started, trained)
    # A fresh model still draws its head from the rng.
    fresh = model.init(jax.random.PRNGKey(7))
    assert not np.array_equal(fresh["head"]["dense"]["kernel"], trained["head"]["dense"]["kernel"])
    with pytest.raises(CheckpointError, match="encoder config differs"):
        warm_start_params(str(tmp_path / "ce"), BertConfig.tiny(num_layers=3), params["bert"])
    with pytest.raises(CheckpointError, match="has no BERT's pooler.*--model.pooler false"):
        warm_start_params(str(tmp_path / "ce"), model.bert_config, params["bert"], pooler=True)
