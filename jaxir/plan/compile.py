"""A recipe's train step, lowered and compiled for a TPU topology with the training shardings.

The same code path as `jaxir.training.loop.fit`: `make_mesh` over the topology's devices, the
optimizer of `make_optimizer`, the state layout of `state_layout` (shapes by `jax.eval_shape`,
shardings from the task's param rules) and the jitted step of `make_train_step`; only the
arguments are abstract (ShapeDtypeStructs carrying their shardings), so nothing is allocated
and nothing runs.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from jaxir.errors import OptionError
from jaxir.plan.chips import parse_oom, quiet_stderr


@dataclasses.dataclass(frozen=True)
class Compiled:
    seconds: float             # lowering + compilation, wall clock
    memory: dict | None        # the compiler's static allocation per device (bytes); None on OOM
    cost: dict | None          # its cost analysis per device: flops, bytes accessed
    oom: dict | None           # parse_oom of a RESOURCE_EXHAUSTED refusal (then memory/cost None)
    argument_bytes: int = 0    # the state's and the batch's shards on one device (counted here)


def mesh_for(devices, data: int, model: int, topology: str):
    """`make_mesh(data, model)` over the topology's devices; a mesh that does not use exactly
    every device is a one-line OptionError naming the device count."""
    from jaxir.parallel import make_mesh

    n = len(devices)
    if model < 1 or (data != -1 and data < 1):
        raise OptionError(f"mesh data={data} x model={model}: sizes must be >= 1 (data -1: every device "
                          "not on model)")
    if n % model or (data != -1 and data * model != n):
        shown = f"data={data} x model={model}" if data != -1 else f"model={model}"
        raise OptionError(f"mesh {shown} does not divide {topology}'s {n} devices: give --mesh.data x "
                          f"--mesh.model = {n} (e.g. --mesh.data {n} --mesh.model 1)")
    return make_mesh(data, model, devices=devices)


def check_batch(batch: dict, mesh) -> None:
    """Every batch leaf splits its leading (global batch) dimension on the data axis."""
    from jaxir.parallel import DATA

    shards = mesh.shape[DATA]
    for name, x in batch.items():
        if np.ndim(x) == 0 or np.shape(x)[0] % shards:
            raise OptionError(f"global batch {np.shape(x)[0] if np.ndim(x) else 0} (--fit.batch_size; batch "
                              f"array {name!r}) is not divisible by the data axis ({shards} shards): give a "
                              f"multiple of {shards}")


def abstract_inputs(inputs, fit, mesh):
    """(optimizer, schedule, abstract sharded state, its shardings, abstract sharded batch)."""
    from jaxir.parallel import batch_sharding
    from jaxir.training.optim import make_optimizer
    from jaxir.training.state import abstract_state, state_layout

    optimizer, schedule = make_optimizer(inputs.optim)
    init_rng, step_rng = jax.random.split(jax.random.PRNGKey(fit.seed))
    _, shapes, shardings = state_layout(inputs.task, optimizer, init_rng, step_rng, inputs.batch, mesh)
    batch = {k: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype, sharding=batch_sharding(mesh))
             for k, v in inputs.batch.items()}
    return optimizer, schedule, abstract_state(shapes, shardings), shardings, batch


def compile_step(inputs, fit, mesh) -> Compiled:
    """`make_train_step(...)` lowered on the abstract state and batch, then compiled by libtpu."""
    from jaxir.training.step import make_train_step

    optimizer, schedule, state, shardings, batch = abstract_inputs(inputs, fit, mesh)
    step = make_train_step(inputs.task, optimizer, schedule, mesh, shardings, compute_dtype=fit.compute_dtype,
                           accumulate=inputs.optim.accumulate, remat=fit.remat_as,
                           dropout_rng=fit.dropout_rng)
    start = time.perf_counter()
    lowered = step.lower(state, batch)
    try:
        with quiet_stderr():
            compiled = lowered.compile()
    except Exception as e:  # the compiler refuses a program that does not fit in HBM
        oom = parse_oom(str(e))
        if oom is None:
            raise
        return Compiled(time.perf_counter() - start, None, None, oom, shard_bytes((state, batch)))
    seconds = time.perf_counter() - start
    return Compiled(seconds, _memory(compiled.memory_analysis()), _cost(compiled.cost_analysis()), None,
                    shard_bytes((state, batch)))


def shard_bytes(tree) -> int:
    """Bytes of the largest shard per leaf of a tree of sharded ShapeDtypeStructs: what one
    device holds of it."""
    def one(x):
        return int(np.prod(x.sharding.shard_shape(x.shape), dtype=np.int64)) * np.dtype(x.dtype).itemsize
    return sum(one(x) for x in jax.tree_util.tree_leaves(tree))


def _memory(stats) -> dict:
    return {"arguments": stats.argument_size_in_bytes, "temporaries": stats.temp_size_in_bytes,
            "outputs": stats.output_size_in_bytes, "aliased": stats.alias_size_in_bytes,
            "code": stats.generated_code_size_in_bytes}


def _cost(analysis) -> dict:
    if isinstance(analysis, (list, tuple)):  # older jax: one dict per program
        analysis = analysis[0]
    return {"flops": float(analysis.get("flops", 0.0)), "bytes": float(analysis.get("bytes accessed", 0.0))}
