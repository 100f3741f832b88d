"""Issue 39, items 1-2: locks that cannot be turned into a weapon and leave no litter; backups and
temps recognised only by jaxir's own stamp; a folder replaced only when it is a valid jaxir
artifact of the expected kind, and (for `index`, `export-model`) only with --force."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import jaxir
from jaxir.cli import main
from jaxir.errors import IndexFormatError, OptionError
from jaxir.fs import atomic_output, recover_missing, replace_folder, write_text
from jaxir.fs_aside import recover, stamp
from jaxir.fs_lock import UnsafeLock, writer_lock
from tests.toy_beir import write_toy_beir

ENV = {**os.environ, "PYTHONPATH": str(Path(jaxir.__file__).resolve().parents[1])}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_beir(tmp_path_factory.mktemp("toy"))


def _index(toy, out, *extra):
    return ["index", "--method", "bm25", "--data", str(toy), "--split", "train", "--out", str(out), *extra]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _victim(tmp_path) -> tuple[Path, bytes]:
    victim = tmp_path / "elsewhere" / "precious.txt"
    victim.parent.mkdir()
    content = b"the user's own file\n" * 10
    victim.write_bytes(content)
    return victim, content


# ---- the lock: never opened through a link, never left behind -------------------------------------
def test_a_symlink_at_the_lock_name_is_refused_and_its_target_untouched(tmp_path):
    victim, content = _victim(tmp_path)
    target = tmp_path / "run.trec"
    (tmp_path / ".run.trec.lock").symlink_to(victim)
    with pytest.raises(UnsafeLock, match="symbolic link") as e:
        write_text(target, "new\n")
    assert "\n" not in str(e.value)
    assert victim.read_bytes() == content and not target.exists()
    assert (tmp_path / ".run.trec.lock").is_symlink()  # not ours to remove


def test_a_dangling_symlink_at_the_lock_name_creates_nothing(tmp_path):
    """O_CREAT through a link would create the file it names."""
    where = tmp_path / "elsewhere" / "created.txt"
    where.parent.mkdir()
    (tmp_path / ".idx.lock").symlink_to(where)
    with pytest.raises(UnsafeLock):
        with writer_lock(tmp_path / "idx"):
            pass
    assert not where.exists()


def test_a_hard_link_at_the_lock_name_is_refused(tmp_path):
    victim, content = _victim(tmp_path)
    os.link(victim, tmp_path / ".idx.lock")
    with pytest.raises(UnsafeLock, match="hard links"):
        with writer_lock(tmp_path / "idx"):
            pass
    assert victim.read_bytes() == content


def test_cli_with_a_planted_lock_symlink_fails_with_one_line(toy, tmp_path, capsys):
    victim, content = _victim(tmp_path)
    out = tmp_path / "idx"
    (tmp_path / ".idx.lock").symlink_to(victim)
    assert main(_index(toy, out)) == 2
    err = _one_line(capsys)
    assert ".idx.lock" in err and "symbolic link" in err
    assert victim.read_bytes() == content and not out.exists()


def test_no_lock_file_is_left_after_success_or_failure(toy, tmp_path, capsys):
    out = tmp_path / "idx"
    assert main(_index(toy, out)) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    assert main(_index(toy, out, "--k1", "0.5")) == 2  # a different index there: refused
    _one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "r.trec") as tmp:
            tmp.write_text("half")
            raise RuntimeError("a failing writer")
    with writer_lock(tmp_path / "x"):
        assert (tmp_path / ".x.lock").is_file()  # it exists while held
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_a_stale_lock_of_a_killed_writer_is_used_then_removed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom jaxir.fs_lock import writer_lock\n"
                               "with writer_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)",
                               str(tmp_path / "idx")], env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    assert (tmp_path / ".idx.lock").is_file()  # a SIGKILL cannot clean up
    with writer_lock(tmp_path / "idx", wait_s=2):
        pass
    assert list(tmp_path.iterdir()) == []


WRITER = """
import os, sys, time
from jaxir.fs_lock import writer_lock
target, log, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    with writer_lock(target):
        with open(log, "a") as f:
            f.write(f"in {os.getpid()}\\n"); f.flush()
            time.sleep(0.003)
            f.write(f"out {os.getpid()}\\n")
"""


def test_concurrent_writers_serialise_while_the_lock_file_comes_and_goes(tmp_path):
    """Each holder removes the lock file before letting go; a waiter that locked the removed
    file must notice and retry, or two writers would be inside at once."""
    log = tmp_path / "log"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "idx"), str(log), "25"], env=ENV)
             for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    lines = log.read_text().split("\n")[:-1]
    assert len(lines) == 4 * 25 * 2
    for enter, leave in zip(lines[::2], lines[1::2]):  # strictly in, out, in, out of one writer each
        assert enter.startswith("in ") and leave == "out " + enter[3:], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log"]


# ---- backups and temps: jaxir's stamp, never a name alone ---------------------------------------
def _index_like(folder: Path, text="planted") -> Path:
    folder.mkdir()
    (folder / "manifest.json").write_text(text)
    return folder


def test_a_planted_old_folder_is_never_restored(tmp_path):
    target = tmp_path / "idx"
    planted = _index_like(tmp_path / ".idx.old-1-deadbeef")
    before = _snapshot(planted)
    assert recover_missing(target, marker="manifest.json") is False
    with writer_lock(target, marker="manifest.json"):
        assert not target.exists()
    assert _snapshot(planted) == before and not target.exists()


def test_a_stamp_naming_another_folder_is_not_jaxirs(tmp_path):
    """A copied or renamed stamped folder names its original, not itself."""
    planted = _index_like(tmp_path / ".idx.old-1-deadbeef")
    stamp(planted, ".idx.old-2-cafef00d")
    (tmp_path / ".idx.old-2-cafef00d").mkdir()  # a plain folder under the name the stamp gives
    assert recover(tmp_path / "idx", marker="manifest.json") == []
    assert (planted / "manifest.json").read_text() == "planted" and not (tmp_path / "idx").exists()


def test_planted_old_and_temp_folders_beside_an_index_are_left_alone(tmp_path):
    target = _index_like(tmp_path / "idx", "live")
    planted = [_index_like(tmp_path / ".idx.old-1-deadbeef"), _index_like(tmp_path / ".idx.tmp-1-cafe0000")]
    (tmp_path / ".idx.tmp-2-link").symlink_to(target)
    with writer_lock(target, marker="manifest.json"):
        pass
    assert all((p / "manifest.json").read_text() == "planted" for p in planted)
    assert (tmp_path / ".idx.tmp-2-link").is_symlink() and (target / "manifest.json").read_text() == "live"


def test_cli_index_never_restores_a_planted_old_folder(toy, tmp_path):
    out = tmp_path / "idx"
    assert main(_index(toy, tmp_path / "other", "--k1", "0.3")) == 0
    planted = tmp_path / ".idx.old-1-deadbeef"
    (tmp_path / "other").rename(planted)  # a whole valid index, but not set aside by jaxir
    before = _snapshot(planted)
    assert main(_index(toy, out)) == 0
    assert json.loads((out / "manifest.json").read_text())["built_from"]["settings"]["k1"] == 1.5
    assert _snapshot(planted) == before


KILLED_SWAP = """
import os, sys
from pathlib import Path
from jaxir.fs import replace_folder, temp_folder_beside
from jaxir.fs_lock import writer_lock
target = Path(sys.argv[1])
real, calls = os.replace, [0]
def replace(a, b):
    calls[0] += 1
    if calls[0] == 2:  # the old one is aside, the new one not yet in: die here
        os._exit(9)
    return real(a, b)
with writer_lock(target, marker="manifest.json"):
    tmp = temp_folder_beside(target)
    (tmp / "manifest.json").write_text("new")
    os.replace = replace
    replace_folder(tmp, target, marker="manifest.json", what="an index")
"""


def test_a_real_crash_between_the_renames_is_still_rolled_back(tmp_path):
    target = _index_like(tmp_path / "idx", "old")
    assert subprocess.run([sys.executable, "-c", KILLED_SWAP, str(target)], env=ENV).returncode == 9
    assert not target.exists()
    assert recover_missing(target, marker="manifest.json")
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json"]  # stamp removed
    assert (target / "manifest.json").read_text() == "old"
    with writer_lock(target, marker="manifest.json"):
        pass  # the dead writer's stamped temp is removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


# ---- replacing a folder: a valid jaxir artifact of the expected kind, and asked to -------------
@pytest.mark.parametrize("manifest", [{"format_version": 1}, {"format_version": 7, "arrays": {}}, "not json"])
def test_index_force_refuses_an_invalid_manifest_folder(toy, tmp_path, capsys, manifest):
    out = tmp_path / "idx"
    out.mkdir()
    (out / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    (out / "notes.txt").write_text("keep me")
    before = _snapshot(out)
    assert main(_index(toy, out, "--force")) == 2
    err = _one_line(capsys)
    assert "not an index" in err and str(out) in err
    assert _snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_the_swap_itself_checks_the_manifest(toy, tmp_path):
    """Under the lock, at the swap (what appeared while waiting, or a library call)."""
    from jaxir.eval.beir import load_beir
    from jaxir.index.store import save_index
    from jaxir.retrievers.bm25 import BM25Retriever
    from jaxir.pipeline.built_from import build_index

    out = tmp_path / "idx"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"format_version": 1}))
    before = _snapshot(out)
    with pytest.raises(FileExistsError, match="no 'arrays' table"):
        build_index(BM25Retriever(), load_beir(toy, split="train"), out)
    with pytest.raises(IndexFormatError, match="refusing to replace"):
        save_index(out, {}, method="x", model_fingerprint="y")
    assert _snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_replace_folder_refuses_a_link_and_a_file(tmp_path):
    real = _index_like(tmp_path / "real", "live")
    (tmp_path / "link").symlink_to(real)
    (tmp_path / "file").write_text("x")
    for where, what in (("link", "symbolic link"), ("file", "a file")):
        tmp = _index_like(tmp_path / f"new-{where}", "new")
        with pytest.raises(FileExistsError, match=what):
            replace_folder(tmp, tmp_path / where, marker="manifest.json", what="an index")
    assert sorted(p.name for p in real.iterdir()) == ["manifest.json"]
    assert (tmp_path / "link").is_symlink() and (tmp_path / "file").read_text() == "x"


def test_index_force_replaces_a_valid_index(toy, tmp_path):
    out = tmp_path / "idx"
    assert main(_index(toy, out)) == 0
    assert main(_index(toy, out, "--k1", "0.7", "--force")) == 0
    assert json.loads((out / "manifest.json").read_text())["built_from"]["settings"]["k1"] == 0.7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


@pytest.fixture(scope="module")
def pylate_export(tmp_path_factory):
    """A tiny ColBERT exported by jaxir as PyLate (a checkpoint export-model reads too)."""
    from benchmarks.interop import interop_parity as ip
    from jaxir.methods.colbert import ColBERTModel
    from jaxir.methods.colbert_config import ColBERTConfig
    from jaxir.models.bert import BertConfig
    from jaxir.interop import export_model

    model = ColBERTModel(ColBERTConfig(dim=16), bert_config=BertConfig.tiny())
    return export_model(model, ip.toy_params(model, 1), fmt="pylate",
                        out=tmp_path_factory.mktemp("exp") / "pylate")


def _export(checkpoint, out, *extra):
    return ["export-model", "--checkpoint", str(checkpoint), "--format", "colbert-ai", "--out", str(out), *extra]


def test_export_model_refuses_a_folder_jaxir_did_not_export(pylate_export, tmp_path, capsys):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    (out / "model.safetensors").write_bytes(b"weights")
    before = _snapshot(out)
    for extra in ((), ("--force",)):
        assert main(_export(pylate_export, out, *extra)) == 2
        err = _one_line(capsys)
        assert "not a model folder jaxir exported" in err and "config.json" in err
        assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def test_export_model_replaces_its_own_export_only_with_force(pylate_export, tmp_path, capsys):
    out = tmp_path / "colbert"
    assert main(_export(pylate_export, out)) == 0
    capsys.readouterr()
    assert json.loads((out / "jaxir_export.json").read_text())["layout"] == "colbert-ai"
    (out / "note").write_text("from the first export")
    before = _snapshot(out)
    assert main(_export(pylate_export, out)) == 2
    assert "--force" in _one_line(capsys) and _snapshot(out) == before
    assert main(_export(pylate_export, out, "--force")) == 0
    capsys.readouterr()
    assert not (out / "note").exists() and (out / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["colbert"]
    # an export record of another format (edited, or of a future jaxir) is not replaced either
    (out / "jaxir_export.json").write_text(json.dumps({"format": "jaxir-export", "version": 9, "layout": "pylate"}))
    before = _snapshot(out)
    assert main(_export(pylate_export, out, "--force")) == 2
    assert "version" in _one_line(capsys) and _snapshot(out) == before


def test_export_library_call_needs_force_too(pylate_export, tmp_path):
    from jaxir.cli_export import export_checkpoint

    out = export_checkpoint(pylate_export, fmt="colbert-ai", out=tmp_path / "c")
    before = _snapshot(out)
    with pytest.raises(OptionError, match="--force"):
        export_checkpoint(pylate_export, fmt="colbert-ai", out=out)
    assert _snapshot(out) == before
    time.sleep(0.01)
    export_checkpoint(pylate_export, fmt="colbert-ai", out=out, force=True)
