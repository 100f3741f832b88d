"""`--init-from`: a recipe starts from a saved model folder of its own method (every parameter,
new heads included) instead of the backbone + fresh heads. The folder is read before any data
work, so a wrong one fails in seconds; its tree must be the one the recipe's model builds."""
from __future__ import annotations

import jax


def warm_init(model, start_params, *, where: str, what: str):
    """A Task.init returning `start_params` after checking they fit `model` (CheckpointError,
    one line, naming the first differences: another variant, other towers, another width)."""
    from jaxir.models.saved_model import check_same_tree

    check_same_tree(jax.eval_shape(model.init, jax.random.PRNGKey(0)), start_params, where=where, what=what)
    return lambda rng, batch: start_params
