"""TPU chips (public figures) and topologies (from libtpu, never a TPU backend).

`CHIPS` is the one table of per-chip figures the roofline bound uses; each row cites its public
source. HBM capacity is shown for reference only: whether a program fits is decided by the
compiler's own limit, read from libtpu (`available_hbm_bytes`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import os
import re
import tempfile
from collections.abc import Iterator

from jaxir.errors import JaxirError, OptionError

GIB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Chip:
    generation: str          # topology-name prefix (v5e:4x4)
    device_kind: str         # what libtpu's devices call it
    peak_bf16_flops: float   # dense bf16 FLOP/s per chip
    hbm_bytes_per_s: float   # HBM bandwidth per chip
    hbm_gib: float           # HBM per chip (reference only)


CHIPS = {
    # https://cloud.google.com/tpu/docs/v5e: 197 TFLOP/s bf16, 16 GiB HBM2 at 819 GB/s per chip.
    "v5e": Chip("v5e", "TPU v5 lite", 197e12, 819e9, 16),
    # https://cloud.google.com/tpu/docs/v5p: 459 TFLOP/s bf16, 95 GiB HBM2e at 2,765 GB/s per chip.
    "v5p": Chip("v5p", "TPU v5", 459e12, 2765e9, 95),
    # https://cloud.google.com/tpu/docs/v6e: 918 TFLOP/s bf16, 32 GiB HBM at 1,640 GB/s per chip.
    "v6e": Chip("v6e", "TPU v6 lite", 918e12, 1640e9, 32),
    # https://cloud.google.com/tpu/docs/v4: 275 TFLOP/s bf16, 32 GiB HBM2 at 1,200 GB/s per chip.
    "v4": Chip("v4", "TPU v4", 275e12, 1200e9, 32),
    # https://cloud.google.com/tpu/docs/system-architecture-tpu-vm (v3): 123 TFLOP/s bf16,
    # 32 GiB HBM at 900 GB/s per chip (two TensorCores).
    "v3": Chip("v3", "TPU v3", 123e12, 900e9, 32),
    # https://cloud.google.com/tpu/docs/system-architecture-tpu-vm (v2): 45 TFLOP/s bf16,
    # 16 GiB HBM at 600 GB/s per chip (two TensorCores).
    "v2": Chip("v2", "TPU v2", 45e12, 600e9, 16),
}

# Topologies libtpu 0.0.42 accepts (checked); others of the same form may work too.
TOPOLOGIES = {
    "v5e": "2x2 2x4 4x4 4x8 8x8 8x16 16x16", "v6e": "2x2 2x4 4x4 4x8 8x8 8x16 16x16",
    "v5p": "2x2x1 2x2x2 2x2x4 2x4x4 4x4x4 4x4x8 4x8x8 8x8x8",
    "v4": "2x2x1 2x2x2 2x2x4 2x4x4 4x4x4 4x4x8 4x4x16 8x8x8",
    "v3": "2x2 4x4 4x8 8x8 16x16 32x32", "v2": "2x2 4x4 8x8 16x16",
}
_NAME = re.compile(r"^(?P<gen>v\d+[a-z]?)[:=_](?P<shape>\d+(x\d+){1,2})(_twisted|_untwisted)?$")


def valid_topologies() -> str:
    return "; ".join(f"{g}:{{{s.replace(' ', ',')}}}" for g, s in TOPOLOGIES.items())


def unknown_topology(name: str, why: str = "") -> OptionError:
    return OptionError(f"unknown topology {name!r}{why}; valid: {valid_topologies()} (e.g. v5e:2x2)")


def chip_of(name: str) -> Chip:
    """The chip of a topology name such as v5e:4x4, checked before libtpu is asked."""
    m = _NAME.match(name)
    if not m or m["gen"] not in CHIPS:
        raise unknown_topology(name)
    return CHIPS[m["gen"]]


def libtpu_pin() -> str:
    """The libtpu requirement of the installed jax's `tpu` extra (e.g. 'libtpu==0.0.42.*')."""
    for req in importlib.metadata.requires("jax") or []:
        if req.startswith("libtpu") and 'extra == "tpu"' in req:
            return req.split(";")[0].strip()
    return "libtpu"


def require_libtpu() -> str:
    """libtpu's version, or a one-line JaxirError saying how to install it."""
    if importlib.util.find_spec("libtpu") is None:
        raise JaxirError(f"the TPU compiler (libtpu) is not installed: pip install 'jaxir[tpu]' "
                         f"(i.e. pip install '{libtpu_pin()}', the libtpu jax {importlib.metadata.version('jax')} "
                         "pins; Linux x86-64)")
    return importlib.metadata.version("libtpu")


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """libtpu logs start-up warnings about the TPU VM it is not on: keep them off the terminal."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def load_topology(name: str):
    """libtpu's description of topology `name` (its devices), without starting any backend."""
    chip_of(name)
    require_libtpu()
    # No TPU is opened, so the lock libtpu takes for one (/tmp/libtpu_lockfile) is not needed: without
    # this, any other process holding it (a jax program probing for a TPU) would stop the plan.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    try:
        with quiet_stderr():
            return topologies.get_topology_desc(platform="tpu", topology_name=name)
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "INVALID_ARGUMENT" in first:  # libtpu's word for a name or shape it does not know
            raise unknown_topology(name, f" ({first[:160]})") from None
        raise JaxirError(f"libtpu could not describe topology {name}: {first[:300]}") from None


def chips_in(devices) -> int:
    """Chips of a device list (v2-v4 show each chip's two TensorCores as two devices)."""
    return len({tuple(d.coords) for d in devices})


_OOM = re.compile(r"required for (?P<what>.+?) \((?P<need>[\d.]+)(?P<u1>[KMGTP]?)\) exceeds available HBM "
                  r"\((?P<have>[\d.]+)(?P<u2>[KMGTP]?)\)")
_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40, "P": 2 ** 50}


def parse_oom(message: str) -> dict | None:
    """The compiler's RESOURCE_EXHAUSTED message -> {what, need_bytes, available_bytes} (None:
    not that message). XLA prints binary units (15.75G = 15.75 GiB)."""
    m = _OOM.search(message)
    if not m:
        return None
    return {"what": m["what"], "need_bytes": float(m["need"]) * _UNITS[m["u1"]],
            "available_bytes": float(m["have"]) * _UNITS[m["u2"]]}


def available_hbm_bytes(device) -> float:
    """The HBM one program may use on `device`, as the compiler counts it: compiling a program
    that needs far more makes it say (a fraction of a second; nothing runs)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    x = jax.ShapeDtypeStruct((1 << 20,), jnp.float32,
                             sharding=NamedSharding(Mesh(np.asarray([device]), ("d",)), PartitionSpec()))
    too_big = jax.jit(lambda v: jnp.sort(jnp.broadcast_to(v, (1 << 16, 1 << 20)), axis=0)[0])  # 512 GiB
    try:
        with quiet_stderr():
            too_big.lower(x).compile()
    except Exception as e:
        oom = parse_oom(str(e))
        if oom:
            return oom["available_bytes"]
        raise
    raise RuntimeError("the TPU compiler accepted a 512 GiB program: cannot read its HBM limit")
