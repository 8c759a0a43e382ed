"""`crucible plan --fit`: sizing from a sweep's fitted law instead of the 20-tokens rule, with
the range of runs the fit saw and a warning where the plan lies far outside it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from infra.core.storage import read_json
from tasks.scaling.fit import Estimate, ParametricFit
from tasks.scaling.records import FIT_FILE


@dataclass(frozen=True)
class FittedPlan:
    parameters: float
    tokens: float
    loss: Estimate
    lines: list[str]  # what to print, warnings included
    extrapolated: bool


def load_fit(sweep_dir: Path) -> tuple[ParametricFit, str]:
    """The sweep's fitted law and what its N counts ('total' or 'non_embedding')."""
    from tasks.scaling.summary import fit_from_json

    path = Path(sweep_dir) / FIT_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no {FIT_FILE} in {sweep_dir}: pass the run directory of a finished `crucible sweep` "
            f"(runs/<run id>), or run `crucible report {sweep_dir}` if its runs finished"
        )
    data = read_json(path)
    if "problem" in data:
        raise ValueError(f"the sweep in {sweep_dir} has no fitted law: {data['problem']}")
    return fit_from_json(data), data.get("parameters_counted", "total")


def fitted_plan(
    fit: ParametricFit,
    counted: str,
    *,
    budget: float | None = None,
    parameters: float | None = None,
    tokens: float | None = None,
    factor: float = 10.0,
) -> FittedPlan:
    """N and D for a compute budget (its fitted optimum) or for N parameters (D given, or the
    fitted optimum for N), with the loss the law predicts and the fit's intervals."""
    lines = []
    if budget is not None:
        opt = fit.optimal(budget)
        n, d = opt.parameters.value, opt.tokens.value
        lines += [
            f"fitted compute-optimal split of {budget:.3e} FLOPs (C = 6ND):",
            f"  parameters ({counted.replace('_', '-')}): {_est(opt.parameters)}",
            f"  tokens:              {_est(opt.tokens)}",
            f"  tokens per parameter: {_est(opt.tokens_per_parameter, '.1f')}",
        ]
    else:
        assert parameters is not None
        n = parameters
        d = tokens if tokens is not None else fit.law.optimal_tokens(n)
        lines += [f"tokens: {d:,.0f}" + ("" if tokens is not None else " (the fitted compute-optimal amount for N)")]
    loss = fit.predict(n, d)
    lines.append(f"predicted validation loss: {_est(loss, '.4f')} nats per token")
    seen, far = _range_lines(fit, n, d, factor)
    return FittedPlan(n, d, loss, lines + seen, far)


def _range_lines(fit: ParametricFit, n: float, d: float, factor: float) -> tuple[list[str], bool]:
    (n_lo, n_hi), (d_lo, d_hi) = fit.parameters_seen, fit.tokens_seen
    lines = [f"the fit saw N {n_lo:,.0f}-{n_hi:,.0f} and D {d_lo:,.0f}-{d_hi:,.0f}"]
    beyond = max(_outside(n, n_lo, n_hi), _outside(d, d_lo, d_hi))
    far = beyond > factor
    if far:
        lines.append(
            f"warning: this plan extrapolates {beyond:,.0f}x beyond the sizes the fit saw (more than "
            f"--extrapolation-warning {factor:g}x): treat its numbers as a guess, and sweep nearer the target"
        )
    return lines, far


def _outside(x: float, lo: float, hi: float) -> float:
    """How many times x lies beyond [lo, hi] (1 inside it)."""
    return max(1.0, x / hi, lo / x)


def _est(e: Estimate, spec: str = ",.0f") -> str:
    if math.isnan(e.low):
        return format(e.value, spec)
    return f"{format(e.value, spec)} (interval {format(e.low, spec)} to {format(e.high, spec)})"
