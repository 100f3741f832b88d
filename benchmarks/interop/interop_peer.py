"""Run inside a peer library's own venv (see benchmarks/harness/peer_venv.py): write a checkpoint with
the library itself, or encode texts with a checkpoint through the library, for the parity checks
of benchmarks/interop/interop_parity.py and tests/interop/test_interop_peers.py (`interop_parity.peer`
runs it, from the repository root, with the peer venv's python).

    python -m benchmarks.interop.interop_peer write  {pylate,colbert-ai} --base BERT_DIR --out DIR [--seed 0]
    python -m benchmarks.interop.interop_peer encode {pylate,colbert-ai} --checkpoint DIR --texts T.json --out E.npz
    python -m benchmarks.interop.interop_peer search pylate --checkpoint DIR --texts C.json --index-dir I \\
        --k 100 --out R.trec

C.json is {"doc_ids", "docs", "query_ids", "queries"}: PyLate encodes the documents, indexes
them with its PLAID (the vendored Stanford backend, nbits 2, search settings chosen by k) and
writes the top-k of each query as a TREC run.

T.json is {"queries": [...], "docs": [...]}; E.npz holds q [Nq, Lq, dim] and, per document,
d_<i> [n_tok_i, dim] (the tokens the library keeps) plus "version" (the library's version).
No jaxir import: this runs where jaxir is not installed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def version(lib: str) -> str:
    from importlib.metadata import version as v

    return f"{lib} {v('pylate' if lib == 'pylate' else 'colbert-ai')}"


def write(lib: str, base: str, out: str, seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    if lib == "pylate":
        from pylate import models

        models.ColBERT(model_name_or_path=base, device="cpu").save(out)
    else:
        from colbert.infra import ColBERTConfig
        from colbert.modeling.base_colbert import BaseColBERT

        BaseColBERT(base, colbert_config=ColBERTConfig(query_maxlen=32, doc_maxlen=180, dim=128)).save(out)


def encode(lib: str, checkpoint: str, texts: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    queries, docs = texts["queries"], texts["docs"]
    if lib == "pylate":
        from pylate import models

        model = models.ColBERT(model_name_or_path=checkpoint, device="cpu")
        q = np.stack([np.asarray(x, np.float32) for x in model.encode(queries, is_query=True)])
        d = [np.asarray(x, np.float32) for x in model.encode(docs, is_query=False)]
    else:
        from colbert.infra import ColBERTConfig
        from colbert.modeling.checkpoint import Checkpoint

        ckpt = Checkpoint(checkpoint, colbert_config=ColBERTConfig.load_from_checkpoint(checkpoint))
        with torch.no_grad():
            q = ckpt.queryFromText(queries).float().numpy()
            d = [x.float().numpy() for x in ckpt.docFromText(docs, keep_dims=False)]
    return {"q": q, **{f"d_{i}": x for i, x in enumerate(d)}, "version": np.array(version(lib))}


def search(checkpoint: str, texts: dict, index_dir: str, k: int, out: str) -> None:
    import time

    import torch
    from pylate import indexes, models, retrieve

    torch.manual_seed(0)
    model = models.ColBERT(model_name_or_path=checkpoint, device="cpu")
    start = time.perf_counter()
    docs = model.encode(texts["docs"], is_query=False, batch_size=32, show_progress_bar=True)
    encode_s = time.perf_counter() - start
    index = indexes.PLAID(index_folder=index_dir, index_name="scifact", override=True, use_fast=False,
                          nbits=2)
    index.add_documents(documents_ids=texts["doc_ids"], documents_embeddings=docs)
    queries = model.encode(texts["queries"], is_query=True, batch_size=32)
    hits = retrieve.ColBERT(index=index).retrieve(queries_embeddings=queries, k=k)
    with open(out, "w", encoding="utf-8") as f:
        for qid, ranked in zip(texts["query_ids"], hits):
            for rank, hit in enumerate(ranked, start=1):
                f.write(f"{qid} Q0 {hit['id']} {rank} {float(hit['score']):.6f} pylate\n")
    print(json.dumps({"encode_docs_s": encode_s, "total_s": time.perf_counter() - start,
                      "version": version("pylate")}))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=["write", "encode", "search"])
    ap.add_argument("lib", choices=["pylate", "colbert-ai"])
    ap.add_argument("--base")
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint")
    ap.add_argument("--texts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--index-dir")
    ap.add_argument("--k", type=int, default=100)
    a = ap.parse_args()
    if a.action == "write":
        write(a.lib, a.base, a.out, a.seed)
        print(version(a.lib))
    elif a.action == "encode":
        texts = json.load(open(a.texts, encoding="utf-8"))
        np.savez(a.out, **encode(a.lib, a.checkpoint, texts))
    else:
        search(a.checkpoint, json.load(open(a.texts, encoding="utf-8")), a.index_dir, a.k, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
