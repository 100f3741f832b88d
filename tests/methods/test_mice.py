"""MICE model: the named configurations' masks, parity with the cross-encoder on the real MiniLM
weights, split (precomputed) path = the joint sequence under the masks, precomputed keys/values,
the loss, the state store's pruning and lookup, sharded = single device."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.methods.cross_encoder import CrossEncoderModel
from jaxir.methods.cross_encoder_config import CrossEncoderConfig
from jaxir.methods.mice import MiceModel
from jaxir.methods.mice_config import CONFIGURATIONS, MiceConfig
from jaxir.models.bert import BertConfig
from jaxir.ops import masks

QUERIES = ["how do cells divide", "what causes fever in young children"]
DOCS = ["cells divide by mitosis and meiosis", "the stock market fell sharply today",
        "fever is a raised body temperature, most often caused by an infection"]


def _model(params=None, bert_config=None, **kw):
    cfg = MiceConfig(**{"query_maxlen": 16, "doc_maxlen": 24, **kw})
    bert_config = bert_config or BertConfig.tiny()
    if params is None:
        return MiceModel(cfg, bert_config=bert_config)
    return MiceModel(cfg, bert_config=bert_config, bert_params=params["bert"], head_params=params["head"])


def _all_pairs(model):
    qi, qm = model.query_arrays(QUERIES)
    di, dm = model.doc_arrays(DOCS)
    q_row, d_row = np.repeat(np.arange(len(QUERIES)), len(DOCS)), np.tile(np.arange(len(DOCS)), len(QUERIES))
    return qi, qm, di, dm, q_row, d_row


def test_configuration_masks_by_layer_range():
    """Each named configuration's early/late masks, checked pair by pair on a 2 + 3 token row."""
    seg = jnp.array([[0, 0, 1, 1, 1]])
    valid = jnp.ones((1, 5), bool)
    expected = {"cross-encoder": ("full", "full", True), "late-full": ("block_diagonal", "full", True),
                "mice": ("block_diagonal", "query_to_doc", False),
                "mice-no-qq": ("block_diagonal", "query_to_doc_no_qq", False)}
    assert masks.MICE_CONFIGURATIONS == expected
    assert tuple(masks.MICE_CONFIGURATIONS) == CONFIGURATIONS  # the config's jax-free spelling of the names
    rules = {"full": lambda a, b: True, "block_diagonal": lambda a, b: a == b,
             "query_to_doc": lambda a, b: a == 0 or b == 1, "query_to_doc_no_qq": lambda a, b: b == 1}
    for name, (early, late, _) in masks.MICE_CONFIGURATIONS.items():
        for variant in (early, late):
            got = np.asarray(masks.mice_masks(seg, valid, variant=variant))[0]
            ref = np.array([[rules[variant](int(a), int(b)) for b in seg[0]] for a in seg[0]])
            np.testing.assert_array_equal(got, ref, err_msg=f"{name}/{variant}")


def test_config_errors():
    with pytest.raises(ValueError, match="unknown MICE configuration"):
        MiceConfig(configuration="nope")
    with pytest.raises(ValueError, match="needs fusion_layer 0"):
        MiceConfig(configuration="cross-encoder", fusion_layer=2)
    with pytest.raises(ValueError, match="exceed"):
        _model(fusion_layer=3)  # the tiny BERT has 2 layers


def test_cross_encoder_parity_on_minilm():
    """Masks off (configuration cross-encoder, l_f = 0) on the cross-encoder's own packed rows:
    MICE's joint path is the cross-encoder, on the real MiniLM weights."""
    from jaxir.data.tuples import PairEncoder

    ce = CrossEncoderModel(CrossEncoderConfig(pair_maxlen=48))
    params = ce.init(jax.random.PRNGKey(3))
    batch = PairEncoder(ce.tokenizer, 48)(QUERIES, [DOCS, DOCS])
    flat = {k: v.reshape(6, -1) for k, v in batch.items()}
    ref = np.asarray(ce.score(params, flat))
    mice = _model(params, ce.bert_config, configuration="cross-encoder", fusion_layer=0)
    got = mice.joint_scores(params, flat["input_ids"], flat["attention_mask"], flat["token_type_ids"],
                            flat["token_type_ids"])
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-4)
    assert np.ptp(ref) > 1e-3  # different pairs, different scores: the comparison can fail


@pytest.mark.parametrize("configuration,fusion,layout", [("mice", 3, "sinks"), ("mice", 0, "sinks"),
                                                         ("mice-no-qq", 2, "sinks"), ("late-full", 4, "sinks"),
                                                         ("mice", 6, "sinks"), ("mice", 3, "bare")])
def test_precomputed_states_equal_the_joint_sequence_on_minilm(configuration, fusion, layout):
    ce = CrossEncoderModel(CrossEncoderConfig())
    params = ce.init(jax.random.PRNGKey(0))
    model = _model(params, ce.bert_config, configuration=configuration, fusion_layer=fusion, doc_layout=layout)
    qi, qm, di, dm, q_row, d_row = _all_pairs(model)
    rows = model.joint_rows(qi[q_row], qm[q_row], di[d_row], dm[d_row])
    ref = model.joint_scores(params, rows["input_ids"], rows["attention_mask"], rows["token_type_ids"],
                             rows["segment_ids"], rows["position_ids"])
    qs, ds = model.query_states(params, qi, qm), model.doc_states(params, di, dm)
    # one query's states broadcast over its candidates, as at rerank time
    split = np.concatenate([np.asarray(model.interact(params, qs[i:i + 1], qm[i:i + 1], ds, dm))
                            for i in range(len(QUERIES))])
    np.testing.assert_allclose(split, np.asarray(ref), atol=1e-4)
    if not model.updates_docs:
        kv = model.doc_kv(params, ds)
        assert kv.shape == (len(DOCS), 24, 6 - fusion, 2, 384)
        with_kv = model.interact(params, qs[q_row], qm[q_row], None, dm[d_row], kv[d_row])
        np.testing.assert_allclose(np.asarray(with_kv), np.asarray(ref), atol=1e-4)


def test_document_layouts():
    """sinks: [CLS] [SEP] d [SEP] with the sinks at 0 and Lq-1 (type 0) and d from Lq (type 1);
    bare: d [SEP] from Lq. Long documents are cut to the same total width."""
    sinks, bare = _model(fusion_layer=1), _model(fusion_layer=1, doc_layout="bare")
    tok = sinks.tokenizer
    long_doc = " ".join(["cell"] * 40)
    ids, mask = sinks.doc_arrays([DOCS[0], long_doc])
    body = tok(DOCS[0], add_special_tokens=False)["input_ids"]
    np.testing.assert_array_equal(ids[0, : len(body) + 3], [tok.cls_token_id, tok.sep_token_id, *body, tok.sep_token_id])
    assert mask[0].sum() == len(body) + 3 and mask[1].sum() == 24 and ids[1, 23] == tok.sep_token_id
    b_ids, b_mask = bare.doc_arrays([DOCS[0]])
    np.testing.assert_array_equal(b_ids[0, : len(body) + 1], [*body, tok.sep_token_id])
    positions, types = sinks.doc_layout_arrays()
    np.testing.assert_array_equal(positions[:4], [0, 15, 16, 17])
    np.testing.assert_array_equal(types[:3], [0, 0, 1])
    positions, types = bare.doc_layout_arrays()
    np.testing.assert_array_equal(positions[:2], [16, 17])
    assert types.min() == 1
    # A saved config without the field is refused, never read with today's default layout.
    import dataclasses

    from jaxir.errors import CheckpointError
    from jaxir.models.saved_model import config_from_dict

    saved = dataclasses.asdict(MiceConfig(doc_layout="bare"))
    assert config_from_dict(MiceConfig, saved).doc_layout == "bare"
    with pytest.raises(CheckpointError, match="lacks the field 'doc_layout'"):
        config_from_dict(MiceConfig, {k: v for k, v in saved.items() if k != "doc_layout"})
    with pytest.raises(ValueError, match="unknown doc_layout"):
        MiceConfig(doc_layout="nope")
    with pytest.raises(ValueError, match="needs doc_maxlen >= 4"):
        MiceConfig(doc_maxlen=3)


def test_sinks_bring_document_states_closer_to_the_cross_encoder_on_minilm(scifact_dir):
    """Document token states at l_f 3 against the cross-encoder's on its packed
    `[CLS] q [SEP] d [SEP]` rows, pretrained MiniLM on SciFact test pairs (query, judged
    document): the sinks layout is closer than the bare one (48 pairs, doc_maxlen 160: mean 0.958
    against 0.920)."""
    from jaxir.eval.beir import load_beir
    from jaxir.models.bert import bert_apply

    data = load_beir(scifact_dir, split="test")
    pairs = [(data.queries[q], data.text_of(d)) for q in list(data.qrels)[:6] for d in list(data.qrels[q])[:1]]
    ce = CrossEncoderModel(CrossEncoderConfig())
    params = ce.init(jax.random.PRNGKey(0))
    kw = {"query_maxlen": 32, "doc_maxlen": 96, "fusion_layer": 3}
    models = {layout: MiceModel(MiceConfig(doc_layout=layout, **kw), bert_config=ce.bert_config,
                                bert_params=params["bert"], head_params=params["head"])
              for layout in ("sinks", "bare")}
    tok = ce.tokenizer
    cos = {layout: [] for layout in models}
    for q, d in pairs:
        qt = tok(q, add_special_tokens=False)["input_ids"][:30]
        dt = tok(d, add_special_tokens=False)["input_ids"][:93]  # what doc_arrays keeps under sinks
        packed = np.array([[tok.cls_token_id, *qt, tok.sep_token_id, *dt, tok.sep_token_id]])
        start = len(qt) + 2
        types = np.array([[0] * start + [1] * (len(dt) + 1)])
        ref = np.asarray(bert_apply(ce.bert_config, params["bert"], packed, np.ones_like(packed), types,
                                    end_layer=3))[0, start:]
        for layout, model in models.items():
            ids, mask = model.doc_arrays(token_lists=[dt])
            h = np.asarray(model.doc_states(params, ids, mask))[0, mask[0].astype(bool)]
            h = h[2:] if layout == "sinks" else h  # the document text and its [SEP]
            c = np.sum(h * ref, -1) / np.linalg.norm(h, axis=-1) / np.linalg.norm(ref, axis=-1)
            cos[layout].append(c.mean())
    assert np.mean(cos["sinks"]) > np.mean(cos["bare"]) + 0.02, cos
    assert all(s > b for s, b in zip(cos["sinks"], cos["bare"])), cos


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_frozen_document_rows_are_a_real_choice():
    model = _model(fusion_layer=0)  # two interaction layers: updated documents would reach [CLS]
    params = model.init(jax.random.PRNGKey(0))
    qi, qm, di, dm, q_row, d_row = _all_pairs(model)
    rows = model.joint_rows(qi[q_row], qm[q_row], di[d_row], dm[d_row])
    ref = np.asarray(model.joint_scores(params, rows["input_ids"], rows["attention_mask"],
                                        rows["token_type_ids"], rows["segment_ids"], rows["position_ids"]))
    # Updating the document rows (late-full) is a different model: the freezing is not a no-op.
    late = _model(params, configuration="late-full", fusion_layer=0)
    other = np.asarray(late.joint_scores(params, rows["input_ids"], rows["attention_mask"],
                                         rows["token_type_ids"], rows["segment_ids"], rows["position_ids"]))
    assert np.abs(other - ref).max() > 1e-4
    # The query sees the document: changing it changes the score.
    assert np.ptp(ref.reshape(len(QUERIES), len(DOCS)), axis=1).min() > 1e-5


def test_layer_dropping_runs_fewer_layers():
    model = _model(fusion_layer=1, num_layers=1)
    assert list(model.interaction) == []
    params = model.init(jax.random.PRNGKey(0))
    qi, qm, di, dm, _, _ = _all_pairs(model)
    s = model.interact(params, model.query_states(params, qi[:1], qm[:1]), qm[:1],
                       model.doc_states(params, di, dm), dm)
    # No interaction layer: the score is the head on the query's own [CLS], the same for every doc.
    assert np.ptp(np.asarray(s)) < 1e-6


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_margin_mse_loss_matches_numpy():
    model = _model(fusion_layer=1)
    params = model.init(jax.random.PRNGKey(0))
    from jaxir.recipes.mice import mice_arrays

    batch = mice_arrays(model, QUERIES, [DOCS, DOCS[::-1]])
    batch["teacher"] = np.array([[3.0, -1.0, 2.0], [1.0, 0.5, -2.0]], np.float32)
    batch["valid"] = np.array([[1, 1, 1], [1, 1, 0]], bool)
    loss, metrics = model.loss_fn(params, batch)
    s = np.asarray(model.pair_scores(params, batch["q_ids"], batch["q_mask"], batch["d_ids"], batch["d_mask"]),
                   np.float64)
    t = batch["teacher"].astype(np.float64)
    terms = [((s[0, 0] - s[0, j]) - (t[0, 0] - t[0, j])) ** 2 for j in (1, 2)]
    terms.append(((s[1, 0] - s[1, 1]) - (t[1, 0] - t[1, 1])) ** 2)  # column 2 of row 1 is invalid
    np.testing.assert_allclose(float(loss), np.mean(terms), rtol=1e-5)
    grads = jax.grad(lambda p: model.loss_fn(p, batch)[0])(params)
    assert float(jnp.abs(grads["head"]["dense"]["kernel"]).sum()) > 0


def test_prune_positions_keep_highest_idf_and_the_sep():
    from jaxir.index.doc_states import corpus_idf, prune_positions

    idf = corpus_idf([[1, 2, 3], [1, 2], [1, 9]], vocab_size=10)
    assert idf[9] == idf[3] > idf[2] > idf[1]
    tokens = np.array([1, 3, 2, 9, 102])
    np.testing.assert_array_equal(prune_positions(tokens, idf, 3), [1, 3, 4])  # 3 and 9 tie: both kept
    np.testing.assert_array_equal(prune_positions(tokens, idf, 2), [1, 4])  # tie -> the earlier one
    np.testing.assert_array_equal(prune_positions(tokens, idf, 0), np.arange(5))
    np.testing.assert_array_equal(prune_positions(tokens, idf, 9), np.arange(5))
    # MICE's sinks ([CLS] [SEP] copies at the front) are kept whatever their IDF.
    with_sinks = np.array([101, 102, 1, 3, 2, 9, 102])
    np.testing.assert_array_equal(prune_positions(with_sinks, idf, 4, head=2), [0, 1, 3, 6])
    from jaxir.errors import DataError

    with pytest.raises(DataError, match="keeps nothing beyond"):
        prune_positions(with_sinks, idf, 2, head=2)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_sharded_interaction_equals_single_device():
    from jax.sharding import NamedSharding, PartitionSpec as P

    from jaxir.parallel import make_mesh

    model = _model(fusion_layer=1)
    params = model.init(jax.random.PRNGKey(0))
    qi, qm = model.query_arrays(QUERIES[:1])
    di, dm = model.doc_arrays(DOCS * 8)[0][:8], model.doc_arrays(DOCS * 8)[1][:8]
    qs, ds = model.query_states(params, qi, qm), model.doc_states(params, di, dm)
    single = np.asarray(jax.jit(model.interact)(params, qs, qm, ds, dm))
    mesh = make_mesh(data=len(jax.devices()))
    rows = NamedSharding(mesh, P("data"))
    rep = NamedSharding(mesh, P())
    fn = jax.jit(model.interact, in_shardings=(rep, rep, rep, rows, rows), out_shardings=rows)
    np.testing.assert_allclose(np.asarray(fn(params, qs, qm, ds, dm)), single, atol=1e-5)
