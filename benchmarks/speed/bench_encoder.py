"""Encoder throughput: jaxir's Flax BERT vs transformers' PyTorch BertModel, same process.

All-MiniLM-L6-v2 shapes, batch 32, sequence lengths 32 and 180, fp32 (and bf16 variants).
Runs interleaved rounds and prints tokens/s per system and the ratio jaxir / torch.

    python -m benchmarks.speed.bench_encoder [--rounds 5] [--lengths 32 180] [--bf16]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def _time(fn, reps: int) -> float:
    fn()  # warm-up / compile
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def jax_forward(batch: int, length: int, bf16: bool):
    import jax
    import jax.numpy as jnp

    from jaxir.models.bert import BertEncoder
    from jaxir.models.hf import load_bert

    config, params = load_bert(dtype=jnp.bfloat16 if bf16 else jnp.float32)
    rng = np.random.default_rng(0)
    ids = jnp.asarray(rng.integers(1000, 30000, (batch, length)), jnp.int32)
    mask = jnp.ones((batch, length), jnp.int32)
    params = jax.device_put(params)
    fn = jax.jit(lambda p, i, m: BertEncoder(config).apply({"params": p}, i, m))
    return lambda: fn(params, ids, mask).block_until_ready()


def torch_forward(batch: int, length: int, bf16: bool):
    import torch
    from transformers import BertModel

    from jaxir.text.model_dir import default_model_dir

    model = BertModel.from_pretrained(str(default_model_dir())).eval()
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(1000, 30000, (batch, length)))
    mask = torch.ones_like(ids)

    def run():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(input_ids=ids, attention_mask=mask)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lengths", type=int, nargs="+", default=[32, 180])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--bf16", action="store_true", help="also time bf16 compute on both sides")
    args = ap.parse_args()
    import torch

    print(f"torch threads={torch.get_num_threads()}  batch={args.batch}")
    print(f"{'system':<14}{'L':>5}{'tok/s median':>14}{'ratio jaxir/torch':>20}")
    for length in args.lengths:
        for bf16 in ([False, True] if args.bf16 else [False]):
            fns = {"jaxir": jax_forward(args.batch, length, bf16), "torch": torch_forward(args.batch, length, bf16)}
            secs = {k: [] for k in fns}
            for _ in range(args.rounds):  # interleave so machine drift hits both alike
                for k, fn in fns.items():
                    secs[k].append(_time(fn, args.reps))
            tps = {k: args.batch * length / np.median(v) for k, v in secs.items()}
            tag = " bf16" if bf16 else " fp32"
            for k in fns:
                ratio = f"{tps['jaxir'] / tps['torch']:.2f}" if k == "jaxir" else ""
                print(f"{k + tag:<14}{length:>5}{tps[k]:>14,.0f}{ratio:>20}")


if __name__ == "__main__":
    main()
