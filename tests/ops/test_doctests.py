"""The `>>>` examples in the docstrings of jaxir's central ops run as tests (issue 42): the
README's `python -m pytest -q tests` runs them here; one module alone:

    python -m doctest -o NORMALIZE_WHITESPACE -o ELLIPSIS jaxir/ops/maxsim.py

Each listed function must carry at least one example, so the check cannot pass vacuously when a
docstring loses its examples (or a module is renamed); a new example in one of these modules
runs without being listed.
"""
import doctest
import importlib

import pytest

EXAMPLES = {  # module -> the functions whose docstrings carry examples
    "jaxir.ops.maxsim": ["maxsim_pairwise"],
    "jaxir.ops.losses": ["infonce", "margin_mse"],
    "jaxir.ops.masks": ["mice_masks"],
    "jaxir.ops.sparse": ["flops", "topk_prune"],
    "jaxir.ops.scores": ["minmax_normalize"],
}
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    tests = {t.name.rsplit(".", 1)[-1]: len(t.examples) for t in doctest.DocTestFinder().find(module)}
    missing = [f for f in EXAMPLES[name] if not tests.get(f)]
    assert not missing, f"{name}: no >>> example in {missing}"
    failed, attempted = doctest.testmod(module, optionflags=FLAGS, report=False)
    assert attempted >= len(EXAMPLES[name]) and failed == 0, f"{name}: {failed} of {attempted} examples failed"
