"""Device mesh, logical axis rules and sharded init: one code path for 1 device, 8 devices or a pod.

The mesh always has two named axes, ``("data", "model")``. The batch is split on "data"; a
parameter may split one of its dimensions on "model" when a path-pattern rule names a logical
axis (``"vocab"``, ``"mlp"``, ...) that the logical rules map to "model". Everything else is
replicated.

    mesh = make_mesh(data=-1, model=1)                  # all devices on "data"
    rules = [(r"word_embeddings/embedding$", (VOCAB, EMBED))]
    params = init_sharded(init_fn, rng, batch, mesh, rules)
    batch = shard_batch(numpy_batch, mesh)              # process-local rows in, global array out
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

# Mesh axes.
DATA = "data"
MODEL = "model"

# Logical axis names used by param rules (mapped to mesh axes by LOGICAL_RULES).
BATCH = "batch"
VOCAB = "vocab"
EMBED = "embed"
MLP = "mlp"
HEADS = "heads"
KV = "kv"

# Logical -> mesh axis; None means "replicate this dimension".
LOGICAL_RULES: Mapping[str, str | None] = {
    BATCH: DATA,
    VOCAB: MODEL,
    MLP: MODEL,
    HEADS: MODEL,
    EMBED: None,
    KV: None,
}

# A param rule: (regex searched in the "/"-joined param path, logical axis per dimension).
ParamRules = Sequence[tuple[str, tuple[str | None, ...]]]


def make_mesh(data: int = -1, model: int = 1, devices: Sequence[Any] | None = None) -> Mesh:
    """Mesh of shape ``[data, model]`` over ``devices`` (default: all global devices).

    ``data=-1`` takes every device not used by "model". Raises ValueError when the sizes do not
    multiply to the device count.
    """
    devices = list(jax.devices() if devices is None else devices)
    if model < 1:
        raise ValueError(f"model axis size must be >= 1, got {model}")
    if data == -1:
        if len(devices) % model:
            raise ValueError(f"{len(devices)} devices are not divisible by model={model}")
        data = len(devices) // model
    if data * model != len(devices):
        raise ValueError(f"mesh data={data} x model={model} != {len(devices)} devices")
    grid = np.asarray(devices, dtype=object).reshape(data, model)
    return Mesh(grid, (DATA, MODEL))


def path_str(path: Sequence[Any]) -> str:
    """``(DictKey('a'), SequenceKey(0), GetAttrKey('b'))`` -> ``"a/0/b"``."""
    parts = []
    for key in path:
        for attr in ("key", "idx", "name"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def spec_for(path: str, shape: Sequence[int], mesh: Mesh, rules: ParamRules,
             *, logical_rules: Mapping[str, str | None] = LOGICAL_RULES) -> P:
    """PartitionSpec of one array: the first rule whose regex matches ``path`` wins.

    Rules apply by trailing dimensions, so the same rule also fits stacked copies (e.g. an
    optimizer moment with the param's shape). A dimension not divisible by its mesh axis is
    replicated (with a warning) rather than failing on an odd vocabulary size.
    """
    for pattern, logical in rules:
        if not re.search(pattern, path):
            continue
        if len(logical) > len(shape):
            raise ValueError(f"rule {pattern!r} names {len(logical)} axes but {path} has shape "
                             f"{tuple(shape)}")
        axes: list[str | None] = [None] * (len(shape) - len(logical))
        for dim, name in zip(shape[len(shape) - len(logical):], logical):
            mesh_axis = logical_rules.get(name) if name is not None else None
            if mesh_axis is not None and dim % mesh.shape[mesh_axis]:
                warnings.warn(f"{path}: dim {dim} not divisible by mesh axis {mesh_axis}="
                              f"{mesh.shape[mesh_axis]}; replicating it", stacklevel=2)
                mesh_axis = None
            axes.append(mesh_axis)
        return P(*axes)
    return P()


def param_shardings(params_shape: Any, mesh: Mesh, rules: ParamRules = (),
                    **kwargs: Any) -> Any:
    """Tree of NamedSharding matching ``params_shape`` (arrays or ShapeDtypeStructs).

    Works on any pytree (params, optimizer state, a whole TrainState): scalars and unmatched
    leaves are replicated.
    """
    def one(path, leaf):
        return NamedSharding(mesh, spec_for(path_str(path), np.shape(leaf), mesh, rules, **kwargs))
    return jax.tree_util.tree_map_with_path(one, params_shape)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split on "data", the rest replicated."""
    return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Process-local NumPy batch (leading dim = global_batch / process_count) -> global jax arrays.

    On one process this is a plain device_put; on several, each process passes its own rows and
    ``jax.make_array_from_process_local_data`` stitches the global array.
    """
    sharding = batch_sharding(mesh)
    local_devices = mesh.shape[DATA] // jax.process_count()

    def one(x):
        x = np.asarray(x)
        if x.ndim == 0 or local_devices == 0 or x.shape[0] % max(local_devices, 1):
            raise ValueError(f"batch leaf of shape {x.shape}: leading dim must be divisible by "
                             f"the {local_devices} process-local data shards")
        return jax.make_array_from_process_local_data(sharding, x)
    return jax.tree_util.tree_map(one, batch)


def init_sharded(init_fn: Callable[[jax.Array, Any], Any], rng: jax.Array, batch: Any,
                 mesh: Mesh, rules: ParamRules = ()) -> Any:
    """Params created directly in their final sharding (never materialised on one device).

    ``jax.eval_shape`` gives shapes, the rules give partition specs, and
    ``jax.jit(init_fn, out_shardings=...)`` builds each shard where it lives. Only the batch's
    shapes reach ``init_fn`` (as zeros made inside jit), so every process traces the same thing.
    """
    shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), batch)

    def init(rng):
        return init_fn(rng, jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))

    shardings = param_shardings(jax.eval_shape(init, rng), mesh, rules)
    return jax.jit(init, out_shardings=shardings)(rng)


def to_host(tree: Any) -> Any:
    """Fully replicated global arrays -> NumPy (works when other processes own some devices)."""
    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(x)
    return jax.tree_util.tree_map(one, tree)


def maybe_initialize_distributed(coordinator_address: str | None = None,
                                 num_processes: int | None = None,
                                 process_id: int | None = None, *,
                                 auto: bool = False, timeout_s: int = 300) -> bool:
    """Join a multi-process JAX run; returns True when one was (or already is) initialised.

    Arguments win over the environment (``JAXIR_COORDINATOR_ADDRESS``, ``JAXIR_NUM_PROCESSES``,
    ``JAXIR_PROCESS_ID``). ``auto=True`` (or ``JAXIR_DISTRIBUTED=auto``, set by tpu/launch.sh)
    lets JAX detect the cluster itself (Cloud TPU VM pods, SLURM). With nothing given this is a
    no-op, so single-host runs need no set-up.
    """
    if jax.distributed.is_initialized():
        return True
    env = os.environ
    auto = auto or env.get("JAXIR_DISTRIBUTED") == "auto"
    address = coordinator_address or env.get("JAXIR_COORDINATOR_ADDRESS")
    nproc = num_processes if num_processes is not None else env.get("JAXIR_NUM_PROCESSES")
    pid = process_id if process_id is not None else env.get("JAXIR_PROCESS_ID")
    if address is None and not auto:
        return False
    if address is not None and (nproc is None or pid is None):
        raise ValueError(f"coordinator {address} given without num_processes/process_id")
    if env.get("JAX_PLATFORMS", "").startswith("cpu"):
        # CPU collectives across processes need an explicit implementation.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if address is None:
        jax.distributed.initialize(initialization_timeout=timeout_s)
    else:
        jax.distributed.initialize(address, num_processes=int(nproc), process_id=int(pid),
                                   initialization_timeout=timeout_s)
    return True
