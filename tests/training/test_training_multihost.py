"""Two real local processes form one global mesh and train like one process on the same batch."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxir import parallel

HERE = Path(__file__).resolve().parents[1]  # tests/: multihost_worker.py
sys.path.insert(0, str(HERE))
import multihost_worker  # noqa: E402

TIMEOUT_S = 150


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.multiprocess
def test_two_processes_match_single_process(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAXIR_")}
    procs = [subprocess.Popen([sys.executable, str(HERE / "multihost_worker.py"), str(i), "2",
                               str(port), str(tmp_path)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=TIMEOUT_S)[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"multi-process run exceeded {TIMEOUT_S}s")
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"worker {i} failed:\n{logs[i][-3000:]}"
    workers = [json.loads((tmp_path / f"worker{i}.json").read_text()) for i in range(2)]
    assert {w["process_index"] for w in workers} == {0, 1}
    assert all(w["devices"] == 4 and w["step"] == multihost_worker.STEPS for w in workers)
    # Single process, same global batch, same [data=2, model=2] mesh shape on 4 local devices.
    mesh = parallel.make_mesh(data=2, model=2, devices=jax.devices()[:4])
    ref = multihost_worker.run(str(tmp_path / "single"), mesh)
    for w in workers:
        for key in ("loss", "eval_loss", "emb_sum"):
            np.testing.assert_allclose(w[key], ref[key], rtol=1e-5, err_msg=key)
    # Only process 0 writes the log; both processes wrote the shared checkpoint.
    log = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in log if '"train"' in x] == [1, 2, 3]
    assert (tmp_path / "checkpoints" / str(multihost_worker.STEPS)).is_dir()
