"""Checkpoints of the PyTorch tools, in process: sentence-transformers (CrossEncoder,
SparseEncoder) and transformers write the layouts from the real MiniLM weights and jaxir imports
them; jaxir exports toy models that the same libraries load. Each check: max abs diff <= 1e-4
(the functions are benchmarks/interop/interop_parity.py's, which prints them as a table). The writing
libraries are the installed ones (sentence-transformers 6.3, transformers 5.24 at the time of
writing); PyLate and colbert-ai run in their own venvs (test_interop_peers.py).
"""
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxir.errors import CheckpointError, DataError
from jaxir.models.bert import BertConfig
from jaxir.interop import detect_format, export_model, load_foreign

from benchmarks.interop import interop_parity as ip

TOL = 1e-4


def edit_json(file: Path, **changes) -> None:
    data = json.loads(file.read_text())
    data.update(changes)
    file.write_text(json.dumps(data))


def same_tree(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    return [p for p, _ in la] == [p for p, _ in lb] and all(
        np.array_equal(np.asarray(x), np.asarray(y)) for (_, x), (_, y) in zip(la, lb))


@pytest.fixture(scope="module")
def st_cross_encoder(minilm_dir, tmp_path_factory):
    return ip.write_st_cross_encoder(minilm_dir, tmp_path_factory.mktemp("st") / "ce")


@pytest.fixture(scope="module")
def hf_mlm(minilm_dir, tmp_path_factory):
    return ip.write_hf_mlm(minilm_dir, tmp_path_factory.mktemp("mlm") / "doc-encoder")


# ---- cross-encoder: sentence-transformers CrossEncoder (BertForSequenceClassification) -----------
@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_cross_encoder_import_matches_sentence_transformers(st_cross_encoder):
    assert detect_format(st_cross_encoder) == "sentence-transformers"
    model, _ = load_foreign(st_cross_encoder, method="cross-encoder", overrides={})
    assert model.config.pooler and model.bert_config.hidden_size == 384
    assert ip.ce_import_diff(st_cross_encoder) <= TOL


def test_cross_encoder_export_loads_in_sentence_transformers(tmp_path):
    assert ip.ce_export_diff(tmp_path) <= TOL
    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.methods.cross_encoder_config import CrossEncoderConfig

    model = CrossEncoderModel(CrossEncoderConfig(pooler=True), bert_config=BertConfig.tiny())
    params = ip.toy_params(model, 1)
    _, back = load_foreign(tmp_path / "ce-export", method="cross-encoder", overrides={})
    assert same_tree(params, back)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_cross_encoder_import_without_pooler_would_differ(st_cross_encoder):
    """The check can fail: the same weights scored without BERT's pooler are far off."""
    import dataclasses

    from jaxir.methods.cross_encoder import CrossEncoderModel

    model, params = load_foreign(st_cross_encoder, method="cross-encoder", overrides={})
    plain = CrossEncoderModel(dataclasses.replace(model.config, pooler=False), bert_config=model.bert_config,
                         bert_params=params["bert"], head_params=params["head"], tokenizer=model.tokenizer)
    plain_params = {k: v for k, v in params.items() if k != "pooler"}
    diff = np.abs(ip.jaxir_pair_scores(plain, plain_params) - ip.st_logits(st_cross_encoder)).max()
    assert diff > 1e-2


def test_cross_encoder_without_pooler_exports_as_modules_with_the_same_scores(tmp_path):
    """The recipe's head reads [CLS] itself, which BertForSequenceClassification cannot (its
    pooler's tanh is always on): it goes out as Transformer -> Pooling cls -> Dense, which
    sentence-transformers scores as jaxir does, without a pooler, and jaxir reads back."""
    assert ip.ce_export_diff(tmp_path, pooler=False) <= TOL
    model, params = ip.toy_cross_encoder(pooler=False)
    folder = tmp_path / "ce-export-plain"
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertModel"]
    assert detect_format(folder) == "sentence-transformers"
    back, back_params = load_foreign(folder, method="cross-encoder", overrides={})
    assert not back.config.pooler and same_tree(params, back_params)


def test_recipe_cross_encoder_of_minilm_exports_with_the_same_scores(tmp_path):
    """The recipe's own model (MiniLM, its pair length, no pooler) with a seeded head."""
    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.recipes.cross_encoder import config

    model = CrossEncoderModel(config("cpu").model)
    assert not model.config.pooler
    assert ip.ce_export_diff(tmp_path, model=model, params=ip.toy_params(model, 5)) <= TOL


def test_export_of_a_cross_encoder_without_the_pooler_field_is_refused(tmp_path, capsys):
    """A reranker whose model.json lacks a field (`pooler`, as one saved before that option) is
    refused in one line by the loader and by `jaxir export-model`, never read with today's
    default; the complete folder exports (saying which layout it wrote), and sentence-transformers
    and jaxir score the export as the checkpoint."""
    from jaxir import cli
    from jaxir.errors import CheckpointError
    from jaxir.retrievers.cross_encoder import CrossEncoderScorer

    ckpt = CrossEncoderScorer(*ip.toy_cross_encoder(pooler=False)).save(tmp_path / "ce")
    complete = (ckpt / "model.json").read_text()
    info = json.loads(complete)
    del info["config"]["pooler"]
    (ckpt / "model.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="lacks the field 'pooler'"):
        CrossEncoderScorer.load(ckpt)
    capsys.readouterr()
    assert cli.main(["export-model", "--checkpoint", str(ckpt), "--format", "sentence-transformers",
                     "--out", str(tmp_path / "st")]) == 2
    assert "lacks the field 'pooler'" in capsys.readouterr().err and not (tmp_path / "st").exists()
    (ckpt / "model.json").write_text(complete)
    old = CrossEncoderScorer.load(ckpt)
    assert cli.main(["export-model", "--checkpoint", str(ckpt), "--format", "sentence-transformers",
                     "--out", str(tmp_path / "st")]) == 0
    assert "Pooling cls, Dense" in capsys.readouterr().err
    ours = ip.jaxir_pair_scores(old.model, old.params)
    assert np.abs(ours - ip.st_logits(tmp_path / "st")).max() <= TOL
    again = CrossEncoderScorer.load(tmp_path / "st")
    np.testing.assert_allclose(ip.jaxir_pair_scores(again.model, again.params), ours, rtol=0, atol=1e-6)


@pytest.mark.parametrize("module, change, match", [
    ("1_Pooling", {"pooling_mode": "mean"}, "pooling 'mean'"),
    ("2_Dense", {"activation_function": "torch.nn.modules.activation.Tanh"}, "not a score head"),
    ("2_Dense", {"module_output_name": "sentence_embedding"}, "not a score head")])
def test_cross_encoder_modules_other_than_a_score_head_are_refused(tmp_path, module, change, match):
    from jaxir.interop import export_model

    model, params = ip.toy_cross_encoder(pooler=False)
    folder = export_model(model, params, fmt="sentence-transformers", out=tmp_path / "ce")
    edit_json(folder / module / "config.json", **change)
    with pytest.raises(CheckpointError, match=match):
        load_foreign(folder, method="cross-encoder", overrides={})


# ---- inference-free sparse: BertForMaskedLM + idf.json ------------------------------------------
@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_sparse_import_matches_sentence_transformers(hf_mlm):
    assert detect_format(hf_mlm) == "hf-mlm"
    assert ip.sparse_import_diff(hf_mlm) <= TOL


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_sparse_encoder_router_import_matches_sentence_transformers(hf_mlm, tmp_path):
    """A SparseEncoder saved by sentence-transformers (static IDF query route, MLM + SPLADE
    document route) imports with its own query weights, and exports back to hf-mlm."""
    router = ip.write_st_router(hf_mlm, tmp_path / "router")
    assert detect_format(router) == "sentence-transformers-sparse"
    assert ip.sparse_router_import_diff(router) <= TOL
    from jaxir.cli_export import export_checkpoint

    out = export_checkpoint(router, fmt="hf-mlm", out=tmp_path / "back")
    (model, _), (again, _) = (load_foreign(f, method="sparse", overrides={}) for f in (router, out))
    np.testing.assert_allclose(again.idf, model.idf, rtol=1e-6)


def test_sparse_router_other_structure_is_refused(hf_mlm, tmp_path):
    router = ip.write_st_router(hf_mlm, tmp_path / "router")
    cfg = json.loads((router / "router_config.json").read_text())
    cfg["structure"]["query"] = cfg["structure"]["document"]  # SPLADE: the MLM on both sides
    (router / "router_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="router_config.json.*not the inference-free structure"):
        load_foreign(router, method="sparse", overrides={})


def test_sparse_export_loads_in_sentence_transformers(tmp_path):
    assert ip.sparse_export_diff(tmp_path) <= TOL
    model, params, _ = ip.toy_sparse(tmp_path / "again")
    _, back = load_foreign(tmp_path / "mlm-export", method="sparse", overrides={})
    assert same_tree(params, back)


# ---- ColBERT: jaxir's own round trip (the peers' checks are in test_interop_peers.py) ----------
@pytest.mark.parametrize("fmt", ["pylate", "colbert-ai"])
@pytest.mark.parametrize("flags", [{}, {"attend_to_mask_tokens": True, "mask_punctuation": False}])
@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_colbert_export_import_round_trip(tmp_path, fmt, flags):
    from jaxir.methods.colbert import ColBERTModel
    from jaxir.methods.colbert_config import ColBERTConfig

    model = ColBERTModel(ColBERTConfig(query_maxlen=24, doc_maxlen=64, dim=16, **flags), bert_config=BertConfig.tiny())
    params = ip.toy_params(model, 3)
    out = export_model(model, params, fmt=fmt, out=tmp_path / fmt)
    assert detect_format(out) == fmt
    back, back_params = load_foreign(out, method="colbert", overrides={})
    assert same_tree(params, back_params)
    for field in ("query_maxlen", "doc_maxlen", "dim", "mask_punctuation", "attend_to_mask_tokens",
                  "query_marker", "doc_marker"):
        assert getattr(back.config, field) == getattr(model.config, field)
    q0, q1 = (m.encode_query_texts(p, ip.QUERIES, progress=False) for m, p in ((model, params), (back, back_params)))
    np.testing.assert_array_equal(q0, q1)
    d0, d1 = (m.encode_doc_texts(p, ip.DOCS, progress=False) for m, p in ((model, params), (back, back_params)))
    assert all(np.array_equal(a, b) for a, b in zip(d0, d1))


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_export_model_cli_and_eval_of_an_exported_folder(tmp_path, toy_beir, capsys):
    """`jaxir export-model` of a saved jaxir ColBERT (MiniLM + a seeded head), then `jaxir eval
    --checkpoint` of each export: the log names the layout and the nDCG equals the original's."""
    from jaxir import cli
    from jaxir.methods.colbert import ColBERTModel
    from jaxir.methods.colbert_config import ColBERTConfig
    from jaxir.retrievers.colbert import save_checkpoint

    model = ColBERTModel(ColBERTConfig(doc_maxlen=48))
    ckpt = save_checkpoint(tmp_path / "ckpt", model.config, ip.toy_params(model, 4))
    ndcg = {}
    for fmt in ("jaxir", "pylate", "colbert-ai"):
        folder = ckpt
        if fmt != "jaxir":
            folder = tmp_path / fmt
            assert cli.main(["export-model", "--checkpoint", str(ckpt), "--format", fmt, "--out", str(folder)]) == 0
        out = tmp_path / f"{fmt}.json"
        capsys.readouterr()
        assert cli.main(["eval", "--method", "colbert", "--checkpoint", str(folder), "--data", str(toy_beir),
                         "--split", "train", "--cache", str(tmp_path / f"idx-{fmt}"),
                         "--output-json", str(out)]) == 0
        if fmt != "jaxir":
            assert f"{fmt} layout" in capsys.readouterr().err
        ndcg[fmt] = json.loads(out.read_text())["metrics"]["ndcg@10"]
    assert ndcg["pylate"] == ndcg["jaxir"] == ndcg["colbert-ai"], ndcg
    assert cli.main(["export-model", "--checkpoint", str(ckpt), "--format", "hf-mlm",
                     "--out", str(tmp_path / "no")]) == 2
    assert "exports to colbert-ai, pylate, not hf-mlm" in capsys.readouterr().err


# ---- bad input ------------------------------------------------------------------------------------
def test_unknown_architecture_is_named(tmp_path, minilm_dir):
    shutil.copytree(minilm_dir, tmp_path / "m")
    edit_json(tmp_path / "m" / "config.json", model_type="roberta", architectures=["RobertaModel"])
    (tmp_path / "m" / "modules.json").unlink()
    with pytest.raises(CheckpointError, match="model_type 'roberta'.*RobertaModel.*BERT"):
        detect_format(tmp_path / "m")


def test_bi_encoder_folder_is_not_a_checkpoint(minilm_dir):
    with pytest.raises(CheckpointError, match="modules.json.*Pooling"):
        detect_format(minilm_dir)


def test_method_mismatch_names_the_reader(hf_mlm):
    with pytest.raises(CheckpointError, match="--method sparse reads it, not colbert"):
        load_foreign(hf_mlm, method="colbert", overrides={})


def test_hidden_size_mismatch_names_config(tmp_path, hf_mlm):
    bad = tmp_path / "bad"
    shutil.copytree(hf_mlm, bad)
    edit_json(bad / "config.json", hidden_size=768, num_attention_heads=12)
    with pytest.raises(CheckpointError, match=r"config.json.*hidden_size 768"):
        load_foreign(bad, method="sparse", overrides={})


def test_missing_tokenizer_and_idf_are_named(tmp_path, hf_mlm):
    no_tok = tmp_path / "no-tok"
    shutil.copytree(hf_mlm, no_tok)
    for f in ("tokenizer.json", "vocab.txt"):
        (no_tok / f).unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="no tokenizer"):
        load_foreign(no_tok, method="sparse", overrides={})
    no_idf = tmp_path / "no-idf"
    shutil.copytree(hf_mlm, no_idf)
    (no_idf / "idf.json").unlink()
    with pytest.raises(CheckpointError, match="idf.json is missing"):
        load_foreign(no_idf, method="sparse", overrides={})


def test_idf_of_another_vocabulary_is_named(tmp_path, hf_mlm):
    other = tmp_path / "other"
    shutil.copytree(hf_mlm, other)
    (other / "idf.json").write_text(json.dumps({f"tok{i}": 1.0 for i in range(500)}))
    with pytest.raises(DataError, match="idf.json.*another vocabulary"):
        load_foreign(other, method="sparse", overrides={})


def test_pylate_dense_bias_is_refused_even_when_its_config_is_silent(tmp_path):
    from jaxir.methods.colbert import ColBERTModel
    from jaxir.methods.colbert_config import ColBERTConfig

    model = ColBERTModel(ColBERTConfig(dim=16), bert_config=BertConfig.tiny())
    out = export_model(model, ip.toy_params(model), fmt="pylate", out=tmp_path / "pl")
    cfg = json.loads((out / "1_Dense" / "config.json").read_text())
    del cfg["bias"]  # PyLate's Dense defaults to bias=True
    (out / "1_Dense" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="1_Dense/config.json.*bias"):
        load_foreign(out, method="colbert", overrides={})


def test_unsupported_pylate_module_is_named(tmp_path):
    from jaxir.methods.colbert import ColBERTModel
    from jaxir.methods.colbert_config import ColBERTConfig

    model = ColBERTModel(ColBERTConfig(dim=16), bert_config=BertConfig.tiny())
    out = export_model(model, ip.toy_params(model), fmt="pylate", out=tmp_path / "pl")
    edit_json(out / "1_Dense" / "config.json", activation_function="torch.nn.modules.activation.Tanh")
    with pytest.raises(CheckpointError, match="1_Dense/config.json.*Tanh"):
        load_foreign(out, method="colbert", overrides={})
