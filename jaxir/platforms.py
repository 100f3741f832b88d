"""Keep JAX from trying a TPU that is not there.

libtpu (the `tpu` extra, also in `test`: `jaxir plan` compiles for TPUs on any machine) makes JAX
try a TPU backend wherever it is installed. Where no TPU chip exists, that try costs about a second
and prints a libtpu error trace before JAX falls back to the CPU, as it should. `skip_absent_tpu`
names the CPU for JAX in exactly that case: the user named no platforms, libtpu is installed, no
TPU chip is on the PCI bus (JAX's own check) and no GPU plugin is installed, so the outcome (the
CPU backend) is the one JAX reaches anyway, minus the noise.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os


def skip_absent_tpu() -> bool:
    """Call before JAX's first computation; True when it named the CPU for JAX."""
    if "JAX_PLATFORMS" in os.environ or importlib.util.find_spec("libtpu") is None:
        return False
    if importlib.metadata.entry_points(group="jax_plugins") or importlib.util.find_spec("jax_plugins"):
        return False  # a GPU (or other) PJRT plugin: JAX's choice, not ours
    import jax

    try:
        from jax._src.hardware_utils import num_available_tpu_chips_and_device_id
    except ImportError:  # a JAX without the check: leave the choice to JAX
        return False
    if num_available_tpu_chips_and_device_id()[0]:
        return False
    jax.config.update("jax_platforms", "cpu")
    return True
