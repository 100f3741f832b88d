"""Dropout: the backbone's rates from the HF config, applied only when a training rng is given.
rng None (encoding, evaluation) is bit-identical to a dropout-free encoder; a training rng changes
the output, the same key gives the same output and another key another, for every method's loss."""
import jax
import numpy as np
import pytest

from jaxir.models.bert import BertConfig, bert_apply, init_params

DROP = BertConfig.tiny(hidden_dropout=0.1, attention_dropout=0.1)
KEY = jax.random.fold_in(jax.random.PRNGKey(0), 7)
OTHER = jax.random.fold_in(jax.random.PRNGKey(0), 8)


def test_rates_come_from_the_hf_config_and_a_field_overrides_them():
    cfg = BertConfig.from_hf({"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                              "intermediate_size": 16, "max_position_embeddings": 16,
                              "hidden_dropout_prob": 0.2, "attention_probs_dropout_prob": 0.05})
    assert (cfg.hidden_dropout, cfg.attention_dropout) == (0.2, 0.05)
    assert cfg.with_dropout(None) is cfg and cfg.with_dropout(0.0).hidden_dropout == 0.0
    assert "hidden_dropout" not in cfg.to_dict()  # a training setting, not the architecture
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="dropout must be in"):
            cfg.with_dropout(bad)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_encoder_off_is_bit_identical_and_on_depends_only_on_the_key():
    params = init_params(DROP, jax.random.PRNGKey(1))
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 3000, (3, 12)).astype(np.int32)
    mask = np.ones((3, 12), np.int32)
    mask[1, 8:] = 0
    off = np.asarray(bert_apply(DROP, params, ids, mask))
    no_rates = np.asarray(bert_apply(BertConfig.tiny(), params, ids, mask, rng=KEY))
    np.testing.assert_array_equal(off, no_rates)
    on = np.asarray(bert_apply(DROP, params, ids, mask, rng=KEY))
    assert not np.allclose(on, off, atol=1e-3)
    np.testing.assert_array_equal(on, np.asarray(bert_apply(DROP, params, ids, mask, rng=KEY)))
    assert not np.allclose(on, np.asarray(bert_apply(DROP, params, ids, mask, rng=OTHER)), atol=1e-3)


def _colbert():
    from jaxir.methods.colbert import ColBERTModel
    from jaxir.methods.colbert_config import ColBERTConfig

    return lambda rate: ColBERTModel(ColBERTConfig(query_maxlen=8, doc_maxlen=12, dim=16, dropout=rate),
                                     bert_config=BertConfig.tiny())


def _cross_encoder():
    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.methods.cross_encoder_config import CrossEncoderConfig

    return lambda rate: CrossEncoderModel(CrossEncoderConfig(pair_maxlen=16, dropout=rate), bert_config=BertConfig.tiny())


def _mice():
    from jaxir.methods.mice import MiceModel
    from jaxir.methods.mice_config import MiceConfig

    return lambda rate: MiceModel(MiceConfig(query_maxlen=8, doc_maxlen=12, fusion_layer=1, dropout=rate),
                                  bert_config=BertConfig.tiny())


def _sparse():
    from jaxir.methods.sparse import SparseModel
    from jaxir.methods.sparse_config import SparseConfig

    idf = np.random.default_rng(3).uniform(0.5, 5.0, BertConfig.tiny().vocab_size).astype(np.float32)
    return lambda rate: SparseModel(SparseConfig(doc_maxlen=12, logit_chunk=4, ranking_loss="infonce", dropout=rate),
                                    idf=idf, bert_config=BertConfig.tiny())


def _batch(name):
    rng = np.random.default_rng(5)
    b, n = 2, 3
    ints = lambda *shape: rng.integers(1000, 3000, shape).astype(np.int32)  # noqa: E731
    if name == "cross_encoder":
        return {"input_ids": ints(b, n, 16), "attention_mask": np.ones((b, n, 16), np.int32),
                "token_type_ids": np.zeros((b, n, 16), np.int32), "valid": np.ones((b, n), bool)}
    return {"q_ids": ints(b, 8), "q_mask": np.ones((b, 8), np.int32), "d_ids": ints(b, n, 12),
            "d_mask": np.ones((b, n, 12), np.int32), "teacher": rng.normal(size=(b, n)).astype(np.float32),
            "valid": np.ones((b, n), bool)}


@pytest.mark.parametrize("name", ["colbert", "cross_encoder", "mice", "sparse"])
@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_every_methods_loss_uses_the_training_rng(name):
    make = {"colbert": _colbert, "cross_encoder": _cross_encoder, "mice": _mice, "sparse": _sparse}[name]()
    model, plain = make(0.1), make(0.0)
    params = model.init(jax.random.PRNGKey(0))
    if name == "sparse":  # the head starts with every weight at 0 (bias -6): give it some
        params["head"]["bias"] = np.random.default_rng(1).uniform(0, 1, params["head"]["bias"].shape).astype(np.float32)
    batch = _batch(name)
    loss = jax.jit(lambda p, b, r: model.loss_fn(p, b, r)[0])
    off = float(model.loss_fn(params, batch, None)[0])
    assert off == float(plain.loss_fn(params, batch, KEY)[0])  # rate 0: the rng changes nothing
    on = float(loss(params, batch, KEY))
    assert on != off and float(loss(params, batch, KEY)) == on and float(loss(params, batch, OTHER)) != on
