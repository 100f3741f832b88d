"""Readers isolated from writers (issue 39, item 5): an index read while another process swaps it
loads as the old index or the new one, never as a checksum or size error; real damage to the
index in place is still reported as corrupt."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxir.errors import IndexFormatError
from jaxir.index import folder_reads, store
from jaxir.index.manifest import read_manifest
from jaxir.index.store import load_index, save_index

REPO = Path(__file__).resolve().parents[2]

# Generation g: "ids" grows by one row per generation (sizes differ between generations, so a
# file of another generation fails the size check, as a torn read once did), "hidden" marks
# every g-th row (rewritten each time, like a delete), "vectors" is kept (hard-linked, like an
# append or delete that leaves the big array alone) on even generations.
WRITER = r"""
import sys, time
import numpy as np
from jaxir.index.store import load_index, save_index
path, stop_after = sys.argv[1], float(sys.argv[2])
def arrays(g):
    return {"ids": np.arange(100 + g, dtype=np.int64) * (g + 1),
            "hidden": (np.arange(100 + g) % (g % 7 + 2) == 0),
            "vectors": np.full((64, 16), g, np.float32)}
g, end = int(sys.argv[3]), time.monotonic() + stop_after
while time.monotonic() < end:
    g += 1
    a = arrays(g)
    kept = None
    if g % 2 == 0:
        kept = load_index(path, verify=False)
        a["vectors"] = kept.arrays["vectors"]
    save_index(path, a, method="dense", model_fingerprint="m", meta={"gen": g}, kept=kept)
print(g)
"""


def _arrays(g):
    return {"ids": np.arange(100 + g, dtype=np.int64) * (g + 1),
            "hidden": (np.arange(100 + g) % (g % 7 + 2) == 0),
            "vectors": np.full((64, 16), g, np.float32)}


def _consistent(loaded, kept_on_even=True) -> bool:
    """Every array is the one of the manifest's generation (the writer keeps the previous
    generation's "vectors" on even generations)."""
    g = loaded.meta["gen"]
    want = _arrays(g)
    if kept_on_even and g % 2 == 0:
        want["vectors"] = _arrays(g - 1)["vectors"]
    return all(np.array_equal(loaded.arrays[k], v) for k, v in want.items())


def test_reader_sees_old_or_new_index_while_a_writer_swaps_it(tmp_path, monkeypatch):
    retried, real_replaced = [], folder_reads._replaced
    monkeypatch.setattr(folder_reads, "_replaced", lambda *a: retried.append(1) or real_replaced(*a))
    path = tmp_path / "idx"
    save_index(path, _arrays(1), method="dense", model_fingerprint="m", meta={"gen": 1})
    seconds = float(os.environ.get("JAXIR_SWAP_STRESS_S", "3"))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(seconds), "1"],
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    loads, errors, wrong, seen = 0, [], 0, set()
    try:
        while writer.poll() is None:
            try:
                for mmap in (True, False):
                    loaded = load_index(path, method="dense", model_fingerprint="m", mmap=mmap)
                    loads += 1
                    seen.add(loaded.meta["gen"])
                    wrong += not _consistent(loaded)
                    read_manifest(path)
            except (IndexFormatError, OSError) as e:
                errors.append(f"{type(e).__name__}: {e}")
    finally:
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    swaps = int(out.strip()) - 1
    print(f"\nswap stress: {loads} loads, {swaps} swaps, {len(seen)} generations seen, "
          f"{len(errors)} spurious errors, {wrong} inconsistent loads, {len(retried)} reads retried")
    assert not errors, errors[:3]
    assert wrong == 0
    assert swaps > 5 and len(seen) > 2 and loads > 20  # the race was exercised


def test_damage_in_place_is_still_reported_as_corrupt(tmp_path):
    path = save_index(tmp_path / "idx", _arrays(3), method="dense", model_fingerprint="m", meta={"gen": 3})
    file = path / "ids.npy"
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="ids.npy.*sha256.*corrupt"):
        load_index(path)
    file.write_bytes(bytes(data[:-8]))
    with pytest.raises(IndexFormatError, match="ids.npy.*truncated"):
        load_index(path)


def test_a_reader_retries_only_when_the_folder_was_replaced(tmp_path, monkeypatch):
    """A load that fails because the folder it opened was swapped out retries on the new one; one
    that keeps being swapped out gives up with a message that says so, not 'corrupt'."""
    path = save_index(tmp_path / "idx", _arrays(1), method="dense", model_fingerprint="m", meta={"gen": 1})
    real = store.load_array
    swaps = []

    def swap_first(*args, **kw):  # the first array read finds its folder replaced by generation 2
        if not swaps:
            swaps.append(1)
            save_index(path, _arrays(2), method="dense", model_fingerprint="m", meta={"gen": 2})
            raise IndexFormatError("torn read")
        return real(*args, **kw)

    monkeypatch.setattr(store, "load_array", swap_first)
    loaded = load_index(path)
    assert loaded.meta["gen"] == 2 and _consistent(loaded, kept_on_even=False) and swaps == [1]

    def always_swapped(*args, **kw):
        g = json.loads((path / "manifest.json").read_text())["meta"]["gen"] + 1
        save_index(path, _arrays(g), method="dense", model_fingerprint="m", meta={"gen": g})
        raise IndexFormatError("torn read")

    monkeypatch.setattr(store, "load_array", always_swapped)
    started = time.monotonic()
    with pytest.raises(IndexFormatError, match="replaced .* while it was read"):
        load_index(path)
    assert time.monotonic() - started < 5

    def fails_in_place(*args, **kw):  # no swap: the error is the index's own and is not retried
        calls.append(1)
        raise IndexFormatError("really corrupt")

    calls = []
    monkeypatch.setattr(store, "load_array", fails_in_place)
    with pytest.raises(IndexFormatError, match="really corrupt"):
        load_index(path)
    assert calls == [1]
