"""`jaxir train`'s checks that need the recipe's model, made on its shapes before any data is
read: the backbone's config.json is read, no weights, and the model's init is only traced
(`jax.eval_shape`), as `jaxir plan` does.

    check_recipe("cross-encoder", config)
    # OptionError: --optim.lr_multipliers: 'haed' names no parameter group (groups: bert, head)
"""
from __future__ import annotations


def check_recipe(recipe: str, r) -> None:
    """OptionError unless every `--optim.lr_multipliers` name is a top-level parameter group
    of the model recipe `recipe` trains with config `r` (the groups depend on the config: I³'s
    new modules, a cross-encoder's pooler); nothing to trace without multipliers."""
    if not r.optim.lr_multipliers:
        return
    import jax

    from jaxir.plan import backbone as shapes
    from jaxir.plan.inputs import step_inputs
    from jaxir.text import load_tokenizer
    from jaxir.training.optim import check_lr_multipliers

    spec, bert, _, _ = shapes.recipe_backbone(r)
    inputs = step_inputs(recipe, r, bert, load_tokenizer(shapes.tokenizer_dir(spec)))
    params = jax.eval_shape(inputs.task.init, jax.ShapeDtypeStruct((2,), "uint32"), None)
    check_lr_multipliers(dict(inputs.optim.lr_multipliers), params)
