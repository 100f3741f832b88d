"""How much of a gain comes from documents the model was trained on as positives?

SciFact's test queries mostly have positives that are also train positives (196 of 300). A model
that learns a per-document prior ("this abstract was relevant in training") gains on those
queries without ranking better. This splits two runs' per-query nDCG@10 by whether the test
query has a judged positive among the train split's positives, with a paired randomization p in
each part.

    python -m benchmarks.claims.seen_positive_split --data ../shared/data/beir/scifact \
        --run runs/results/i3-scifact.scifact.trec --reference runs/results/plain-scifact.scifact.trec
"""
from __future__ import annotations

import argparse


def read_trec(path: str) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            qid, _, doc, _, score, _ = line.split()
            run.setdefault(qid, {})[doc] = float(score)
    return run


def main(argv=None) -> dict:
    from jaxir.eval.beir import load_beir
    from jaxir.eval.metrics import evaluate
    from jaxir.eval.significance import paired_randomization_test

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="BEIR folder with train and test qrels")
    ap.add_argument("--run", required=True, help="TREC run")
    ap.add_argument("--reference", required=True, help="TREC run it is compared with")
    ap.add_argument("--metric", default="ndcg@10")
    args = ap.parse_args(argv)
    test, train = load_beir(args.data, split="test"), load_beir(args.data, split="train")
    seen_docs = {d for judged in train.qrels.values() for d, g in judged.items() if g > 0}
    scores = [evaluate(read_trec(p), test.qrels, metrics=[args.metric], per_query=True)[1]
              for p in (args.run, args.reference)]
    out = {}
    for part, seen in (("seen positives", True), ("unseen positives", False)):
        qids = [q for q, judged in test.qrels.items()
                if any(d in seen_docs for d, g in judged.items() if g > 0) == seen]
        a, b = ([s[q][args.metric] for q in qids] for s in scores)
        diff, p = paired_randomization_test(a, b)
        out[part] = {"queries": len(qids), "run": sum(a) / len(a), "reference": sum(b) / len(b), "diff": diff, "p": p}
        print(f"{part}: {len(qids)} queries, run {out[part]['run']:.4f}, reference {out[part]['reference']:.4f}, "
              f"{diff:+.4f}, p {p:.4f}")
    return out


if __name__ == "__main__":
    main()
