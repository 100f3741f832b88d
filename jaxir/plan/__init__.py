"""`jaxir plan`: a recipe's real train step compiled by the real TPU compiler, on this CPU.

The TPU compiler (PyPI `libtpu`, `pip install 'jaxir[tpu]'`) compiles for a topology it is only
told about (`jax.experimental.topologies`): no TPU, and no TPU backend, is ever started. What it
returns are the compiler's own figures (its static HBM allocation, its FLOP and byte counts);
what this package derives from them (step time, MFU, throughput) are bounds, never measurements.

    chips.py      per-chip public figures (peak bf16 rate, HBM bandwidth) and topology names
    backbone.py   BERT shapes: presets (bert-base, minilm, tiny) or a config.json, no weights
    inputs.py     each recipe's task, optimizer and one example batch (what `jaxir train` builds)
    compile.py    mesh, abstract sharded state and batch -> lowered and compiled train step
    report.py     the figures: HBM per device, FLOPs, roofline bound; text and JSON
    cli.py        the `jaxir plan` command line
"""
