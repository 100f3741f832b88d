"""On-disk index format: round trip, atomic replace, and every corruption case raising IndexFormatError."""
import json

import numpy as np
import pytest

from jaxir.errors import IndexFormatError
from jaxir.index import store
from jaxir.index.manifest import FORMAT_VERSION
from jaxir.index.store import load_index, save_index


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "embeddings": rng.standard_normal((37, 8)).astype(np.float32),
        "offsets": np.cumsum(rng.integers(0, 5, 11)).astype(np.int64),
        "doc_ids": np.array([f"doc-{i}-é" for i in rng.permutation(37)]),
        "empty": np.zeros(0, np.int32),
    }


def _save(path, arrays=None, **kw):
    kw = {"method": "dense", "model_fingerprint": "minilm:abc", "meta": {"dim": 8}, **kw}
    return save_index(path, arrays if arrays is not None else _arrays(), **kw)


def test_round_trip_memory_maps_every_array(tmp_path):
    arrays = _arrays()
    _save(tmp_path / "idx", arrays)
    loaded = load_index(tmp_path / "idx", method="dense", model_fingerprint="minilm:abc")
    assert loaded.meta == {"dim": 8}
    assert loaded.manifest["format_version"] == FORMAT_VERSION
    assert set(loaded.arrays) == set(arrays)
    for name, a in arrays.items():
        np.testing.assert_array_equal(loaded.arrays[name], a)
        assert loaded.arrays[name].dtype == a.dtype
        entry = loaded.manifest["arrays"][name]
        assert entry["shape"] == list(a.shape) and entry["nbytes"] == a.nbytes
    assert isinstance(loaded.arrays["doc_ids"], np.memmap)  # unicode arrays map too
    assert isinstance(loaded.arrays["embeddings"], np.memmap)
    in_memory = load_index(tmp_path / "idx", mmap=False)
    assert not isinstance(in_memory.arrays["embeddings"], np.memmap)


def test_replace_swaps_whole_index_and_leaves_no_temp_dirs(tmp_path):
    _save(tmp_path / "idx", _arrays(0))
    new = _arrays(1)
    new.pop("empty")
    _save(tmp_path / "idx", new, meta={"v": 2})
    loaded = load_index(tmp_path / "idx")
    assert set(loaded.arrays) == set(new) and loaded.meta == {"v": 2}
    np.testing.assert_array_equal(loaded.arrays["embeddings"], new["embeddings"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # nor the lock (see jaxir.fs_lock)


def test_failed_save_keeps_old_index(tmp_path, monkeypatch):
    old = _arrays(0)
    _save(tmp_path / "idx", old)
    calls = []

    def failing_write(folder, name, array):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(folder, name, array)

    original = store.write_array
    monkeypatch.setattr(store, "write_array", failing_write)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path / "idx", _arrays(1))
    np.testing.assert_array_equal(load_index(tmp_path / "idx").arrays["embeddings"], old["embeddings"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    with pytest.raises(TypeError):
        _save(tmp_path / "idx", _arrays(1), meta={"bad": object()})
    with pytest.raises(ValueError, match="object"):
        _save(tmp_path / "idx", {"x": np.array([1, "a"], dtype=object)})
    np.testing.assert_array_equal(load_index(tmp_path / "idx").arrays["embeddings"], old["embeddings"])


def test_refuses_to_overwrite_a_folder_that_is_not_an_index(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("keep me")
    with pytest.raises(IndexFormatError, match="not an index"):
        _save(tmp_path / "data")
    assert (tmp_path / "data" / "precious.txt").read_text() == "keep me"


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(IndexFormatError, match="no index folder"):
        load_index(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexFormatError, match="manifest.json is missing"):
        load_index(tmp_path / "empty")


def _edit_manifest(path, **changes):
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_bad_json_version_method_and_fingerprint(tmp_path):
    path = _save(tmp_path / "idx")
    with pytest.raises(IndexFormatError, match="another"):
        load_index(path, method="another")
    with pytest.raises(IndexFormatError, match="minilm:abc.*minilm:xyz"):
        load_index(path, model_fingerprint="minilm:xyz")
    _edit_manifest(path, format_version=FORMAT_VERSION + 1)
    with pytest.raises(IndexFormatError, match="format_version 2"):
        load_index(path)
    (path / "manifest.json").write_text('{"format_version": 1, "arr')
    with pytest.raises(IndexFormatError, match="not valid JSON"):
        load_index(path)


def test_missing_truncated_and_edited_arrays(tmp_path):
    path = _save(tmp_path / "idx")
    file = path / "embeddings.npy"
    data = file.read_bytes()

    file.write_bytes(data[:-5])
    with pytest.raises(IndexFormatError, match="embeddings.npy.*truncated"):
        load_index(path)

    edited = bytearray(data)
    edited[-3] ^= 0xFF
    file.write_bytes(bytes(edited))
    with pytest.raises(IndexFormatError, match="embeddings.npy.*sha256"):
        load_index(path)
    loaded = load_index(path, verify=False)  # same size and header: only the checksum can tell
    assert not np.array_equal(loaded.arrays["embeddings"], _arrays()["embeddings"])

    header_edit = data.replace(b"(37, 8)", b"(38, 8)")
    assert header_edit != data
    file.write_bytes(header_edit)
    with pytest.raises(IndexFormatError, match="embeddings.npy holds"):
        load_index(path, verify=False)

    file.unlink()
    with pytest.raises(IndexFormatError, match="embeddings.npy.*missing"):
        load_index(path)


@pytest.mark.parametrize("edit", [
    lambda m: m.update(method="bm25-other"),
    lambda m: m["meta"].update(n_docs=12),
    lambda m: m["arrays"][next(iter(m["arrays"]))].update(sha256="0" * 64),
])
def test_an_edited_manifest_is_refused_at_open(tmp_path, edit):
    path = _save(tmp_path / "idx")
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="was edited after it was written"):
        load_index(path, verify=False)


def test_a_manifest_without_digest_still_opens(tmp_path):
    """Indexes written before the digest existed stay readable (and the arrays stay checksummed)."""
    from jaxir.index.manifest import DIGEST

    path = _save(tmp_path / "idx")
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest[DIGEST]
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert load_index(path).manifest["method"] == manifest["method"]
