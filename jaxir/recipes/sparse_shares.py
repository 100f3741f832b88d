"""The learned-sparse recipe's check that FLOPS bites: the encoder gradient's shares from the
ranking loss and from the FLOPS term(s) at their full lambda, printed and written to metrics.jsonl."""
from __future__ import annotations

from pathlib import Path

from jaxir.training.grad_shares import gradient_shares
from jaxir.training.logging import MetricsLogger


def regulariser_shares(model, params, batch) -> dict[str, float]:
    """Norms and shares of the "bert" gradient from ranking and from FLOPS (step None: after the
    warm-up), dropout off."""
    def aux(p):
        return model.loss_fn(p, batch)[1]

    def flops(p):
        m = aux(p)
        extra = model.config.query_flops_lambda * m["query_flops"] if "query_flops" in m else 0.0
        return m["flops_weight"] * m["flops"] + extra
    return gradient_shares({"rank": lambda p: aux(p)["rank"], "flops": flops}, params, "bert")


def log_regulariser_shares(model, batch, metrics: Path, when: str, step: int, params) -> None:
    """One `grad_share_<when>` row in `metrics` at `step`, and a line on stdout."""
    shares = regulariser_shares(model, params, batch)
    MetricsLogger(metrics).log(step, shares, split=f"grad_share_{when}")
    print(f"encoder gradient at {when} (lambda at its full value): " +
          ", ".join(f"{k} {v:.4g}" for k, v in shares.items()))
