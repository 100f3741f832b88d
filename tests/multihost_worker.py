"""One process of the 2-process CPU test: joins the coordinator, trains with fit(), dumps results.

    python tests/multihost_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR

Each process owns 2 fake CPU devices; together they form one [data=2, model=2] mesh.
"""
import json
import os
import sys

import jax

from jaxir import parallel
from jaxir.training.data import ArraySource
from jaxir.training.loop import FitConfig, fit
from jaxir.training.optim import OptimConfig
from jaxir.training.toy import toy_data, toy_task

STEPS = 3
OPTIM = OptimConfig(learning_rate=5e-2, warmup_steps=1, total_steps=STEPS)


def run(out_dir: str, mesh) -> dict:
    """The run both the workers and the single-process reference perform."""
    cfg = FitConfig(steps=STEPS, batch_size=8, eval_batch_size=8, seed=1, out_dir=out_dir,
                    log_every=1, progress=False, fast_compile=True)
    result = fit(toy_task(dropout=0.1), ArraySource(toy_data(24, seed=4)), config=cfg,
                 optim=OPTIM, eval_source=ArraySource(toy_data(8, seed=9)), mesh=mesh)
    emb = parallel.to_host(jax.jit(lambda p: p["embed"]["embedding"].sum(),
                                   out_shardings=parallel.replicated(mesh))(result.state.params))
    return {"loss": result.last_train["loss"], "eval_loss": result.last_eval["loss"],
            "emb_sum": float(emb), "step": int(parallel.to_host(result.state.step))}


def main() -> None:
    pid, nproc, port, out_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    # Set before the backend starts (importing jax does not start it; the test imports run()).
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    os.environ["JAX_PLATFORMS"] = "cpu"
    jax.config.update("jax_platforms", "cpu")
    parallel.maybe_initialize_distributed(f"127.0.0.1:{port}", nproc, pid, timeout_s=60)
    assert jax.process_count() == nproc and jax.local_device_count() == 2
    mesh = parallel.make_mesh(data=-1, model=2)
    out = run(out_dir, mesh)
    out.update(process_index=jax.process_index(), devices=jax.device_count())
    with open(os.path.join(out_dir, f"worker{pid}.json"), "w") as f:
        json.dump(out, f)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
