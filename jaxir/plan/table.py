"""`jaxir plan` figures (the JSON of `--json`) as one markdown table, and that table written into
a document between two markers, so that tpu/README.md and docs/results-log.md quote the compiler, not a hand.

Every time in the table is a roofline lower bound and every MFU an upper bound (see
`jaxir.plan.report`); the header says so.
"""
from __future__ import annotations

import re

from jaxir.plan.chips import GIB

HEADER = ("| recipe | topology | remat | HBM per device (of usable) | fits | FLOPs / device / step "
          "| step time ≥ (bound) | MFU ≤ (bound) | compile |\n|---|---|---|---|---|---|---|---|---|")
BEGIN, END = "<!-- jaxir plan table: begin (generated; do not edit by hand) -->", "<!-- jaxir plan table: end -->"


def row(f: dict) -> str:
    """One plan's figures as a table row."""
    remat = f["remat"] or "off"
    usable = f"{f['hbm_available_bytes'] / GIB:.2f}"
    if f["hbm"] is None:
        need = f["refused"]["needs_at_least_bytes"] / GIB
        cells = [f"needs ≥ {need:.2f} GiB (of {usable})", "**no**", "–", "–", "–"]
    else:
        h, b = f["hbm"], f["bounds"]
        fits = f"yes ({100 * h['headroom_fraction']:.0f} % free)" if f["fits"] else "**no**"
        cells = [f"{h['total_bytes'] / GIB:.2f} GiB (of {usable})", fits, f"{f['compiled_flops_per_device']:.3g}",
                 f"{1e3 * b['step_seconds_at_least']:.1f} ms ({b['bound_by']})",
                 f"{100 * b['mfu_at_most']:.0f} %"]
    return "| " + " | ".join([f["recipe"], f"{f['topology']} ({f['devices']} dev)", remat, *cells,
                               f"{f['compile_seconds']:.0f} s"]) + " |"


def table(figures: list[dict]) -> str:
    """Rows in the order given, under HEADER."""
    return "\n".join([HEADER, *(row(f) for f in figures)])


def replace_block(text: str, block: str) -> str:
    """`text` with what lies between BEGIN and END replaced by `block` (markers kept); appended
    with its markers when the document has none yet."""
    new = f"{BEGIN}\n{block}\n{END}"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: new, text, count=1)
    return text.rstrip("\n") + "\n\n" + new + "\n"
