"""Test set-up: 8 fake CPU devices (sharding tests), real data paths, the real MiniLM folder."""
import os

# Must happen before jax is imported anywhere in the test session.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# The fast lane (`make test-fast`: `pytest -m "not slow"`) leaves out every test that reads the
# real BEIR data, runs the real MiniLM weights by name, or trains through a recipe; they are
# marked here once, not file by file.
REAL_DATA_FIXTURES = {"beir_root", "scifact_dir", "nfcorpus_dir", "scifact_train", "scifact_test"}
SLOW_MODULES = {  # recipes end to end, TPU compiles, and training-heavy fixtures
    "test_recipes", "test_recipe_colbert", "test_recipe_cross_encoder", "test_recipe_i3", "test_recipe_mice",
    "test_recipe_reuse", "test_recipe_sparse", "test_sparse_teacher_grid", "test_splade", "test_plan_tpu",
    "test_remat", "test_training_multihost", "test_bert_parity", "test_interop_peers",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
        real = "minilm" in item.name.lower()  # parity and property tests on the real weights
        if real or module in SLOW_MODULES or REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _beir_root() -> Path:
    root = Path(os.environ.get("JAXIR_BEIR_ROOT", REPO.parent / "shared" / "data" / "beir"))
    if not (root / "scifact").is_dir():
        # Fail, never skip: a silently skipped real-data test proves nothing.
        raise FileNotFoundError(f"BEIR data not found at {root}; set JAXIR_BEIR_ROOT")
    return root


@pytest.fixture(scope="session")
def beir_root() -> Path:
    return _beir_root()


@pytest.fixture(scope="session")
def scifact_dir(beir_root) -> Path:
    return beir_root / "scifact"


@pytest.fixture(scope="session")
def nfcorpus_dir(beir_root) -> Path:
    return beir_root / "nfcorpus"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from jaxir.text.model_dir import default_model_dir

    return default_model_dir()


@pytest.fixture(scope="session")
def toy_beir(tmp_path_factory) -> Path:
    """The toy BEIR folder of `tests/toy_beir.py` (read-only: tests write their outputs elsewhere)."""
    from tests.toy_beir import write_toy_beir

    return write_toy_beir(tmp_path_factory.mktemp("toy"))
