"""Retriever options that override a field of the method's config (`base.config_option`) take that
field's range, choices and help, declared once on the field: the option and the config cannot
disagree, and listing the options imports no jax."""
import dataclasses
import importlib
import subprocess
import sys
import types
import typing

import pytest

from jaxir.config.options import field_help
from jaxir.retrievers import registry
from jaxir.retrievers.base import VALUE_RULES, config_option

# What each derived option overrides (kept in sync with the retrievers: the test fails on any change).
DERIVED = {
    **{(m, o): f"SparseConfig.{o}" for m in ("sparse", "splade")
       for o in ("top_k", "doc_maxlen", "doc_windows", "min_idf", "head_scale", "prior_stem", "batch_size")},
    **{(m, o): f"ColBERTConfig.{o}" for m in ("colbert", "colbert-rerank") for o in ("doc_maxlen", "batch_size")},
    ("i3", "doc_maxlen"): "I3Config.doc_maxlen", ("i3", "batch_size"): "I3Config.batch_size",
    ("dense", "doc_maxlen"): "DenseConfig.max_length", ("dense", "batch_size"): "DenseConfig.batch_size",
    ("cross-encoder", "alpha"): "CrossEncoderConfig.alpha",
    ("cross-encoder", "batch_size"): "CrossEncoderConfig.rerank_batch_size",
    ("mice", "alpha"): "MiceConfig.alpha", ("mice", "num_layers"): "MiceConfig.num_layers",
    ("mice", "batch_size"): "MiceConfig.rerank_batch_size",
}


def _config_field(ref: str):
    """(config class, field) of "module:Class.field"."""
    module, rest = ref.split(":")
    cls_name, name = rest.split(".")
    cls = getattr(importlib.import_module(module), cls_name)
    return cls, {f.name: f for f in dataclasses.fields(cls)}[name]


def _base_type(hint):
    """X of `X | None`, else the hint."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return args[0] if union and len(args) == 1 else hint


def _derived_options():
    for name in registry.REGISTRY:
        cls = registry.retriever_class(name)
        for option, f in registry.options_of(name).items():
            if "config_field" in f.metadata:
                yield name, cls, option, f


def test_every_option_has_help_and_the_expected_options_are_derived():
    for name in registry.REGISTRY:
        assert all(f.metadata["help"].strip() for f in registry.options_of(name).values()), name
    got = {(name, option): f.metadata["config_field"].split(":")[1] for name, _, option, f in _derived_options()}
    assert got == DERIVED


def test_a_derived_option_takes_exactly_its_config_fields_rules_type_and_help():
    for name, cls, option, f in _derived_options():
        config, field = _config_field(f.metadata["config_field"])
        where = f"{name} --{option} ({f.metadata['config_field']})"
        for rule in VALUE_RULES:  # bounds, choices, finiteness: the field's, none restated
            assert f.metadata.get(rule, {} if rule == "bounds" else None) == \
                field.metadata.get(rule, {} if rule == "bounds" else None), where
        assert field_help(config, field) and f.metadata["help"].startswith(field_help(config, field)), where
        assert _base_type(typing.get_type_hints(cls)[option]) is \
            _base_type(typing.get_type_hints(config)[field.name]), where
        assert f.repr is not f.metadata["search_only"], where  # search-only: out of the index cache key


def test_no_option_restates_a_ruled_config_field_of_its_method():
    """An option named as a field of its method's config that has a range or choices is derived
    from it (a plain `option` there would restate the range)."""
    for name in registry.REGISTRY:
        options = registry.options_of(name)
        refs = {f.metadata["config_field"].rsplit(".", 1)[0] for f in options.values() if "config_field" in f.metadata}
        for ref in refs:
            module, cls_name = ref.split(":")
            config = getattr(importlib.import_module(module), cls_name)
            ruled = {g.name for g in dataclasses.fields(config)
                     if g.metadata.get("bounds") or g.metadata.get("choices")}
            restated = sorted(o for o in ruled & set(options) if "config_field" not in options[o].metadata)
            assert not restated, (name, restated)


def test_config_option_adds_the_retrievers_note_and_refuses_an_unknown_field():
    f = config_option("jaxir.methods.mice_config:MiceConfig", "alpha", help="(default: the checkpoint's)",
                      search_only=True)
    assert f.metadata["bounds"] == {"ge": 0.0, "le": 1.0} and not f.repr and f.default is None
    assert f.metadata["help"].startswith("Rerank-time weight") and f.metadata["help"].endswith("(default: the checkpoint's)")
    with pytest.raises(TypeError, match="has no field 'nosuch'"):
        config_option("jaxir.methods.mice_config:MiceConfig", "nosuch")


def test_get_retriever_checks_a_derived_option_against_its_config_field():
    with pytest.raises(ValueError, match=r"--doc-maxlen must be >= 3, got 2 \(method sparse\)"):
        registry.get_retriever("sparse", doc_maxlen=2)
    with pytest.raises(ValueError, match=r"--top-k must be >= 1, got 0 \(method splade\)"):
        registry.get_retriever("splade", top_k=0)
    with pytest.raises(ValueError, match=r"--num-layers must be >= 1, got 0 \(method mice\)"):
        registry.get_retriever("mice", num_layers=0)


def test_listing_every_method_option_and_config_imports_no_jax():
    configs = [f"jaxir.methods.{m}_config" for m in ("sparse", "colbert", "i3", "mice", "cross_encoder", "dense")]
    code = (f"import importlib, sys\nfor m in {configs!r}: importlib.import_module(m)\n"
            "from jaxir.cli import build_parser\nfrom jaxir.retrievers import registry\n"
            "build_parser()\nfor m in registry.REGISTRY: registry.options_of(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'torch', 'optax'))\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
