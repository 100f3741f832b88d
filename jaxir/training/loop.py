"""The fit loop: sampler -> sharded batch -> jitted step, with logs, eval, checkpoints, resume.

    result = fit(task, ArraySource(arrays), config=FitConfig(steps=1000, batch_size=32,
                 out_dir="runs/x"), optim=OptimConfig(learning_rate=1e-5, total_steps=1000))

Writes ``out_dir/metrics.jsonl``, ``out_dir/loss.png`` and ``out_dir/checkpoints/<step>/``.
With ``resume=True`` a run that finds a checkpoint continues from it bit-identically (CPU).
The first nan / inf loss or gradient norm (checked on the host for every step, at the logging,
eval and save cadence: no copy per step), or non-finite params at a save, stops the run
with a NonFiniteError naming the step; nothing is saved after it, so the last good checkpoint stays.
The progress bar ("<method> train", in optimizer updates) counts a step once it has finished
(`jaxir.training.progress`): the host runs at most one step ahead of the device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import numpy as np

from jaxir.config.bounds import bounded, check_bounds, one_of
from jaxir.errors import NonFiniteError, OptionError
from jaxir.remat import REMAT_POLICIES
from jaxir.parallel import make_mesh, replicated, shard_batch, to_host
from jaxir.training.checkpoint import Checkpointer
from jaxir.training.data import BatchSource, EpochSampler, process_rows
from jaxir.training.logging import MetricsLogger, plot_loss_curve
from jaxir.training.optim import OptimConfig, make_optimizer
from jaxir.training.progress import TrainProgress
from jaxir.training.state import TrainState, abstract_state, init_train_state
from jaxir.training.step import COMPUTE_DTYPES, DROPOUT_RNGS, FAST_CPU_COMPILE, make_eval_step, make_train_step
from jaxir.training.task import Task


@dataclasses.dataclass(frozen=True)
class FitConfig:
    # Train steps (micro-batches) to reach; a resumed run continues up to this step.
    steps: int = bounded(100, ge=0)
    # Global batch size (all processes together); must divide by the "data" axis size.
    batch_size: int = bounded(32, ge=1)
    # Seeds params (jax.random) and data order (NumPy).
    seed: int = bounded(0, ge=0)
    # Output folder for metrics.jsonl, loss.png and checkpoints/.
    out_dir: str = "runs/default"
    # Checkpoint folder (default out_dir/checkpoints); use gs://... on multi-host pods so that
    # every host writes its shards to the same place.
    checkpoint_dir: str | None = None
    # Mesh axis sizes; data=-1 uses every device not taken by model.
    mesh_data: int = -1
    mesh_model: int = 1
    # "float32" or "bfloat16" (bf16 forward/backward, fp32 master weights and optimizer).
    compute_dtype: str = one_of("float32", COMPUTE_DTYPES)
    # Log train metrics every this many steps.
    log_every: int = bounded(10, ge=1)
    # Evaluate every this many steps (0: only at the end when eval data or a hook is given).
    eval_every: int = bounded(0, ge=0)
    # Global batch size for held-out loss batches (the incomplete last batch is dropped).
    eval_batch_size: int = bounded(32, ge=1)
    # Save a checkpoint every this many steps (0: only at the end).
    checkpoint_every: int = bounded(0, ge=0)
    # Checkpoints kept: the last `keep_checkpoints`, plus the best by `best_metric` if set (one
    # of the held-out metrics the recipe evaluates; lowest when best_mode is "min").
    keep_checkpoints: int = bounded(3, ge=1)
    best_metric: str | None = None
    best_mode: str = one_of("min", ("min", "max"))
    # Continue from the latest checkpoint in out_dir when there is one.
    resume: bool = True
    # Show a tqdm progress bar (process 0 only).
    progress: bool = True
    # Trade run speed for compile speed (CPU tests and smoke runs; see step.FAST_CPU_COMPILE).
    fast_compile: bool = False
    # Rematerialise activations: each encoder layer (every method's BERT) keeps only what
    # remat_policy names for the backward pass and recomputes the rest there. Less accelerator
    # memory (`jaxir plan` shows how much) for up to ~1/3 more FLOPs; same loss and gradients.
    remat: bool = False
    # What a rematerialised layer keeps: "nothing" (its input) or "dots" (its weight matmuls' outputs).
    remat_policy: str = one_of("nothing", REMAT_POLICIES)
    # Generator of the dropout masks (training.step.DROPOUT_RNGS): "threefry" (JAX's default, the
    # same masks everywhere) or "rbg" (the accelerator's: on TPU far less memory and time for
    # attention-probability masks; the tpu modes use it).
    dropout_rng: str = one_of("threefry", DROPOUT_RNGS)

    def __post_init__(self):
        check_bounds(self)

    @property
    def remat_as(self) -> str | None:
        """The remat policy the train step traces under (None: remat off)."""
        return self.remat_policy if self.remat else None


def check_best_metric(config: FitConfig, metrics) -> None:
    """OptionError unless `config.best_metric` is unset or one of `metrics`, the held-out metrics
    the run evaluates (a name nothing reports would keep no best checkpoint, silently)."""
    if config.best_metric is None or config.best_metric in metrics:
        return
    allowed = f"one of {', '.join(metrics)}" if metrics else "left unset: this run evaluates no held-out metric"
    raise OptionError(f"--fit.best_metric {config.best_metric!r}: must be {allowed}")


@dataclasses.dataclass
class FitResult:
    state: TrainState
    last_train: dict[str, float]
    last_eval: dict[str, float]
    examples_per_s: float


def _run_eval(eval_step, params, source: BatchSource | None, cfg: FitConfig, mesh,
              hook: Callable[[TrainState], Mapping[str, float]] | None, state) -> dict:
    """Mean of per-batch held-out metrics (fixed row order) merged with the hook's metrics."""
    out: dict[str, float] = {}
    if source is not None:
        n_batches = len(source) // cfg.eval_batch_size
        if n_batches == 0:
            raise ValueError(f"eval source has {len(source)} rows < eval_batch_size "
                             f"{cfg.eval_batch_size}")
        sums: dict[str, float] = {}
        for b in range(n_batches):
            rows = process_rows(np.arange(b * cfg.eval_batch_size, (b + 1) * cfg.eval_batch_size))
            metrics = to_host(eval_step(params, shard_batch(source.take(rows), mesh)))
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        out.update({k: v / n_batches for k, v in sums.items()})
    if hook is not None:
        out.update({k: float(v) for k, v in hook(state).items()})
    return out


def _due(done: int, every: int, last: int) -> bool:
    return bool(every and done % every == 0) or done == last


def _checkpointer(task: Task, config: FitConfig, optim: OptimConfig, has_eval: bool) -> Checkpointer:
    if not has_eval:  # nothing held out is evaluated: no metric to keep a best checkpoint by
        check_best_metric(config, ())
    # The fingerprint covers what makes a checkpoint incompatible, not the run length.
    identity = {"task": dict(task.config), "optim": dataclasses.asdict(optim),
                "seed": config.seed, "batch_size": config.batch_size,
                "compute_dtype": config.compute_dtype}
    return Checkpointer(config.checkpoint_dir or Path(config.out_dir) / "checkpoints",
                        config=identity, keep=config.keep_checkpoints,
                        best_metric=config.best_metric, best_mode=config.best_mode)


def _init_or_resume(task, train_source, config, optimizer, ckpt, sampler, mesh, xla):
    """Fresh sharded state, replaced by the latest checkpoint (and sampler position) if any."""
    example = train_source.take(process_rows(np.arange(config.batch_size)))
    state, shardings = init_train_state(task, optimizer, jax.random.PRNGKey(config.seed),
                                        example, mesh, compiler_options=xla)
    if config.resume and ckpt.latest_step() is not None:
        state, data_state = ckpt.restore(abstract_state(state, shardings))
        sampler.restore(data_state)
    return state, shardings


# Train metrics that must stay finite: the first nan / inf stops the run before anything uses it.
FINITE_METRICS = ("loss", "grad_norm")


def _stop_if_nonfinite(pending: list[tuple[int, dict]], ckpt: Checkpointer, bar) -> None:
    """NonFiniteError at the first step of `pending` whose loss or grad norm is nan / inf. The
    metrics are already computed (one small host copy each, at the logging cadence only)."""
    for step, metrics in pending:
        values = {k: float(to_host(metrics[k])) for k in FINITE_METRICS}
        if not all(np.isfinite(v) for v in values.values()):
            _stop(f"step {step}: " + ", ".join(f"{k} {v:g}" for k, v in values.items()), ckpt, bar)


def _finite_leaves_fn(mesh, compiler_options):
    """jitted params -> bool [n_leaves] (replicated): each floating-point leaf holds only finite
    numbers. Run before each save only."""
    def flags(params):
        leaves = jax.tree_util.tree_leaves(params)
        return jax.numpy.stack([jax.numpy.all(jax.numpy.isfinite(x)) if
                                jax.numpy.issubdtype(x.dtype, jax.numpy.inexact) else
                                jax.numpy.asarray(True) for x in leaves])
    return jax.jit(flags, out_shardings=replicated(mesh), compiler_options=compiler_options)


def _stop_if_nonfinite_params(all_finite, params, step: int, ckpt: Checkpointer, bar) -> None:
    """Before a save: NonFiniteError naming the first parameter with a nan / inf (a finite loss
    and gradient can still step the params out of range); nothing is saved."""
    ok = np.asarray(to_host(all_finite(params)))
    if not ok.all():
        path = jax.tree_util.keystr(jax.tree_util.tree_leaves_with_path(params)[int(np.argmin(ok))][0])
        _stop(f"step {step}: parameter {path} holds nan or inf", ckpt, bar)


def _stop(what: str, ckpt: Checkpointer, bar) -> None:
    bar.close()
    last = ckpt.latest_step()
    ckpt.close()  # earlier (good) saves complete; the non-finite state is never written
    kept = f"the last checkpoint, step {last}, is kept in {ckpt.directory}" if last is not None else \
        "no checkpoint was saved"
    raise NonFiniteError(f"training stopped, not finite at {what}; nothing saved after it ({kept})")


def fit(task: Task, train_source: BatchSource, *, config: FitConfig, optim: OptimConfig,
        eval_source: BatchSource | None = None,
        eval_hook: Callable[[TrainState], Mapping[str, float]] | None = None,
        mesh: jax.sharding.Mesh | None = None) -> FitResult:
    """Trains ``task`` to ``config.steps`` steps; see the module docstring for outputs."""
    mesh = mesh or make_mesh(config.mesh_data, config.mesh_model)
    xla = FAST_CPU_COMPILE if config.fast_compile else None
    sampler = EpochSampler(len(train_source), config.batch_size, seed=config.seed)
    optimizer, schedule = make_optimizer(optim)
    has_eval = eval_source is not None or eval_hook is not None
    ckpt = _checkpointer(task, config, optim, has_eval)
    state, shardings = _init_or_resume(task, train_source, config, optimizer, ckpt, sampler,
                                       mesh, xla)
    train_step = make_train_step(task, optimizer, schedule, mesh, shardings,
                                 compute_dtype=config.compute_dtype, accumulate=optim.accumulate,
                                 compiler_options=xla, remat=config.remat_as, dropout_rng=config.dropout_rng)
    eval_step = make_eval_step(task, mesh, shardings.params, compute_dtype=config.compute_dtype,
                               compiler_options=xla)
    logger = MetricsLogger(Path(config.out_dir) / "metrics.jsonl")
    start = int(to_host(state.step))
    last_train, last_eval, rate = {}, {}, 0.0  # the last logged train and eval metrics, examples/s
    progress = TrainProgress(f"{task.config.get('method', '')} train".lstrip(), steps=config.steps, start=start,
                             accumulate=optim.accumulate, batch_size=config.batch_size,
                             enabled=config.progress and jax.process_index() == 0)
    pending: list[tuple[int, dict]] = []  # (step, its metrics on device) not yet checked finite
    all_finite = _finite_leaves_fn(mesh, xla)
    for done in range(start + 1, config.steps + 1):
        rows = process_rows(sampler.next_rows())
        state, metrics = train_step(state, shard_batch(train_source.take(rows), mesh))
        pending.append((done, {k: metrics[k] for k in FINITE_METRICS}))  # no sync: device refs
        progress.dispatched(done, metrics["loss"])  # waits for step done - 1 only
        log = _due(done, config.log_every, config.steps)
        evaluate = has_eval and _due(done, config.eval_every, config.steps)
        save = _due(done, config.checkpoint_every, config.steps)
        if log or evaluate or save:  # every step's loss and grad norm checked before any use
            progress.settle()
            _stop_if_nonfinite(pending, ckpt, progress.bar)
            pending.clear()
        if log:
            last_train, rate = to_host(metrics), progress.rate()
            logger.log(done, {**last_train, "examples_per_s": rate})
            progress.show(float(last_train["loss"]), rate)
        if evaluate:
            last_eval = _run_eval(eval_step, state.params, eval_source, config, mesh,
                                  eval_hook, state)
            logger.log(done, last_eval, split="eval")
        if save:
            _stop_if_nonfinite_params(all_finite, state.params, done, ckpt, progress.bar)
            ckpt.save(done, state, data_state=sampler.state(),
                      metrics=last_eval if evaluate else None)
        if evaluate or save:
            progress.reset()
    progress.close()
    ckpt.close()
    if jax.process_index() == 0 and logger.path.exists():
        plot_loss_curve(logger.path, Path(config.out_dir) / "loss.png")
    return FitResult(state=state, last_train={k: float(v) for k, v in last_train.items()},
                     last_eval=last_eval, examples_per_s=rate)
