"""Run inside a peer library's own venv (see benchmarks/peer_venvs.py): write a checkpoint with
the library itself, or encode texts with a checkpoint through the library, for the parity checks
of benchmarks/interop_parity.py and tests/test_interop_peers.py.

    python interop_peer.py write  {pylate,colbert-ai} --base BERT_DIR --out DIR [--seed 0]
    python interop_peer.py encode {pylate,colbert-ai} --checkpoint DIR --texts T.json --out E.npz

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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=["write", "encode"])
    ap.add_argument("lib", choices=["pylate", "colbert-ai"])
    ap.add_argument("--base")
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint")
    ap.add_argument("--texts")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.action == "write":
        write(a.lib, a.base, a.out, a.seed)
        print(version(a.lib))
    else:
        texts = json.load(open(a.texts, encoding="utf-8"))
        np.savez(a.out, **encode(a.lib, a.checkpoint, texts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
