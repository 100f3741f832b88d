"""`jaxir index --append`: bring an index up to a grown corpus without a rebuild.

The documents of the corpus the index does not hold are encoded by the index's own model and
appended with the index's codec (`jaxir.index.plaid_update`); the corpus record (`built_from`) is
then the new corpus's, so `jaxir eval` takes the index for it. Refused, before anything is
encoded: an index holding documents the corpus lacks (an append only adds), build settings other
than the index's (documents would be encoded differently), another model (the fingerprint check
at open), and methods that cannot append.
"""
from __future__ import annotations

import time
from pathlib import Path

from jaxir.errors import DataError, OptionError
from jaxir.fs import writer_lock
from jaxir.index.store import BUILT_FROM, MANIFEST, load_index, read_manifest
from jaxir.retrievers.built_from import _WEIGHTS, build_settings, identity


def append_at(retriever, dataset, out: str | Path) -> tuple[int, float]:
    """(documents appended, seconds) for the index at `out` and the corpus of `dataset`."""
    out = Path(out)
    if not hasattr(retriever, "append"):
        raise OptionError(f"--append: the {retriever.name} index cannot grow in place; rebuild it "
                          "with jaxir index --force")
    with writer_lock(out, marker=MANIFEST):  # held from the check to the swap: no writer between
        if not (out / MANIFEST).is_file():
            raise OptionError(f"--append: {out} holds no index; build one first (without --append)")
        manifest = read_manifest(out)
        recorded = manifest.get(BUILT_FROM, {}).get("settings")
        if recorded is None:
            raise DataError(f"--append: {out} records no build settings; rebuild it with jaxir index --force")
        for name, value in build_settings(retriever).items():
            if name not in _WEIGHTS and recorded.get(name) != value:  # weights: by fingerprint
                raise OptionError(f"--append: {out} was built with {name}={recorded.get(name)!r}, this "
                                  f"command asks for {value!r}: append with the index's settings")
        have = set(load_index(out, verify=False).arrays["doc_ids"].tolist())
        lacking = sorted(have - set(dataset.corpus))
        if lacking:
            raise DataError(f"--append: {out} holds {len(lacking)} documents {dataset.name}'s corpus lacks "
                            f"(first: {lacking[0]!r}); an append only adds documents")
        new = [d for d in dataset.doc_ids if d not in have]
        if not new:
            return 0, 0.0
        t = time.perf_counter()
        record = {**identity(retriever, dataset), "appended_docs": len(new)}
        retriever.append(out, new, [dataset.text_of(d) for d in new], fields={BUILT_FROM: record})
        return len(new), time.perf_counter() - t
