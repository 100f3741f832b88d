"""The jitted train and eval steps, with explicit in/out shardings and a donated state.

One train step on a global batch ``B``:

    rng_k          = fold_in(state.rng, state.step)
    (loss, m), g   = grad of loss_fn(cast(params), batch, rng_k)    # cast = bf16 when asked;
                                                                    # + step=update if step_aware
    grad_norm      = ||g||_2 (before clipping)
    params, opt    = optimizer.update(g, ...)                       # fp32 master weights
    metrics        = {loss, lr, grad_norm, **m}                     # replicated scalars
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxir.remat import remat_layers
from jaxir.parallel import batch_sharding, replicated
from jaxir.training.state import TrainState
from jaxir.training.task import Task

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Generators of a train step's dropout masks. threefry: JAX's default, the same masks on every
# backend and sharding. rbg: the backend's bit generator keyed from the threefry key; on TPU it
# is the hardware generator, which needs far less time and memory for BERT's attention-probability
# masks ([B, heads, L, L] bits per layer); masks differ from threefry's and may differ between
# backends, the loss's expectation does not.
DROPOUT_RNGS = ("threefry", "rbg")


def dropout_key(rng: jax.Array, impl: str) -> jax.Array:
    """The step's dropout key as `impl` generates it (`rng`: a raw threefry key)."""
    if impl == "threefry":
        return rng
    if impl not in DROPOUT_RNGS:
        raise ValueError(f"unknown dropout rng {impl!r}; choose from {', '.join(DROPOUT_RNGS)}")
    return jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl=impl)

# XLA options that cut CPU compile time ~4x for tests and smoke runs (slower code; never on TPU).
FAST_CPU_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def cast_floating(tree: Any, dtype: Any) -> Any:
    """Casts floating-point leaves to ``dtype``; integer leaves (ids, counts) are untouched."""
    def one(x):
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
    return jax.tree_util.tree_map(one, tree)


def _loss_and_grads(task: Task, params: Any, batch: Any, rng: jax.Array, dtype: Any,
                    update: jax.Array):
    """((loss, metrics), grads) with grads in the params' (fp32) dtype."""
    def loss(p):
        # The cast sits inside the differentiated function, so grads come back in fp32.
        if task.step_aware:
            return task.loss_fn(cast_floating(p, dtype), batch, rng, step=update)
        return task.loss_fn(cast_floating(p, dtype), batch, rng)
    return jax.value_and_grad(loss, has_aux=True)(params)


def _scalar_metrics(loss: jax.Array, metrics: Any, **extra: jax.Array) -> dict[str, jax.Array]:
    out = {"loss": loss.astype(jnp.float32)}
    out.update({k: jnp.mean(v).astype(jnp.float32) for k, v in dict(metrics).items()})
    out.update({k: jnp.asarray(v, jnp.float32) for k, v in extra.items()})
    return out


def make_train_step(task: Task, optimizer: optax.GradientTransformation,
                    schedule: optax.Schedule, mesh: Mesh, state_shardings: Any, *,
                    compute_dtype: str = "float32", accumulate: int = 1,
                    compiler_options: Mapping[str, Any] | None = None, remat: str | None = None,
                    dropout_rng: str = "threefry") -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """``(state, batch) -> (state, metrics)``, jitted; the input state's buffers are donated.

    ``accumulate`` must match the optimizer's MultiSteps factor so that ``lr`` is reported per
    optimizer update. ``remat``: a `jaxir.models.bert.REMAT_POLICIES` name; the loss is traced
    with every encoder layer rematerialised under it (None: no remat). ``dropout_rng``: a
    DROPOUT_RNGS name, the generator of the dropout masks.
    """
    dtype = COMPUTE_DTYPES[compute_dtype]
    dropout_key(jax.random.PRNGKey(0), dropout_rng)  # an unknown name fails here, not in the trace

    def step(state: TrainState, batch: Any) -> tuple[TrainState, dict]:
        rng = dropout_key(jax.random.fold_in(state.rng, state.step), dropout_rng)
        update = state.step // accumulate  # optimizer updates so far
        with remat_layers(remat):
            (loss, metrics), grads = _loss_and_grads(task, state.params, batch, rng, dtype, update)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        lr = schedule(update)
        return new_state, _scalar_metrics(loss, metrics, lr=lr,
                                          grad_norm=optax.tree.norm(grads))

    return jax.jit(step, in_shardings=(state_shardings, batch_sharding(mesh)),
                   out_shardings=(state_shardings, replicated(mesh)), donate_argnums=0,
                   compiler_options=compiler_options)


def make_eval_step(task: Task, mesh: Mesh, params_shardings: Any, *,
                   compute_dtype: str = "float32",
                   compiler_options: Mapping[str, Any] | None = None) -> Callable[[Any, Any], dict]:
    """``(params, batch) -> metrics`` (replicated scalars); no gradients, no donation."""
    dtype = COMPUTE_DTYPES[compute_dtype]

    def evaluate(params: Any, batch: Any) -> dict:
        p = cast_floating(params, dtype)
        if task.eval_fn is not None:
            metrics = dict(task.eval_fn(p, batch))
            return {k: jnp.mean(v).astype(jnp.float32) for k, v in metrics.items()}
        loss, metrics = task.loss_fn(p, batch, None)  # rng=None: deterministic (no dropout)
        return _scalar_metrics(loss, metrics)

    return jax.jit(evaluate, in_shardings=(params_shardings, batch_sharding(mesh)),
                   out_shardings=replicated(mesh), compiler_options=compiler_options)
