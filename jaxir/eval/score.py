"""Scoring any run against qrels as trec_eval and ir_measures users do (`jaxir score`), with the
checks they would want said aloud, and the text tables the commands print for people.

NumPy and the standard library only. The numbers are `jaxir.eval.metrics.evaluate`'s (pytrec_eval's
conventions, averaged over every judged query: a judged query the run lacks scores 0, as
``trec_eval -c``); what this module adds is what a person should hear before trusting them:

* none of the run's query ids is judged: a DataError (wrong split, wrong qrels file);
* only some are: one warning line with the counts;
* a cut-off deeper than the run (recall@1000 of a 100-deep run): one warning line with the depth.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from jaxir.errors import DataError
from jaxir.eval.metrics import Qrels, Run, canonical_metrics, cutoff_of, evaluate, run_depth


@dataclass
class Scored:
    """Means of each metric (canonical names, in the order asked), over ``num_queries`` judged
    queries; ``depth``: the most hits any query of the run has; ``warnings``: one line each."""

    means: dict[str, float]
    num_queries: int
    depth: int
    warnings: list[str] = field(default_factory=list)
    per_query: dict[str, dict[str, float]] | None = None


def _examples(ids: Iterable[str], n: int = 3) -> str:
    return ", ".join(repr(i) for i in sorted(ids)[:n])


def within_depth(metrics: Iterable[str], depth: float) -> list[str]:
    """The metrics (canonical names) whose cut-off a run ``depth`` deep reaches (no cut-off: all)."""
    return [m for m in canonical_metrics(metrics) if (cutoff_of(m) or 0) <= depth]


def score_run(run: Run, qrels: Qrels, metrics: Iterable[str], *, ignore_identical_ids: bool = True,
              per_query: bool = False) -> Scored:
    """Score ``run`` with ``metrics`` (any spelling `parse_metric` takes), after the checks in the
    module docstring."""
    names = canonical_metrics(metrics)
    if not run:
        raise DataError("the run has no hits")
    judged, ran = set(qrels), set(run)
    both = judged & ran
    if not both:
        raise DataError(f"none of the run's {len(ran)} query ids is in the qrels ({len(judged)} queries; "
                        f"run: {_examples(ran)}, ...; qrels: {_examples(judged)}, ...): another split "
                        "or qrels file?")
    warnings = []
    parts = []
    if len(both) < len(judged):
        parts.append(f"{len(judged) - len(both)} of the {len(judged)} judged queries are not in the run "
                     "(each scores 0 in the means, as with trec_eval -c)")
    if len(both) < len(ran):
        parts.append(f"{len(ran) - len(both)} of the run's {len(ran)} queries have no qrels (ignored)")
    if parts:
        warnings.append("; ".join(parts))
    depth = run_depth(run)
    shallow = [m for m in names if (cutoff_of(m) or 0) > depth]
    if shallow:
        warnings.append(f"the run holds at most {depth} hits per query, fewer than the cut-off of "
                        f"{', '.join(shallow)}: {'that metric counts' if len(shallow) == 1 else 'those count'} "
                        f"only the top {depth}")
    if per_query:
        means, rows = evaluate(run, qrels, metrics=names, ignore_identical_ids=ignore_identical_ids,
                               per_query=True)
    else:
        means, rows = evaluate(run, qrels, metrics=names, ignore_identical_ids=ignore_identical_ids), None
    return Scored({m: float(means[m]) for m in names}, len(judged), depth, warnings, rows)


def _cell(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == "n/a"
    return True


def text_table(header: Sequence[str], rows: Sequence[Sequence], *, floats: str = ".4f") -> str:
    """A Markdown table whose columns are as wide as their widest cell: numbers (floats with
    ``floats``, None as "n/a") right-aligned, text left-aligned."""
    fmt = lambda v: f"{v:{floats}}" if isinstance(v, float) else _cell(v)  # noqa: E731
    cells = [[str(h) for h in header]] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    right = [bool(rows) and all(_is_number(r[i]) for r in cells[1:]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.rjust(w) if a else c.ljust(w)  # noqa: E731
                                        for c, w, a in zip(r, widths, right)) + " |"
    rule = "|" + "|".join("-" * (w + 1) + (":" if a else "-") for w, a in zip(widths, right)) + "|"
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])])


def score_table(scored: Scored, label: str) -> str:
    """`jaxir score`'s table: one row, the run's label, the queries averaged over, each metric."""
    return text_table(["run", "queries", *scored.means], [[label, scored.num_queries, *scored.means.values()]])


def rounded(values: Mapping[str, float], digits: int = 4) -> dict[str, float]:
    """Timings and the like for JSON: a few decimals, not 16 digits."""
    return {k: round(float(v), digits) for k, v in values.items()}
