"""`jaxir index --append`: bring an index up to a grown corpus without a rebuild.

The documents of the corpus the index does not hold are encoded by the index's own model and
appended with the index's codec (`jaxir.index.plaid_update`); the corpus record (`built_from`) is
then the new corpus's, so `jaxir eval` takes the index for it. Refused, before anything is
encoded: an index holding documents the corpus lacks (an append only adds) or whose documents'
texts changed since they were indexed (the corpus record tells), a given build option other than
the index's (options not given take the index's), another model (its fingerprint), model or
data files whose contents differ from those the index records (a file-valued option compares by
what it holds, `built_from.FILE_OPTIONS`, whether given or taken from the index), and methods
that cannot append.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from jaxir.errors import DataError, OptionError
from jaxir.eval.beir import corpus_fingerprint
from jaxir.fs_lock import writer_lock
from jaxir.index.manifest import BUILT_FROM, MANIFEST, read_manifest
from jaxir.index.store import load_index
from jaxir.pipeline.built_from import WEIGHT_OPTIONS, FILE_OPTIONS, build_settings, contents, identity


def append_at(retriever, dataset, out: str | Path, *, given=frozenset()) -> tuple[int, float]:
    """(documents appended, seconds) for the index at `out` and the corpus of `dataset`. Build
    options not in `given` (those the command line set) take the index's values, as `jaxir eval`
    does; given ones must equal them."""
    out = Path(out)
    if not hasattr(retriever, "append"):
        raise OptionError(f"--append: the {retriever.name} index cannot grow in place; rebuild it "
                          "with jaxir index --force")
    with writer_lock(out, marker=MANIFEST):  # held from the check to the swap: no writer between
        if not (out / MANIFEST).is_file():
            raise OptionError(f"--append: {out} holds no index; build one first (without --append)")
        manifest = read_manifest(out)
        if manifest.get("method") != retriever.index_kind:
            raise OptionError(f"--append: {out} holds a {manifest.get('method')!r} index, not a "
                              f"{retriever.index_kind!r} one")
        recorded = manifest.get(BUILT_FROM)
        if recorded is None or "settings" not in recorded:
            raise DataError(f"--append: {out} records no corpus or build settings (an index changed by "
                            "a library call, or built before jaxir kept them); rebuild it with --force")
        retriever = _with_index_settings(retriever, recorded["settings"], out, given,
                                         by_content="contents" in recorded)
        have = load_index(out, verify=False).arrays["doc_ids"].tolist()
        lacking = sorted(set(have) - set(dataset.corpus))
        if lacking:
            raise DataError(f"--append: {out} holds {len(lacking)} documents {dataset.name}'s corpus lacks "
                            f"(first: {lacking[0]!r}); an append only adds documents")
        held = set(have)
        old = [d for d in dataset.doc_ids if d in held]
        if corpus_fingerprint(old, [dataset.text_of(d) for d in old]) != recorded.get("corpus_sha256"):
            raise DataError(f"--append: the documents {out} already holds have other texts (or another "
                            f"order) in {dataset.name} than when they were indexed: rebuild it with --force")
        new = [d for d in dataset.doc_ids if d not in held]
        if not new:
            return 0, 0.0
        _check_contents(retriever, recorded, out)
        t = time.perf_counter()
        record = {**identity(retriever, dataset), "appended_docs": len(new)}
        retriever.append(out, new, [dataset.text_of(d) for d in new], fields={BUILT_FROM: record})
        return len(new), time.perf_counter() - t


def _with_index_settings(retriever, recorded: dict, out: Path, given, *, by_content: bool = False):
    """`retriever` with the index's build settings for the options not given; a given one that
    differs is refused (its documents would be encoded unlike the index's). by_content (the
    record has contents): given file-valued options are compared by what they hold afterwards
    (`_check_contents`), not by path."""
    unset = {}
    for name, value in build_settings(retriever).items():
        if name in WEIGHT_OPTIONS or name not in recorded:  # weights: checked by fingerprint
            continue
        if by_content and name in given and name in FILE_OPTIONS:
            continue
        if name in given and recorded[name] != value:
            raise OptionError(f"--append: {out} was built with {name}={recorded[name]!r}, this command "
                              f"asks for {value!r}: drop the option to append with the index's")
        if name not in given:
            unset[name] = recorded[name]
    return dataclasses.replace(retriever, **unset)


def _check_contents(retriever, recorded: dict, out: Path) -> None:
    """Every file-valued option set now must hold what the index records (records of older jaxir
    versions have no contents: their paths were compared above, as then)."""
    if "contents" not in recorded:
        return
    held, now = recorded["contents"], contents(retriever)
    for name, digest in now.items():
        if held.get(name) != digest:
            path = build_settings(retriever)[name]
            raise OptionError(f"--append: {out} was built with {name}={recorded['settings'].get(name)} "
                              f"(sha256 {str(held.get(name))[:12]}), {path} now holds sha256 {str(digest)[:12]}: "
                              "documents appended with it would be encoded unlike the index's; rebuild it with --force")
