"""Flax BERT vs transformers' PyTorch BertModel on the real MiniLM weights and real SciFact text."""
import gzip
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.models.bert import BertConfig, BertEncoder, init_params
from jaxir.models.hf import load_bert
from jaxir.text import load_tokenizer


@pytest.fixture(scope="module")
def minilm():
    return load_bert()


@pytest.fixture(scope="module")
def scifact_batch(scifact_dir):
    texts = []
    with gzip.open(scifact_dir / "corpus.jsonl.gz", "rt") as f:
        for line, _ in zip(f, range(12)):
            d = json.loads(line)
            texts.append(d["title"] + " " + d["text"])
    with gzip.open(scifact_dir / "queries.jsonl.gz", "rt") as f:
        texts += [json.loads(line)["text"] for line, _ in zip(f, range(4))]
    return load_tokenizer()(texts, padding=True, truncation=True, max_length=256, return_tensors="np")


def _torch_last_hidden(minilm_dir, batch):
    torch = pytest.importorskip("torch")
    from transformers import BertModel

    model = BertModel.from_pretrained(str(minilm_dir)).eval()
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
    return out.last_hidden_state.numpy()


def test_last_hidden_states_match_pytorch(minilm, minilm_dir, scifact_batch):
    config, params = minilm
    ref = _torch_last_hidden(minilm_dir, scifact_batch)
    out = jax.jit(BertEncoder(config).apply)(
        {"params": params}, scifact_batch["input_ids"], scifact_batch["attention_mask"],
        scifact_batch["token_type_ids"])
    out = np.asarray(out)
    mask = scifact_batch["attention_mask"].astype(bool)
    assert np.abs(out - ref)[mask].max() < 1e-4
    # Mean-pooled, normalised sentence embeddings (the all-MiniLM-L6-v2 recipe).
    pool = lambda h: (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)  # noqa: E731
    a, b = pool(out), pool(ref)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.99999


def test_layer_range_and_full_mask_equal_full_stack(minilm, scifact_batch):
    config, params = minilm
    enc = BertEncoder(config)
    ids, mask = scifact_batch["input_ids"][:4, :64], scifact_batch["attention_mask"][:4, :64]
    full = enc.apply({"params": params}, ids, mask)
    low = enc.apply({"params": params}, ids, mask, end_layer=3)
    high = enc.apply({"params": params}, None, mask, start_layer=3, hidden_states=low)
    np.testing.assert_allclose(np.asarray(high), np.asarray(full), atol=1e-5)
    # A (B, L, L) mask that only blocks padded keys equals the (B, L) padding mask.
    mask3 = np.broadcast_to(mask[:, None, :], (4, 64, 64))
    full3 = enc.apply({"params": params}, ids, mask3)
    np.testing.assert_allclose(np.asarray(full3), np.asarray(full), atol=1e-5)


def test_full_mask_changes_result_when_it_blocks_tokens(minilm, scifact_batch):
    config, params = minilm
    enc = BertEncoder(config)
    ids, mask = scifact_batch["input_ids"][:2, :32], scifact_batch["attention_mask"][:2, :32]
    block = np.tril(np.ones((32, 32), np.int32))[None].repeat(2, 0) * mask[:, None, :]
    a = enc.apply({"params": params}, ids, mask)
    b = enc.apply({"params": params}, ids, block)
    assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-2


def test_bad_layer_range_and_mask_rank_raise():
    config = BertConfig.tiny()
    params = init_params(config, jax.random.PRNGKey(0))
    enc = BertEncoder(config)
    ids = jnp.ones((1, 8), jnp.int32)
    with pytest.raises(ValueError, match="layer range"):
        enc.apply({"params": params}, ids, jnp.ones((1, 8)), start_layer=2, end_layer=1)
    with pytest.raises(ValueError, match="hidden_states"):
        enc.apply({"params": params}, ids, jnp.ones((1, 8)), start_layer=1)
    with pytest.raises(ValueError, match="attention mask"):
        enc.apply({"params": params}, ids, jnp.ones((1, 1, 8, 8)))
    with pytest.raises(ValueError, match="max_position"):
        enc.apply({"params": params}, jnp.ones((1, 600), jnp.int32), jnp.ones((1, 600)))
