"""I³ vs the plain dual encoder, side by side in one process: query latency (query text ->
top-k from a flat index of the same size) and passage-encoding throughput.

The two share the query tower's shape and the index kind, so the claim to check is equal query
latency; the passage side of I³ adds the reconstructor (one decoder layer over Lq tokens) and the
interactor (one layer over 2 tokens) per passage, so its encoding throughput ratio is < 1.
Models: the I³ and plain model folders (`--i3`, `--plain`, from `jaxir train --recipe i3`), or
with neither given the untrained I³ and plain models of the default config (same cost).

Queries are timed one at a time, interleaved (the order of the two alternating by query), over
`--repeats` passes; passages are encoded in `--passages`-sized corpora, interleaved by repeat.

    python -m benchmarks.speed.bench_i3 [--data ../shared/data/beir/scifact] [--i3 runs/i3-scifact/i3]
        [--plain runs/plain-scifact/i3] [--passages 512] [--repeats 3] [--k 10]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from benchmarks import BEIR

DEFAULT_DATA = BEIR / "scifact"


def load(folder: str | None, interaction: bool):
    import jax

    from jaxir.methods.i3 import I3Model
    from jaxir.methods.i3_config import I3Config
    from jaxir.retrievers.i3 import CHECKPOINTS

    if folder:
        return CHECKPOINTS.load_model(folder, {})
    model = I3Model(dataclasses.replace(I3Config(), implicit_interaction=interaction))
    return model, model.init(jax.random.PRNGKey(0))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--i3", default=None, help="I³ model folder (default: untrained)")
    ap.add_argument("--plain", default=None, help="plain dual-encoder model folder (default: untrained)")
    ap.add_argument("--passages", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args(argv)

    from jaxir.eval.beir import load_beir
    from jaxir.index.flat import FlatIndex

    data = load_beir(args.data, "test")
    texts = data.doc_texts()[: args.passages]
    queries = list(data.queries.values())
    systems = {"i3": load(args.i3, True), "plain": load(args.plain, False)}
    assert systems["i3"][0].config.implicit_interaction and not systems["plain"][0].config.implicit_interaction
    # Passage throughput; the first call per system compiles (not timed).
    enc = {name: [] for name in systems}
    indexes = {}
    for name, (model, params) in systems.items():
        model.encode_passage_texts(params, texts[:64], progress=False)
    for rep in range(args.repeats):
        for name in (list(systems) if rep % 2 == 0 else list(systems)[::-1]):
            model, params = systems[name]
            start = time.perf_counter()
            vectors = model.encode_passage_texts(params, texts, progress=False)
            enc[name].append(time.perf_counter() - start)
            # The same full-corpus-sized index for both: these vectors tiled to the corpus size.
            reps = -(-len(data.doc_ids) // len(vectors))
            indexes[name] = FlatIndex(np.tile(vectors, (reps, 1))[: len(data.doc_ids)],
                                      np.asarray(data.doc_ids, dtype=str))
    lat = {name: [] for name in systems}
    for name, (model, params) in systems.items():
        # One query per call: rows are padded to batch_size, so a search-time batch of 1.
        model.config = dataclasses.replace(model.config, batch_size=1)
        model.encode_query_texts(params, queries[:2], progress=False)
    for rep in range(args.repeats):
        for i, q in enumerate(queries):
            order = list(systems) if (i + rep) % 2 == 0 else list(systems)[::-1]
            for name in order:
                model, params = systems[name]
                start = time.perf_counter()
                indexes[name].search(model.encode_query_texts(params, [q], progress=False), args.k)
                lat[name].append(time.perf_counter() - start)
    report = {"passages": len(texts), "queries": len(queries), "repeats": args.repeats,
              "corpus": len(data.doc_ids)}
    for name in systems:
        report[f"{name}_passages_per_s"] = len(texts) / float(np.median(enc[name]))
        report[f"{name}_query_ms_median"] = 1e3 * float(np.median(lat[name]))
        report[f"{name}_query_ms_p99"] = 1e3 * float(np.percentile(lat[name], 99))
    report["throughput_ratio_i3_over_plain"] = report["i3_passages_per_s"] / report["plain_passages_per_s"]
    report["query_latency_ratio_i3_over_plain"] = report["i3_query_ms_median"] / report["plain_query_ms_median"]
    for key, value in report.items():
        print(f"{key:36s} {value:.4g}" if isinstance(value, float) else f"{key:36s} {value}")
    return report


if __name__ == "__main__":
    main()
