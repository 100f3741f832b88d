"""jaxir.plan.table: plan figures -> markdown rows (fits, refused), and the table written between
its markers (replaced in place, appended once when absent)."""
from jaxir.plan.chips import GIB
from jaxir.plan.table import BEGIN, END, replace_block, row, table

BASE = {"recipe": "colbert", "topology": "v5e:2x2", "devices": 4, "remat": "nothing",
        "hbm_available_bytes": 15.75 * GIB, "compile_seconds": 219.9}
FITS = {**BASE, "fits": True, "compiled_flops_per_device": 5.57e12,
        "hbm": {"total_bytes": 6.75 * GIB, "headroom_fraction": 0.5714},
        "bounds": {"step_seconds_at_least": 0.02829, "bound_by": "compute", "mfu_at_most": 0.7055}}
REFUSED = {**BASE, "remat": None, "fits": False, "hbm": None,
           "refused": {"needs_at_least_bytes": 26.17 * GIB}}


def test_rows_say_what_the_compiler_said():
    assert row(FITS) == ("| colbert | v5e:2x2 (4 dev) | nothing | 6.75 GiB (of 15.75) | yes (57 % free) | 5.57e+12 "
                         "| 28.3 ms (compute) | 71 % | 220 s |")
    assert row(REFUSED) == "| colbert | v5e:2x2 (4 dev) | off | needs ≥ 26.17 GiB (of 15.75) | **no** | – | – | – | 220 s |"
    assert table([FITS, REFUSED]).count("\n") == 3  # header, rule, two rows


def test_block_replaced_in_place_or_appended_once():
    doc = "# TPU\n\nintro\n"
    once = replace_block(doc, "T1")
    assert once == f"# TPU\n\nintro\n\n{BEGIN}\nT1\n{END}\n"
    twice = replace_block(once + "\nafter\n", "T2")
    assert twice.count(BEGIN) == 1 and "T1" not in twice and f"{BEGIN}\nT2\n{END}" in twice
    assert twice.endswith("\nafter\n")
