"""What an index was built from, recorded in its manifest and checked before it is used.

Every index that `jaxir index` or `jaxir eval` builds carries, next to the model fingerprint its
retriever checks at open, a `built_from` record::

    {"corpus_sha256": sha256 of the corpus's (id, text) pairs, "n_docs": N,
     "settings": {build option: value},       (search-only options are not build settings)
     "contents": {file-valued option: sha256 of what it names}}

A file-valued option (FILE_OPTIONS: a model folder, an idf.json) is compared by `contents`,
never by its path (`jaxir.models.hf.content_digest`: a file's bytes; a folder's config, tokenizer
and weight files), so a config.json, tokenizer or idf.json rewritten in place is another index,
and the same files at another path are the same one. An index is used only for the corpus it
was built from (`--allow-corpus-mismatch` overrides, with a warning naming both digests) and
only with the build settings the command asks for (options left unset take the index's). The
eval cache folder is keyed on the same record (corpus, settings, contents), so a corpus or model
rewritten in place gets a new index instead of the old one. `jaxir index --out` reuses an index
there only when the record and the model match exactly. Records of older jaxir versions have no
`contents`: their file-valued options compare by path, as they did then.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from jaxir.errors import IndexFormatError, OptionError
from jaxir.fs import replace_folder, temp_folder_beside
from jaxir.fs_lock import writer_lock
from jaxir.index.manifest import BUILT_FROM, MANIFEST, read_manifest, stamp_manifest

WEIGHT_OPTIONS = ("checkpoint", "model")  # also checked by the model fingerprint at open
# Build options that name a file or folder: keyed by what they hold (`content_digest`), not by path.
FILE_OPTIONS = (*WEIGHT_OPTIONS, "idf")


def build_settings(retriever) -> dict:
    """The retriever's options that change what its index holds (not the search-only ones)."""
    return {f.name: json.loads(json.dumps(getattr(retriever, f.name), default=str))
            for f in dataclasses.fields(retriever) if f.repr and f.init}


def contents(retriever) -> dict:
    """{file-valued build option that is set: `content_digest` of what it names}."""
    from jaxir.models.hf import content_digest

    settings = build_settings(retriever)
    return {name: content_digest(settings[name]) for name in FILE_OPTIONS if settings.get(name) is not None}


def retriever_key(retriever) -> dict:
    """What a retriever's output depends on, paths left out: method, build settings other than
    file-valued ones, and the contents of those (index cache folders and mined negatives are
    keyed on it)."""
    return {"method": retriever.name,
            "settings": {k: v for k, v in build_settings(retriever).items() if k not in FILE_OPTIONS},
            "contents": contents(retriever)}


def identity(retriever, dataset) -> dict:
    return {"corpus_sha256": dataset.corpus_fingerprint, "n_docs": len(dataset.corpus),
            "settings": build_settings(retriever), "contents": contents(retriever)}


def default_index_dir(cache: Path, dataset, retriever, want: dict | None = None) -> Path:
    """A cache folder keyed by the corpus's content, the retriever's build settings and the
    contents of its file-valued options (`want`: its `identity`, when already computed)."""
    want = want or identity(retriever, dataset)
    settings = {k: v for k, v in want["settings"].items() if k not in FILE_OPTIONS}
    key = json.dumps([dataset.name, want["corpus_sha256"], retriever.name, settings, want["contents"]],
                     sort_keys=True)
    return Path(cache) / f"{dataset.name}-{retriever.name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def build_index(retriever, dataset, index_dir: Path, *, if_present=None, want: dict | None = None) -> float:
    """Build the index in a folder of its own, stamp it with `built_from`, then swap it in over
    any old index at `index_dir`, holding that path's writer lock throughout; returns the build's
    seconds (0.0: kept). `if_present(index_dir) -> bool`, asked once the lock is held and only if
    an index is there then (another writer just finished one, or a crashed swap was rolled
    back): True keeps it, False rebuilds, an exception refuses."""
    index_dir = Path(index_dir)
    with writer_lock(index_dir, marker=MANIFEST):
        if if_present is not None and (index_dir / MANIFEST).is_file() and if_present(index_dir):
            return 0.0
        t = time.perf_counter()
        stage = temp_folder_beside(index_dir)
        try:
            built = stage / "index"
            retriever.build(dataset.doc_ids, dataset.doc_texts(), built)
            stamp_manifest(built, {BUILT_FROM: want or identity(retriever, dataset)})
            replace_folder(built, index_dir, marker=MANIFEST, what="an index folder", check=read_manifest)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return time.perf_counter() - t


def mismatch(index_dir: Path, retriever, dataset, *, check: frozenset | None = None,
             want: dict | None = None) -> tuple[str, str] | None:
    """(kind, why) the index at `index_dir` is not `retriever`'s over `dataset`, or None. kind
    "corpus": no record, or another corpus; "settings": a build setting differs, or what a
    file-valued one holds. check: the settings compared (None: every one, unset ones and model
    folders included; the eval compares only the options its command line gave, so the others
    take the index's). want: the retriever's `identity`, when already computed."""
    why = corpus_mismatch(index_dir, dataset)
    if why is not None:
        return "corpus", why
    recorded = read_manifest(index_dir)[BUILT_FROM]
    have, want = recorded.get("settings", {}), want or identity(retriever, dataset)
    by_content = "contents" in recorded  # older records: file-valued options compare by path
    for name, value in want["settings"].items():
        if (check is None or name in check) and not (by_content and name in FILE_OPTIONS) and have.get(name) != value:
            return "settings", f"{index_dir} was built with {name}={have.get(name)!r}, this command asks for {value!r}"
    if by_content:
        held = recorded["contents"]
        for name in FILE_OPTIONS:
            if (check is None or name in check) and held.get(name) != want["contents"].get(name):
                return "settings", _content_change(index_dir, name, have.get(name), held.get(name),
                                                   want["settings"].get(name), want["contents"].get(name))
    return None


def _content_change(index_dir, name, old_path, old, new_path, new) -> str:
    """Why a file-valued option's contents differ from the index's, in one line."""
    def what(path, digest):
        if path is None:
            return "none"
        return f"{path} (sha256 {digest[:12]})" if digest else f"{path} (nothing there)"
    same = old_path is not None and old_path == new_path
    return (f"{index_dir} was built with {name}={what(old_path, old)}, this command asks for "
            f"{what(new_path, new)}" + ("; the files at that path changed since it was built" if same else ""))


def corpus_mismatch(index_dir: Path, dataset) -> str | None:
    """Why the index at `index_dir` is not of `dataset`'s corpus (no record, or another one)."""
    recorded = read_manifest(index_dir).get(BUILT_FROM)
    if recorded is None:
        return (f"{index_dir} records no corpus fingerprint (built before jaxir kept one, or by a "
                "bare library call): rebuild it with jaxir index --force")
    if recorded.get("corpus_sha256") != dataset.corpus_fingerprint:
        return (f"{index_dir} was built from another corpus ({recorded.get('n_docs')} docs, sha256 "
                f"{str(recorded.get('corpus_sha256'))[:12]}) than {dataset.name}'s "
                f"({len(dataset.corpus)} docs, sha256 {dataset.corpus_fingerprint[:12]})")
    return None


def _model_mismatch(index_dir: Path, retriever) -> str | None:
    """The retriever's own check of the index (the model fingerprint), as a reason or None."""
    try:
        (getattr(retriever, "open_reranker", None) or retriever.open)(index_dir)
    except IndexFormatError as e:
        return str(e)
    return None


def _cache_is_current(index_dir: Path, retriever, dataset, want: dict | None = None) -> bool:
    """A cache folder is reused only if corpus, settings, the contents of file-valued options
    and the model all match (else rebuilt)."""
    try:
        return (mismatch(index_dir, retriever, dataset, want=want) is None
                and _model_mismatch(index_dir, retriever) is None)
    except IndexFormatError:
        return False


def _accept_given(retriever, dataset, given: frozenset, allow_corpus_mismatch: bool, want: dict):
    """The check of an index at a folder the user named (--index): of this corpus, with the
    options the command gave (a model folder by what it holds; by path in older records, where
    model folders are left to the fingerprint check at open); another corpus only with the
    override (and a warning)."""
    def accept(index_dir: Path) -> bool:
        check = given if "contents" in read_manifest(index_dir).get(BUILT_FROM, {}) else given - set(WEIGHT_OPTIONS)
        found = mismatch(index_dir, retriever, dataset, check=check, want=want)
        if found is None:
            return True
        kind, why = found
        if kind == "settings":
            raise IndexFormatError(f"{why}: drop the option to use the index as built, or rebuild it")
        if not allow_corpus_mismatch:
            raise IndexFormatError(f"{why} (--allow-corpus-mismatch to use it anyway)")
        print(f"warning: --allow-corpus-mismatch: {why}", file=sys.stderr)
        return True
    return accept


def index_for(retriever, dataset, index_dir: Path | None, cache: Path, *, given=(),
              allow_corpus_mismatch: bool = False) -> tuple[Path, float]:
    """(folder, build seconds) of `retriever`'s index of `dataset`. No `index_dir`: the cache
    folder (keyed on corpus and settings), reused only if it is current, else rebuilt. A given
    `index_dir` is built if empty; an index there (also one that appears while waiting for its
    lock) must be of this corpus and agree with the options in `given`."""
    want = identity(retriever, dataset)  # digests computed once per call
    if index_dir is None:
        index_dir = default_index_dir(cache, dataset, retriever, want)
        if (index_dir / MANIFEST).is_file() and _cache_is_current(index_dir, retriever, dataset, want):
            return index_dir, 0.0
        current = lambda d: _cache_is_current(d, retriever, dataset, want)  # noqa: E731
        return index_dir, build_index(retriever, dataset, index_dir, if_present=current, want=want)
    index_dir = Path(index_dir)
    accept = _accept_given(retriever, dataset, frozenset(given), allow_corpus_mismatch, want)
    if index_dir.exists() and not (index_dir / MANIFEST).is_file():
        raise IndexFormatError(f"{index_dir} exists and is not a jaxir index (no {MANIFEST})")
    if index_dir.exists():
        accept(index_dir)
        return index_dir, 0.0
    return index_dir, build_index(retriever, dataset, index_dir, if_present=accept, want=want)


def check_out(out: Path, *, force: bool = False) -> None:
    """`jaxir index --out`: whatever is already at `out` must be a jaxir index (its manifest's
    identity fields and digest check out, as at open), and (with `force`, which replaces it) a
    real folder, not a link; else an OptionError naming what is there. Nothing is changed."""
    if not (out.exists() or out.is_symlink()):
        return
    try:
        read_manifest(out)
    except IndexFormatError as e:
        raise OptionError(f"--out {out} exists and is not an index ({e}): refusing to replace it") from None
    if force and out.is_symlink():
        raise OptionError(f"--out {out} is a symbolic link to an index: refusing to replace it "
                          "(give the folder it points to)")


def index_at(retriever, dataset, out: Path, *, force: bool = False) -> tuple[str, float]:
    """`jaxir index --out`: ("built" | "reused", seconds). An index at `out` (there before, or
    finished by another writer while this one waited) is reused only when corpus, every build
    setting, what every file-valued option holds and the model match; a different one needs
    `force`."""
    out = Path(out)
    check_out(out, force=force)
    want = identity(retriever, dataset)

    def identical(index_dir: Path) -> bool:
        found = mismatch(index_dir, retriever, dataset, want=want)
        why = found[1] if found else _model_mismatch(index_dir, retriever)
        if why is None:
            return True
        raise OptionError(f"--out {out} already holds a different index: {why}; pass --force to "
                          "rebuild it (the old one stays in place until the new one is complete)")

    if force:
        return "built", build_index(retriever, dataset, out, want=want)
    if out.exists() and identical(out):
        return "reused", 0.0
    secs = build_index(retriever, dataset, out, if_present=identical, want=want)
    return ("built" if secs else "reused"), secs
