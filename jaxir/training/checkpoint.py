"""Orbax checkpoints of a TrainState plus JSON metadata, with clear errors on a bad restore.

Each step directory holds two items:
  state  the TrainState pytree (step, params, opt_state, rng), restored straight into its sharding
  meta   JSON: format version, config, config fingerprint (sha256 of its canonical JSON), the
         state's tree signature ({path: [shape, dtype]}) and the data-sampler position

Restoring checks the fingerprint and the tree signature before touching the arrays, so a
checkpoint of another model or config raises ``CheckpointError`` naming what differs; any
unreadable checkpoint also raises ``CheckpointError`` (never a raw orbax traceback).
Retention: the last ``keep`` steps, plus the best one by ``best_metric`` when given.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from jaxir.errors import CheckpointError, names_file
from jaxir.parallel import path_str

FORMAT_VERSION = 1


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """sha256 of the config's canonical JSON (sorted keys)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def tree_signature(tree: Any) -> dict[str, list]:
    """``{"params/dense/kernel": [[8, 4], "float32"], ...}`` for arrays or ShapeDtypeStructs."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {path_str(p): [list(x.shape), str(x.dtype)] for p, x in leaves}


def _describe_diff(saved: Mapping[str, Any], current: Mapping[str, Any], what: str) -> str:
    keys = sorted(set(saved) | set(current))
    diffs = [f"{k}: checkpoint={saved.get(k, '<missing>')} now={current.get(k, '<missing>')}"
             for k in keys if saved.get(k, "<missing>") != current.get(k, "<missing>")]
    more = f" (+{len(diffs) - 5} more)" if len(diffs) > 5 else ""
    return f"{what} differs: " + "; ".join(diffs[:5]) + more


class Checkpointer:
    """Save/restore TrainStates under ``directory/<step>/``; all processes call every method."""

    def __init__(self, directory: str | Path | epath.Path, *, config: Mapping[str, Any],
                 keep: int = 3,
                 best_metric: str | None = None, best_mode: str = "min",
                 async_save: bool | None = None):
        if best_mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
        # Local folders become absolute; "gs://bucket/run" (needed on multi-host pods) stays as is.
        self.directory = (epath.Path(directory) if str(directory).startswith("gs://")
                          else Path(directory).resolve())
        self.config = dict(config)
        self.fingerprint = config_fingerprint(self.config)
        self.best_metric = best_metric
        policies: list[Any] = [pp.LatestN(n=keep)]
        if best_metric is not None:
            policies.append(pp.BestN(get_metric_fn=lambda m: m[best_metric], n=1,
                                     reverse=best_mode == "min",
                                     keep_checkpoints_without_metrics=False))
        if async_save is None:  # Async writes need a background thread; keep CPU runs simple.
            async_save = jax.default_backend() != "cpu"
        options = ocp.CheckpointManagerOptions(
            preservation_policy=pp.AnyPreservationPolicy(policies),
            enable_async_checkpointing=async_save, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, *, data_state: Mapping[str, Any],
             metrics: Mapping[str, float] | None = None) -> None:
        """Writes ``state`` and the metadata at ``step`` (overwrites nothing: steps are unique)."""
        meta = {"format": FORMAT_VERSION, "step": int(step), "config": self.config,
                "fingerprint": self.fingerprint, "tree": tree_signature(state),
                "data": dict(data_state)}
        if self.best_metric is not None and metrics is not None and self.best_metric in metrics:
            metrics = {self.best_metric: float(metrics[self.best_metric])}
        else:
            metrics = None
        with disk_full_names(self.directory):
            self._manager.save(int(step), metrics=metrics, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

    def read_meta(self, step: int) -> dict[str, Any]:
        try:
            out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            meta = dict(out["meta"])
            meta["tree"], meta["fingerprint"], meta["data"]  # noqa: B018 - required keys
        except Exception as err:  # orbax raises many types; callers get one with the path.
            raise CheckpointError(f"checkpoint {self.directory / str(step)} has unreadable "
                                  f"metadata: {type(err).__name__}: {err}") from err
        return meta

    def restore(self, target: Any, *, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """``target``: ShapeDtypeStructs with shardings (see ``state.abstract_state``).

        Returns ``(state, data_state)``; raises CheckpointError when there is no checkpoint,
        when it belongs to another config or tree, or when it cannot be read.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        meta = self.read_meta(step)
        where = self.directory / str(step)
        if meta.get("format") != FORMAT_VERSION:
            raise CheckpointError(f"checkpoint {where}: format {meta.get('format')} != "
                                  f"{FORMAT_VERSION}")
        if meta["fingerprint"] != self.fingerprint:
            diff = _describe_diff(meta.get("config", {}), self.config, "config")
            raise CheckpointError(f"checkpoint {where} was written for another config; {diff}")
        current = tree_signature(target)
        if meta["tree"] != current:
            diff = _describe_diff(meta["tree"], current, "param tree (path: [shape, dtype])")
            raise CheckpointError(f"checkpoint {where} does not fit this model; {diff}")
        try:
            out = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target)))
        except Exception as err:
            raise CheckpointError(f"checkpoint {where} is corrupt or incomplete: "
                                  f"{type(err).__name__}: {err}") from err
        return out["state"], dict(meta["data"])

    def wait(self) -> None:
        with disk_full_names(self.directory):  # an async save's error surfaces here
            self._manager.wait_until_finished()

    def close(self) -> None:
        self.wait()
        self._manager.close()


@contextlib.contextmanager
def disk_full_names(directory):
    """A full disk while writing checkpoints is an OSError(ENOSPC) naming `directory`, whether
    Python's (`names_file`) or tensorstore's (a ValueError saying "No space left on device"),
    and the one line the CLI prints for it is all a user sees (`orbax_noise_held`)."""
    with orbax_noise_held(), names_file(directory):
        try:
            yield
        except ValueError as e:
            if "No space left on device" not in str(e) and "os_error_code='28'" not in str(e):
                raise
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory)) from e


# Where orbax's failed writes are told: its writer threads log the traceback (absl), and the tasks
# left on its closed event loop are reported when collected (asyncio).
_NOISY_LOGGERS = ("absl", "asyncio")


def _full_disk_noise(exc: BaseException | None) -> bool:
    """A failed checkpoint write's own report of the full disk, or of a write still in flight
    when orbax closed its event loop (tensorstore's callbacks find it closed)."""
    text = str(exc)
    return ((isinstance(exc, RuntimeError) and text == "Event loop is closed")
            or "No space left on device" in text or "os_error_code='28'" in text)


def _not_full_disk_noise(record) -> bool:
    return not (record.exc_info and _full_disk_noise(record.exc_info[1]))


@contextlib.contextmanager
def orbax_noise_held():
    """When a checkpoint write fails, each orbax thread logs the failure's traceback, tensorstore
    reports every write still in flight once orbax's event loop is closed (unraisable "Event loop
    is closed") and asyncio each task that held the failure: ~1,500 lines above the one jaxir's
    CLI prints. All of it is held back while the block runs, then shown as it came, unless the
    block ended in a full disk (the CLI's line says it). After one, the failed write's late
    reports are dropped too (they keep coming as its threads finish); anything else is shown."""
    import logging
    import sys

    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    saved, records, unraisable, hook = [(g.handlers, g.propagate) for g in loggers], [], [], sys.unraisablehook
    for g in loggers:
        held = logging.Handler()
        held.emit = lambda record, g=g: records.append((g, record))
        g.handlers, g.propagate = [held], False
    sys.unraisablehook, full = unraisable.append, False
    try:
        yield
    except OSError as e:
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        raise
    finally:
        for g, (handlers, propagate) in zip(loggers, saved):
            g.handlers, g.propagate = handlers, propagate
            if full:
                g.addFilter(_not_full_disk_noise)
        sys.unraisablehook = (lambda u: None if _full_disk_noise(u.exc_value) else hook(u)) if full else hook
        for g, record in [] if full else records:
            g.handle(record)
        for u in [] if full else unraisable:
            hook(u)
