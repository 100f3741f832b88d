"""The plan's figures, from the compiler's numbers and the chip table: HBM per device against
what the compiler lets a program use, FLOPs against 6·N·T, and a roofline lower bound on the
step time (with the MFU and throughput upper bounds it implies). Bounds, never measurements.

The FLOPs term (compiled FLOPs / peak) is a strict lower bound. The bytes term uses XLA's
`bytes accessed`, summed over its fused ops: the HBM traffic when nothing stays in on-chip
memory between ops, so that term can overstate what a TPU really moves.
"""
from __future__ import annotations

import json
from pathlib import Path

from jaxir.plan.chips import GIB


def encoder_params(bert) -> int:
    """Non-embedding params of one BERT encoder (its layers): the N of 6·N·T."""
    h, f, n = bert.hidden_size, bert.intermediate_size, bert.num_layers
    per_layer = (3 * h * h + 3 * h) + (h * h + h) + (h * f + f) + (f * h + h) + 4 * h  # QKV, out, FFN, 2 LN
    return n * per_layer


def figures(*, setup: dict, compiled, chip, devices: int, chips: int, available: float, bert,
            encoder_tokens: int) -> dict:
    """Everything the plan reports, JSON-able (bytes, FLOPs, seconds; per device)."""
    per_chip = devices // chips
    peak, bandwidth = chip.peak_bf16_flops / per_chip, chip.hbm_bytes_per_s / per_chip
    tokens = encoder_tokens / devices
    n = encoder_params(bert)
    out = {**setup, "device_kind": chip.device_kind, "devices": devices, "chips": chips,
           "devices_per_chip": per_chip, "compile_seconds": round(compiled.seconds, 2),
           "encoder_params": n, "encoder_tokens_per_step": encoder_tokens, "encoder_tokens_per_device": tokens,
           "analytic_flops_per_device": 6.0 * n * tokens,
           "chip": {"generation": chip.generation, "peak_bf16_flops": chip.peak_bf16_flops,
                    "hbm_bytes_per_s": chip.hbm_bytes_per_s, "hbm_gib": chip.hbm_gib},
           "hbm_available_bytes": available,
           "arguments_counted_bytes": compiled.argument_bytes}  # unpadded shard sizes (TPU layouts pad)
    if compiled.oom is not None:
        need = compiled.oom["need_bytes"]
        out.update(fits=False, hbm=None, compiled_flops_per_device=None, compiled_bytes_per_device=None,
                   bounds=None, refused={"what": compiled.oom["what"], "needs_bytes": need,
                                         "available_bytes": compiled.oom["available_bytes"],
                                         "arguments_bytes": compiled.argument_bytes,
                                         "needs_at_least_bytes": need + compiled.argument_bytes})
        return out
    m = compiled.memory
    total = m["arguments"] + m["temporaries"] + m["outputs"] - m["aliased"] + m["code"]
    out["hbm"] = {**{f"{k}_bytes": v for k, v in m.items()}, "total_bytes": total,
                  "headroom_fraction": 1.0 - total / available}
    out["fits"] = total <= available
    flops, moved = compiled.cost["flops"], compiled.cost["bytes"]
    out["compiled_flops_per_device"], out["compiled_bytes_per_device"] = flops, moved
    compute, memory = flops / peak, moved / bandwidth
    step = max(compute, memory)
    out["bounds"] = {"step_seconds_at_least": step, "compute_seconds": compute, "memory_seconds": memory,
                     "bound_by": "compute" if compute >= memory else "memory",
                     "mfu_at_most": out["analytic_flops_per_device"] / (step * peak) if step else None,
                     "mfu_at_most_compute_only": out["analytic_flops_per_device"] / flops if flops else None,
                     "tokens_per_s_per_device_at_most": tokens / step if step else None}
    return out


def _gib(x: float) -> str:
    return f"{x / GIB:.2f} GiB" if x >= GIB / 10 else f"{x / 2 ** 20:.1f} MiB"


def _count(x: float) -> str:
    return f"{x / 1e6:.1f}M" if x >= 1e5 else f"{x / 1e3:.1f}k"


def format_text(f: dict) -> str:
    remat = f"on ({f['remat']})" if f["remat"] else "off"
    unit = "device (one chip)" if f["devices_per_chip"] == 1 else f"device (a TensorCore; {f['devices_per_chip']} per chip)"
    lines = [f"jaxir plan: {f['recipe']} --mode {f['mode']} on {f['topology']} ({f['devices']} x {f['device_kind']}), "
             f"mesh data={f['mesh']['data']} x model={f['mesh']['model']}, backbone {f['backbone']['name']} "
             f"{f['backbone']['shape']}, {f['compute_dtype']}, remat {remat}, global batch "
             f"{f['global_batch']}",
             f"compiled by libtpu {f['libtpu']} in {f['compile_seconds']:.1f} s (nothing ran); figures per {unit}"]
    avail = f["hbm_available_bytes"]
    if not f["fits"] and f["hbm"] is None:
        r = f["refused"]
        lines += [f"HBM: does NOT fit, the compiler refused it: {r['what']} need {_gib(r['needs_bytes'])} of the "
                  f"{_gib(r['available_bytes'])} a program may use; with the arguments ({_gib(r['arguments_bytes'])}: "
                  f"state and batch shards) it needs >= {_gib(r['needs_at_least_bytes'])} per device"]
        return "\n".join(lines)
    h = f["hbm"]
    verdict = (f"fits ({100 * h['headroom_fraction']:.0f} % headroom)" if f["fits"]
               else f"does NOT fit: needs {_gib(h['total_bytes'])}")
    lines += ["HBM (the compiler's static allocation):",
              f"  arguments    {_gib(h['arguments_bytes'])}",
              f"  temporaries  {_gib(h['temporaries_bytes'])}",
              f"  outputs      {_gib(h['outputs_bytes'])} ({_gib(h['aliased_bytes'])} of them aliased to the "
              "donated arguments)",
              f"  code         {_gib(h['code_bytes'])}",
              f"  total        {_gib(h['total_bytes'])} of {_gib(avail)} a program may use "
              f"({f['chip']['hbm_gib']:g} GiB per chip) -> {verdict}"]
    b = f["bounds"]
    ratio = f["compiled_flops_per_device"] / f["analytic_flops_per_device"] if f["analytic_flops_per_device"] else 0
    lines += ["work per step (the compiler's cost analysis):",
              f"  FLOPs        {f['compiled_flops_per_device']:.3e} compiled vs {f['analytic_flops_per_device']:.3e} "
              f"analytic 6·N·T (N {_count(f['encoder_params'])} encoder params, T "
              f"{f['encoder_tokens_per_device']:,.0f} tokens) = {ratio:.2f}x",
              f"  bytes        {f['compiled_bytes_per_device']:.3e} accessed (XLA's count over its fused ops: the "
              "HBM traffic if nothing stays on chip between them)",
              f"bounds (from peak {f['chip']['peak_bf16_flops'] / 1e12:g} TFLOP/s bf16 and "
              f"{f['chip']['hbm_bytes_per_s'] / 1e9:g} GB/s HBM per chip; not measurements):",
              f"  step time    >= {1e3 * b['step_seconds_at_least']:.2f} ms ({b['bound_by']}-bound: FLOPs "
              f"{1e3 * b['compute_seconds']:.2f} ms, bytes {1e3 * b['memory_seconds']:.2f} ms)",
              f"  MFU          <= {100 * b['mfu_at_most']:.1f} % (<= {100 * b['mfu_at_most_compute_only']:.1f} % "
              "from the FLOPs alone)",
              f"  tokens/s     <= {b['tokens_per_s_per_device_at_most']:,.0f} per device"]
    return "\n".join(lines)


def write_json(path: str | Path, f: dict) -> None:
    """Atomically: a reader (or a resumed table run) never sees half a file."""
    from jaxir.fs import write_text

    write_text(path, json.dumps(f, indent=2) + "\n")
