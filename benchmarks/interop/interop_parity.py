"""Parity of jaxir with the PyTorch tools' checkpoints, both directions, one table.

    python -m benchmarks.interop.interop_parity [--work DIR]

For each layout the library itself writes a checkpoint from the real all-MiniLM-L6-v2 weights
(import: jaxir loads it), and jaxir writes a toy model (a 2-layer BERT with random weights) that
the library loads (export). Both sides encode the same texts; the figure is the max abs
difference of query/document embeddings (ColBERT), document weights and query-document scores
(inference-free sparse) or logits (cross-encoder). PyLate and colbert-ai run in their own venvs
(benchmarks/harness/peer_venv.py, made on first use); sentence-transformers and transformers in this one.
tests/interop/test_interop.py and tests/interop/test_interop_peers.py assert the same functions <= 1e-4.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import ROOT

QUERIES = ["what causes insulin resistance?", "effects of vitamin D on bone density in elderly women",
           "CRISPR off-target mutations",
           # longer than a ColBERT query (32 tokens): both sides must cut it at the same place
           "is there evidence from randomized controlled trials, cohort studies or meta-analyses that "
           "daily low-dose aspirin reduces the incidence of colorectal cancer, cardiovascular events "
           "or overall mortality in adults older than sixty-five years without prior disease?"]
DOCS = ["Insulin resistance is linked to obesity, inflammation, and fatty-acid metabolism (Smith et al., 2010).",
        "Vitamin D supplementation did not improve bone mineral density in 1,200 women aged 70+.",
        "Short text.",
        "Genome editing with CRISPR-Cas9 can introduce off-target mutations at sites resembling the guide RNA!",
        # ~700 WordPieces: past ColBERT's 180, the cross-encoder's pair length and BERT's 512
        " ".join(f"Trial {i} enrolled {40 + i} adults; adverse events were rare (p = 0.{i:02d})." for i in range(40))]
TEXTS = {"queries": QUERIES, "docs": DOCS}
PAIRS = [(q, d) for q in QUERIES for d in DOCS]


def toy_params(model, seed: int = 0):
    """A toy jaxir model's params: a seeded init with every leaf scaled by a seeded factor near 1,
    so no tensor equals a pretrained or default one (what an export must carry over)."""
    import jax

    params = model.init(jax.random.PRNGKey(seed))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32) * np.float32(rng.uniform(0.9, 1.1)), params)


def version(package: str) -> str:
    from importlib.metadata import version as v

    return f"{package} {v(package)}"


# ---- cross-encoder ------------------------------------------------------------------------------
def st_logits(folder) -> np.ndarray:
    import torch
    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(str(folder), device="cpu")
    return np.asarray(ce.predict(PAIRS, activation_fn=torch.nn.Identity()), np.float32)


def jaxir_pair_scores(model, params) -> np.ndarray:
    from jaxir.methods.cross_encoder import PairScorer

    return np.concatenate(PairScorer(model, params).score_texts(QUERIES, [DOCS] * len(QUERIES)))


def write_st_cross_encoder(base, out) -> Path:
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    CrossEncoder(str(base), num_labels=1, device="cpu").save(str(out))
    return Path(out)


def ce_import_diff(folder) -> float:
    from jaxir.interop import load_foreign

    model, params = load_foreign(folder, method="cross-encoder", overrides={})
    return float(np.abs(jaxir_pair_scores(model, params) - st_logits(folder)).max())


def toy_cross_encoder(pooler: bool):
    """(model, params) of a toy jaxir cross-encoder: BertForSequenceClassification's head with
    `pooler`, else the recipe's default (a head on [CLS] itself)."""
    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.methods.cross_encoder_config import CrossEncoderConfig
    from jaxir.models.bert import BertConfig

    model = CrossEncoderModel(CrossEncoderConfig(pooler=pooler), bert_config=BertConfig.tiny())
    return model, toy_params(model, 1)


def ce_export_diff(work: Path, *, pooler: bool = True, model=None, params=None) -> float:
    """max |jaxir score - CrossEncoder logit| of an export (default: `toy_cross_encoder(pooler)`)
    at work / "ce-export" (or "ce-export-plain" without pooler)."""
    from jaxir.interop import export_model

    if model is None:
        model, params = toy_cross_encoder(pooler)
    out = work / ("ce-export" if model.config.pooler else "ce-export-plain")
    export_model(model, params, fmt="sentence-transformers", out=out, force=True)
    return float(np.abs(jaxir_pair_scores(model, params) - st_logits(out)).max())


# ---- inference-free sparse ----------------------------------------------------------------------
def write_idf(folder: Path, tokenizer, seed: int = 0) -> Path:
    """An idf.json over the tokenizer's non-special tokens, seeded weights in [0.5, 8]."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    rng = np.random.default_rng(seed)
    (folder / "idf.json").write_text(json.dumps({t: float(rng.uniform(0.5, 8.0)) for t in vocab
                                                  if not t.startswith("[")}))
    return folder / "idf.json"


def write_hf_mlm(base, out) -> Path:
    """transformers writes a BertForMaskedLM of the base (its MLM head seeded: MiniLM has none)."""
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    torch.manual_seed(0)
    BertForMaskedLM.from_pretrained(str(base)).save_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(base))
    tok.save_pretrained(str(out))
    write_idf(Path(out), tok)
    return Path(out)


def st_inference_free(folder):
    """sentence-transformers' inference-free SparseEncoder over a folder: IDF query side (its
    idf.json), MLM + SPLADE max pooling document side."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import (MLMTransformer, Router,
                                                              SparseStaticEmbedding, SpladePooling)

    mlm = MLMTransformer(str(folder))
    query = SparseStaticEmbedding.from_json(str(Path(folder) / "idf.json"), tokenizer=mlm.tokenizer)
    router = Router.for_query_document(query_modules=[query], document_modules=[mlm, SpladePooling("max")])
    return SparseEncoder(modules=[router], device="cpu")


def sparse_diff(folder, model, params, se=None) -> float:
    """max of: |doc weights| difference on tokens a query can contain (jaxir zeroes special
    tokens, as the authors' code does), |query vector| difference, and the relative difference
    of query-document scores. se: the SparseEncoder (default: `st_inference_free(folder)`)."""
    se = se if se is not None else st_inference_free(folder)
    st_docs = se.encode_document(DOCS, convert_to_tensor=True).to_dense().numpy()
    st_queries = se.encode_query(QUERIES, convert_to_tensor=True).to_dense().numpy()
    ours = np.zeros_like(st_docs)
    for i, (terms, w) in enumerate(model.encode_doc_texts(params, DOCS, progress=False)):
        ours[i, terms] = w
    keep = np.ones(st_docs.shape[1], bool)
    keep[model.special_ids] = False
    ours_q = np.zeros_like(st_queries)
    for i, q in enumerate(QUERIES):
        ids = np.unique(model.tokenizer(q, add_special_tokens=False)["input_ids"])
        ours_q[i, ids] = model.idf[ids]
    st_scores = st_queries[:, keep] @ st_docs[:, keep].T
    score_diff = np.abs(ours_q @ ours.T - st_scores).max() / max(1.0, np.abs(st_scores).max())
    return float(max(np.abs(ours[:, keep] - st_docs[:, keep]).max(), np.abs(ours_q - st_queries).max(), score_diff))


def sparse_import_diff(folder) -> float:
    from jaxir.interop import load_foreign

    model, params = load_foreign(folder, method="sparse", overrides={})
    return sparse_diff(folder, model, params)


def write_st_router(mlm_folder, out) -> Path:
    """sentence-transformers saves its inference-free SparseEncoder (a Router) over an hf-mlm folder."""
    st_inference_free(mlm_folder).save(str(out))
    return Path(out)


def sparse_router_import_diff(folder) -> float:
    from sentence_transformers import SparseEncoder

    from jaxir.interop import load_foreign

    model, params = load_foreign(folder, method="sparse", overrides={})
    return sparse_diff(folder, model, params, se=SparseEncoder(str(folder), device="cpu"))


def toy_sparse(work: Path, seed: int = 2):
    """(model, params, idf.json) of a toy jaxir sparse model over the MiniLM tokenizer."""
    from jaxir.methods.sparse import SparseModel
    from jaxir.methods.sparse_config import SparseConfig
    from jaxir.models.bert import BertConfig
    from jaxir.text import load_tokenizer
    from jaxir.text.idf import load_idf, tokenizer_vocab

    tok = load_tokenizer()
    work.mkdir(parents=True, exist_ok=True)
    idf_file = write_idf(work, tok, seed=seed)
    # one window: the layout records one cut (jaxir's default max-pools 4 windows of 256 tokens,
    # which the PyTorch tools do not do, so a longer document would differ)
    model = SparseModel(SparseConfig(init_vocab_bias=0.0, doc_windows=1), idf=load_idf(idf_file, tokenizer_vocab(tok)),
                        bert_config=BertConfig.tiny())
    return model, toy_params(model, seed), idf_file


def sparse_export_diff(work: Path) -> float:
    from jaxir.interop import export_model

    model, params, idf_file = toy_sparse(work / "sparse-toy")
    out = export_model(model, params, fmt="hf-mlm", out=work / "mlm-export", files={"idf.json": idf_file},
                       force=True)
    return sparse_diff(out, model, params)


def colbert_encodings(model, params, texts: dict) -> tuple[np.ndarray, list[np.ndarray]]:
    """(queries [Nq, Lq, dim], per document the kept token vectors) of texts {"queries", "docs"}."""
    q = model.encode_query_texts(params, texts["queries"], progress=False)
    return q, model.encode_doc_texts(params, texts["docs"], progress=False)


def colbert_max_diff(model, params, texts: dict, peer: dict) -> float:
    """max |jaxir - peer| over every query and kept document vector; inf if shapes differ."""
    q, docs = colbert_encodings(model, params, texts)
    pairs = [(q, peer["q"])] + [(d, peer[f"d_{i}"]) for i, d in enumerate(docs)]
    if any(a.shape != b.shape for a, b in pairs):
        return float("inf")
    return max(float(np.max(np.abs(a - b))) for a, b in pairs)


# ---- ColBERT through the peers' venvs -----------------------------------------------------------
def peer(lib: str, *args: str) -> str:
    """Run `benchmarks.interop.interop_peer` in the peer's venv (made on first use) as a module from
    the repository root (the venv has no jaxir, and needs none: the module imports NumPy and the
    peer only); its stdout."""
    from benchmarks.harness.peer_venv import PEERS, ensure_peer_venv

    python = ensure_peer_venv(PEERS[lib][0], lib)
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(PEERS[lib][0] / "torch_extensions")}
    done = subprocess.run([str(python), "-m", "benchmarks.interop.interop_peer", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{lib} peer failed: {done.stderr[-2000:]}")
    return done.stdout


def peer_encodings(lib: str, checkpoint: Path, work: Path) -> dict:
    texts, out = work / "texts.json", work / f"enc-{lib}-{checkpoint.name}.npz"
    texts.write_text(json.dumps(TEXTS))
    peer(lib, "encode", lib, "--checkpoint", str(checkpoint), "--texts", str(texts), "--out", str(out))
    return dict(np.load(out))


def colbert_import_diff(lib: str, base, work: Path) -> tuple[float, str]:
    from jaxir.interop import load_foreign

    folder = work / f"{lib}-written"
    written_by = peer(lib, "write", lib, "--base", str(base), "--out", str(folder)).strip().splitlines()[-1]
    model, params = load_foreign(folder, method="colbert", overrides={})
    return colbert_max_diff(model, params, TEXTS, peer_encodings(lib, folder, work)), written_by


def colbert_export_diff(lib: str, work: Path) -> tuple[float, str]:
    from jaxir.methods.colbert import ColBERTModel
    from jaxir.methods.colbert_config import ColBERTConfig
    from jaxir.models.bert import BertConfig
    from jaxir.interop import export_model

    model = ColBERTModel(ColBERTConfig(dim=32), bert_config=BertConfig.tiny())
    params = toy_params(model, 3)
    folder = export_model(model, params, fmt=lib, out=work / f"{lib}-export", force=True)
    enc = peer_encodings(lib, folder, work)
    return colbert_max_diff(model, params, TEXTS, enc), str(enc["version"])


def main() -> int:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args()
    from jaxir.text.model_dir import default_model_dir

    base = default_model_dir()
    work = args.work or Path(tempfile.mkdtemp(prefix="interop-"))
    work.mkdir(parents=True, exist_ok=True)
    st, tf = version("sentence-transformers"), version("transformers")
    rows = []
    for lib in ("pylate", "colbert-ai"):
        diff, who = colbert_import_diff(lib, base, work)
        rows.append((lib, "import", who, diff))
        diff, who = colbert_export_diff(lib, work)
        rows.append((lib, "export", who, diff))
    mlm = write_hf_mlm(base, work / "mlm-written")
    rows.append(("hf-mlm (+ idf.json)", "import", f"{tf} writes, {st} SparseEncoder reads", sparse_import_diff(mlm)))
    rows.append(("sentence-transformers SparseEncoder (Router)", "import", st,
                 sparse_router_import_diff(write_st_router(mlm, work / "router-written"))))
    rows.append(("hf-mlm (+ idf.json)", "export", f"{st} SparseEncoder", sparse_export_diff(work)))
    rows.append(("sentence-transformers CrossEncoder", "import", st,
                 ce_import_diff(write_st_cross_encoder(base, work / "ce-written"))))
    rows.append(("sentence-transformers CrossEncoder (BertForSequenceClassification)", "export", st,
                 ce_export_diff(work)))
    rows.append(("sentence-transformers CrossEncoder (Transformer, Pooling cls, Dense)", "export", st,
                 ce_export_diff(work, pooler=False)))
    print("| layout | direction | library | max abs diff |\n|---|---|---|---|")
    for layout, direction, who, diff in rows:
        print(f"| {layout} | {direction} | {who} | {diff:.2e} |")
    return 0 if all(r[3] <= 1e-4 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
