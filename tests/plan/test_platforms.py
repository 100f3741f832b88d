"""jaxir.platforms.skip_absent_tpu: with libtpu installed (the test extra) and no TPU chip, JAX runs
on the CPU without trying the TPU; a named platform or a TPU chip leaves the choice to JAX."""
import importlib.util
import os
import subprocess
import sys

import pytest

from jaxir import platforms

needs_libtpu = pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                                  reason="libtpu is not installed (the test extra installs it on Linux x86-64)")
PROBE = ("from jaxir.platforms import skip_absent_tpu; print(skip_absent_tpu()); "
         "import jax; print(jax.devices()[0].platform)")


def _run(env_update: dict, drop=("JAX_PLATFORMS",)) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in drop} | env_update
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)


@needs_libtpu
def test_no_tpu_chip_runs_on_cpu_without_trying_the_tpu():
    done = _run({})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "cpu"]
    assert "libtpu" not in done.stderr and "TPU" not in done.stderr, done.stderr


def test_a_named_platform_is_the_users_choice():
    done = _run({"JAX_PLATFORMS": "cpu"}, drop=())
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "cpu"]


@needs_libtpu
def test_a_tpu_chip_leaves_the_choice_to_jax(monkeypatch):
    import jax
    from jax._src import hardware_utils

    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    monkeypatch.setattr(hardware_utils, "num_available_tpu_chips_and_device_id", lambda: (4, None))
    before = jax.config.jax_platforms
    assert platforms.skip_absent_tpu() is False
    assert jax.config.jax_platforms == before
