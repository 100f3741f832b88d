"""A PyLate-layout ColBERT built from MiniLM, evaluated on SciFact test by PyLate and by jaxir.

    python -m benchmarks.interop.interop_pylate_scifact --data ../shared/data/beir/scifact --out runs/interop-scifact

PyLate (its own venv) writes `ColBERT(all-MiniLM-L6-v2)` (a seeded, untrained 384->128 Dense),
encodes the corpus, indexes it with its PLAID (vendored Stanford backend, nbits 2) and writes the
top 100 per test query. jaxir reads the same folder (`jaxir eval --method colbert --checkpoint`),
with its PLAID (nbits 2) and exhaustively over the decompressed vectors. Then both encoders embed
the whole corpus in float32 (no index): the max abs difference of every vector, and exhaustive
MaxSim over each side's vectors (the engines' difference, with the encoders' taken out). Runs and
indexes in --out are reused when present. The same jaxir evaluator (pytrec_eval semantics)
scores every run; the paired randomisation test compares them per query. The steps run one
after the other (never two CPU-heavy jobs at once).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.interop.interop_parity import peer


def jaxir_eval(checkpoint: Path, data: Path, out: Path, name: str, *extra: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jaxir.cli", "eval", "--method", "colbert", "--checkpoint",
                    str(checkpoint), "--data", str(data), "--split", "test", "--k", "100",
                    "--cache", str(out / "indexes"), "--run", str(out / f"{name}.trec"),
                    "--output-json", str(out / f"{name}.json"), *extra], check=True)
    return time.perf_counter() - start


def exact_maxsim_run(q: np.ndarray, docs: list, doc_ids: list, query_ids: list, k: int = 100) -> dict:
    """Exhaustive float32 MaxSim of every query against every document -> {qid: {doc: score}}
    (the index runtime's `segment_maxsim`, the same function for both sides' vectors)."""
    from jaxir.index.exact import segment_maxsim

    lens, flat = np.array([len(d) for d in docs]), np.concatenate(docs)
    run = {}
    for qid, qv in zip(query_ids, q):
        scores = segment_maxsim(qv @ flat.T, lens)
        top = np.argsort(-scores, kind="stable")[:k]
        run[qid] = {doc_ids[i]: float(scores[i]) for i in top}
    return run


def exact_comparison(folder: Path, texts: dict, out: Path) -> dict:
    """Both encoders over the whole corpus (float32, no index): max abs difference of every
    query and document vector, and nDCG@10 of exhaustive MaxSim over each side's vectors."""
    from jaxir.interop import load_foreign

    enc = out / "texts.exact.json"
    enc.write_text(json.dumps({"queries": texts["queries"], "docs": texts["docs"]}))
    npz = out / "pylate-vectors.npz"
    if not npz.is_file():
        peer("pylate", "encode", "pylate", "--checkpoint", str(folder), "--texts", str(enc), "--out", str(npz))
    theirs = np.load(npz)
    their_docs = [theirs[f"d_{i}"] for i in range(len(texts["docs"]))]
    model, params = load_foreign(folder, method="colbert", overrides={})
    our_q = model.encode_query_texts(params, texts["queries"])
    our_docs = model.encode_doc_texts(params, texts["docs"])
    shapes_equal = all(a.shape == b.shape for a, b in zip(our_docs, their_docs))
    diff = max(float(np.abs(our_q - theirs["q"]).max()),
               max(float(np.abs(a - b).max()) for a, b in zip(our_docs, their_docs)) if shapes_equal else float("inf"))
    return {"max_abs_diff": diff, "vectors": int(sum(len(d) for d in our_docs)),
            "runs": {"pylate-exact": exact_maxsim_run(theirs["q"], their_docs, texts["doc_ids"], texts["query_ids"]),
                     "jaxir-exact": exact_maxsim_run(our_q, our_docs, texts["doc_ids"], texts["query_ids"])}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from jaxir.eval.beir import load_beir
    from jaxir.eval.metrics import evaluate
    from jaxir.eval.runs import read_trec
    from jaxir.eval.significance import compare_per_query
    from jaxir.text.model_dir import default_model_dir

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "pylate-colbert"
    if not (folder / "modules.json").is_file():
        print(peer("pylate", "write", "pylate", "--base", str(default_model_dir()), "--out", str(folder)))
    data = load_beir(args.data, split="test")
    texts = {"doc_ids": data.doc_ids, "docs": data.doc_texts(), "query_ids": list(data.qrels),
             "queries": [data.queries[q] for q in data.qrels]}
    (out / "texts.json").write_text(json.dumps(texts))
    timings = {}
    start = time.perf_counter()
    if not (out / "pylate.trec").is_file():
        print(peer("pylate", "search", "pylate", "--checkpoint", str(folder), "--texts", str(out / "texts.json"),
                   "--index-dir", str(out / "pylate-index"), "--k", "100", "--out", str(out / "pylate.trec")))
    timings["pylate"] = time.perf_counter() - start
    for name, extra in (("jaxir-plaid", ()), ("jaxir-exhaustive", ("--exhaustive", "true"))):
        if not (out / f"{name}.trec").is_file():
            timings[name] = jaxir_eval(folder, args.data, out, name, *extra)
        else:
            timings[name] = 0.0
    start = time.perf_counter()
    exact = exact_comparison(folder, texts, out)
    timings["pylate-exact"] = timings["jaxir-exact"] = time.perf_counter() - start
    print(f"float32 vectors of both encoders over the corpus: {exact['vectors']} document vectors, "
          f"max abs diff {exact['max_abs_diff']:.2e}")
    per_query, rows = {}, []
    for name in ("pylate", "jaxir-plaid", "jaxir-exhaustive", "pylate-exact", "jaxir-exact"):
        run = exact["runs"][name] if name in exact["runs"] else read_trec(out / f"{name}.trec")
        means, per_query[name] = evaluate(run, data.qrels, metrics=("ndcg@10", "recall@100"), per_query=True)
        rows.append((name, means["ndcg@10"], means["recall@100"], timings[name]))
    print("| engine | nDCG@10 | R@100 |\n|---|---|---|")
    for name, ndcg, recall, _ in rows:
        print(f"| {name} | {ndcg:.4f} | {recall:.4f} |")
    print("wall s (this invocation; a reused run counts ~0):", {k: round(v) for k, v in timings.items()})
    for a, b in (("jaxir-plaid", "pylate"), ("jaxir-exhaustive", "pylate"), ("jaxir-plaid", "jaxir-exhaustive"),
                 ("jaxir-exact", "pylate-exact"), ("pylate", "pylate-exact"), ("jaxir-plaid", "jaxir-exact")):
        diff, p = compare_per_query(per_query[a], per_query[b], "ndcg@10")
        print(f"{a} - {b}: nDCG@10 {diff:+.4f}, paired p {p:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
