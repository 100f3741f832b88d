"""One model-folder format for every method: orbax params + a small versioned model.json.

    <dir>/model.json  {"format": "jaxir-model", "version": 2, "method": "colbert",
                       "config": {...the method's config dataclass...}, "fingerprint": "<16 hex>",
                       "extra": {...method-specific, e.g. a backbone config...}}
    <dir>/params/     the params pytree, written by orbax's StandardCheckpointer

Training checkpoints (params + optimizer state, `jaxir.training.checkpoint`) are orbax too; this
is what search, reranking and distillation load, without importing the training engine.
A folder is written beside the target and renamed into place, so a kill at any point leaves the
previous folder. Loading checks the method, rebuilds the config (`config_from_dict`), restores
the params into the model's tree (paths, shapes and dtypes must match) and recomputes the
fingerprint, so a truncated or edited folder is an error, never a silently different model.

The PyTorch tools' layouts (colbert-ai, PyLate, BertForMaskedLM + idf.json, sentence-transformers
CrossEncoder) are read by `jaxir.interop`, a floor above the methods; the retrievers choose
between it and this module (`jaxir.retrievers.base.MethodCheckpoints`).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import typing
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from jaxir.config.bounds import check_bounds
from jaxir.errors import CheckpointError, NonFiniteError
from jaxir.fs import recover_missing, replace_folder, temp_folder_beside
from jaxir.fs_lock import writer_lock
from jaxir.models.bert import BertConfig
from jaxir.models.folders import MODEL_FILE
from jaxir.models.hf import params_fingerprint

FORMAT, VERSION = "jaxir-model", 2
PARAMS_DIR = "params"


def save_model(path: str | Path, *, method: str, config, params, extra: dict | None = None,
               files: dict[str, Path] | None = None) -> Path:
    """Write params + model.json (and copies of `files`: {name in folder: source}) atomically,
    one writer at a time. Params holding nan/inf are refused (NonFiniteError naming the first
    such parameter) before anything is written: the folder there stays as it was."""
    path = Path(path).resolve()
    params = jax.tree_util.tree_map(np.asarray, params)  # on the host once: checked, hashed, written
    check_finite_params(params, f"refusing to save {path}")
    info = {"format": FORMAT, "version": VERSION, "method": method,
            "config": dataclasses.asdict(config), "fingerprint": params_fingerprint(params),
            "extra": extra or {}}
    text = json.dumps(info, indent=1)  # fail on a non-JSON config before touching the disk
    with writer_lock(path, marker=MODEL_FILE):
        _write_model_folder(path, text, params, files)
    return path


def check_finite_params(params, what: str) -> None:
    """NonFiniteError "<what>: parameter ['head']['kernel'] holds nan (3 of 384 values not
    finite)" at the first floating-point leaf with a nan or inf."""
    for key, leaf in jax.tree_util.tree_leaves_with_path(params):
        value = np.asarray(leaf)
        if not jax.numpy.issubdtype(value.dtype, jax.numpy.inexact):  # bfloat16 included
            continue
        ok = np.isfinite(value)
        if not ok.all():
            first = value[~ok].flat[0]
            raise NonFiniteError(f"{what}: parameter {jax.tree_util.keystr(key)} holds {first} "
                                 f"({int((~ok).sum())} of {value.size} values not finite)")


def _write_model_folder(path: Path, text: str, params, files) -> None:
    import orbax.checkpoint as ocp

    tmp = temp_folder_beside(path)
    try:
        host = jax.tree_util.tree_map(np.asarray, params)
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(tmp / PARAMS_DIR, host)
            ckptr.wait_until_finished()
        for name, source in (files or {}).items():
            shutil.copy(source, tmp / name)
        (tmp / MODEL_FILE).write_text(text + "\n")  # written last: its presence marks a whole folder
        replace_folder(tmp, path, marker=MODEL_FILE, what="a jaxir model folder", check=read_model_info)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_model_info(path: str | Path) -> dict:
    """model.json of a folder; CheckpointError if none."""
    path = Path(path)
    if not path.is_dir() and not recover_missing(path, marker=MODEL_FILE):
        raise CheckpointError(f"no model folder at {path}")
    file = path / MODEL_FILE
    if not file.is_file():
        raise CheckpointError(f"{path} is not a jaxir model folder (no {MODEL_FILE})")
    try:
        info = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file} is not valid JSON: {e}") from e
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        raise CheckpointError(f"{file}: format {info.get('format')!r} version {info.get('version')!r}, "
                              f"this jaxir reads {FORMAT!r} version {VERSION}")
    return info


def config_from_dict(cls, raw: dict):
    """A config dataclass from saved JSON: every field the class has, no other key (a folder
    written by another jaxir version is a CheckpointError naming the key, never a model silently
    filled in with today's defaults); lists become tuples where the field is a tuple."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    if unknown := sorted(set(raw) - known):
        raise CheckpointError(f"{cls.__name__} has no field {unknown[0]!r} (saved by another jaxir version?)")
    if missing := sorted(known - set(raw)):
        raise CheckpointError(f"saved {cls.__name__} lacks the field {missing[0]!r} (saved by another jaxir version?)")
    values = {k: tuple(v) if isinstance(v, list) and "tuple" in str(hints[k]) else v for k, v in raw.items()}
    try:
        config = cls(**values)
        check_bounds(config)  # ranges, and finite numbers (a saved alpha of nan is refused)
        return config
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"saved {cls.__name__} is invalid: {e}") from e


def load_model(path: str | Path, *, method: str, make_config: Callable[[dict, dict], object],
               abstract_params: Callable[[object, dict], object]):
    """(config, params, info) of a model folder written for `method`.

    make_config(config dict, extra) -> config; abstract_params(config, extra) -> the model's
    params tree of ShapeDtypeStructs (e.g. `jax.eval_shape(model.init, rng)`), which the saved
    params must match exactly.
    """
    path = Path(path)
    info = read_model_info(path)
    if info["method"] != method:
        raise CheckpointError(f"{path} holds a {info['method']!r} model, not a {method!r} one")
    config = make_config(info["config"], info.get("extra", {}))
    target = abstract_params(config, info.get("extra", {}))
    params = restore_tree(path / PARAMS_DIR, target)
    check_same_tree(target, params, str(path), method)
    if info.get("fingerprint") and params_fingerprint(params) != info["fingerprint"]:
        raise CheckpointError(f"{path}: params do not match the fingerprint in {MODEL_FILE} "
                              "(corrupt or edited folder)")
    return config, params, info


def restore_tree(folder: Path, target):
    """An orbax pytree folder restored onto one device, shaped like `target` (ShapeDtypeStructs)."""
    import orbax.checkpoint as ocp

    if not folder.is_dir():
        raise CheckpointError(f"{folder} is missing: the model folder is incomplete")
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), target)
    try:
        with ocp.StandardCheckpointer() as ckptr:
            return ckptr.restore(folder.resolve(), abstract)
    except Exception as err:  # orbax raises many types; callers get one naming the folder
        raise CheckpointError(f"{folder} is corrupt or does not fit the model: "
                              f"{type(err).__name__}: {str(err)[:300]}") from err


def tree_signature(tree) -> dict[str, tuple]:
    return {jax.tree_util.keystr(p): (tuple(np.shape(v)), str(np.dtype(v.dtype)))
            for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def check_same_tree(expected, got, where: str, what: str) -> None:
    """Loaded params must match the model's tree (paths, shapes, dtypes), else CheckpointError."""
    want, have = tree_signature(expected), tree_signature(got)
    if want != have:
        diff = sorted(set(want.items()) ^ set(have.items()))[:4]
        raise CheckpointError(f"{where}: params do not fit the {what} model; differences: {diff}")


def load_or_init(checkpoint, *, method: str, config_cls, default_config, make_model: Callable,
                 overrides: dict | None = None):
    """(model, params): a jaxir model folder's (checked as `load_model` does), or without a
    checkpoint `make_model(default_config)` with a fresh init seeded by its `seed`. `overrides`
    replace config fields unless None (e.g. a CLI --doc-maxlen; 0 is a value)."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if checkpoint is None:
        model = make_model(dataclasses.replace(default_config, **given))
        return model, model.init(jax.random.PRNGKey(model.config.seed))
    built = {}

    def make_config(raw, extra):
        return dataclasses.replace(config_from_dict(config_cls, raw), **given)

    def abstract(config, extra):
        # A folder that records its backbone's architecture is built from it (no backbone read)
        backbone = {"bert_config": BertConfig.from_dict(extra["bert"])} if extra.get("bert") else {}
        built["model"] = make_model(config, **backbone)
        return jax.eval_shape(built["model"].init, jax.random.PRNGKey(0))

    _, params, _ = load_model(checkpoint, method=method, make_config=make_config,
                              abstract_params=abstract)
    return built["model"], params
