"""`jaxir plan --recipe R --mode M --topology T`: compile a recipe's train step for a TPU topology
on this CPU and print (or `--json FILE`) what it needs per device and the bounds it implies.

Any recipe field is an option as in `jaxir train` (`--fit.batch_size 16 --fit.remat true
--model.doc_maxlen 128`); `--mesh.data/--mesh.model` set `fit.mesh_data/fit.mesh_model`. Bad
input (a mode, backbone, topology, mesh or batch that cannot be) is one line before anything
compiles.
"""
from __future__ import annotations

import argparse
import importlib


def add_parser(sub) -> None:
    """`jaxir plan` in `jaxir.cli`'s subcommands."""
    from jaxir import cli_args as check
    from jaxir.recipes import RECIPES

    p = sub.add_parser("plan", help="compile a recipe's train step for a TPU topology on this CPU (libtpu): "
                                    "HBM per device, FLOPs, step-time bound; other flags go to the recipe")
    p.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    p.add_argument("--mode", default="tpu-msmarco", help="the recipe's mode (default tpu-msmarco)")
    p.add_argument("--topology", required=True, help="TPU topology, e.g. v5e:2x2, v5e:4x4, v5p:2x2x1, v4:2x2x1")
    p.add_argument("--backbone", help="BERT shapes: bert-base, minilm, tiny, or a BERT config.json (or its folder); "
                                      "no weights are read (default: the recipe's model folder)")
    p.add_argument("--mesh.data", dest="mesh_data", type=int, help="data axis size (fit.mesh_data; -1: the rest)")
    p.add_argument("--mesh.model", dest="mesh_model", type=check.positive_int, help="model axis size (fit.mesh_model)")
    p.add_argument("--json", type=check.output_file, help="also write every figure here (JSON, with a boolean fits)")
    p.set_defaults(fn=cmd_plan, takes_extra=True)


def cmd_plan(args: argparse.Namespace, extra: list[str]) -> None:
    from jaxir.plan.report import format_text, write_json

    f = plan(args.recipe, args.mode, args.topology, backbone=args.backbone, extra=extra,
             mesh_data=args.mesh_data, mesh_model=args.mesh_model)
    print(format_text(f))
    if args.json:
        write_json(args.json, f)
        print(f"-> {args.json}")


def recipe_config(recipe: str, mode: str, extra: list[str]):
    """The recipe's config in `mode` with the given options: what `jaxir train` would train."""
    from jaxir.errors import OptionError
    from jaxir.recipes import RECIPES

    module = importlib.import_module(f"jaxir.recipes.{RECIPES[recipe]}")
    if mode not in module.MODES:
        raise OptionError(f"recipe {recipe} has no mode {mode!r}; its modes: {', '.join(module.MODES)}")
    config, _ = module.parse_args([*extra, "--mode", mode, "--out", "jaxir-plan"])
    return config


def _cpu_only() -> None:
    """The plan never starts an accelerator backend: jax runs on the CPU (libtpu only compiles)."""
    import jax
    from jax._src import xla_bridge

    if not xla_bridge.backends_are_initialized():
        jax.config.update("jax_platforms", "cpu")


def plan(recipe: str, mode: str, topology: str, *, backbone: str | None = None, extra: list[str] = (),
         mesh_data: int | None = None, mesh_model: int | None = None) -> dict:
    """Every figure of the plan (see `jaxir.plan.report.figures`); bad input raises a one-line
    OptionError before anything is compiled."""
    from jaxir.plan import backbone as shapes
    from jaxir.plan.chips import available_hbm_bytes, chip_of, chips_in, load_topology, require_libtpu
    from jaxir.plan.compile import check_batch, compile_step, mesh_for
    from jaxir.plan.inputs import step_inputs
    from jaxir.plan.report import figures

    mesh_args = [*(["--fit.mesh_data", str(mesh_data)] if mesh_data is not None else []),
                 *(["--fit.mesh_model", str(mesh_model)] if mesh_model is not None else [])]
    r = recipe_config(recipe, mode, [*mesh_args, *extra])
    _cpu_only()
    from jaxir.text import load_tokenizer

    spec, bert, _, where = shapes.recipe_backbone(r, backbone)
    chip = chip_of(topology)
    version = require_libtpu()
    devices = load_topology(topology).devices
    mesh = mesh_for(devices, r.fit.mesh_data, r.fit.mesh_model, topology)
    inputs = step_inputs(recipe, r, bert, load_tokenizer(shapes.tokenizer_dir(spec)))
    check_batch(inputs.batch, mesh)
    available = available_hbm_bytes(devices[0])
    compiled = compile_step(inputs, r.fit, mesh)
    setup = {"recipe": recipe, "mode": mode, "topology": topology, "libtpu": version,
             "mesh": {"data": int(mesh.shape["data"]), "model": int(mesh.shape["model"])},
             "backbone": {"name": backbone or where, "shape": shapes.describe(bert)},
             "compute_dtype": r.fit.compute_dtype, "remat": r.fit.remat_as, "global_batch": r.fit.batch_size,
             "batch_shapes": {k: list(v.shape) for k, v in inputs.batch.items()}, "extra": list(extra)}
    return figures(setup=setup, compiled=compiled, chip=chip, devices=len(devices), chips=chips_in(devices),
                   available=available, bert=bert, encoder_tokens=inputs.encoder_tokens)
