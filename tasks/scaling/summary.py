"""A scaling-law fit as markdown tables beside the published laws, and as JSON (`fit.json`), so
`crucible plan --fit` can reuse a fit without refitting it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from tasks.scaling.fit import (
    BESIROGLU,
    HOFFMANN,
    HOFFMANN_ISOFLOP_A,
    HOFFMANN_ISOFLOP_B,
    PARAMETERS,
    Estimate,
    IsoFlopFit,
    Law,
    Observation,
    ParametricFit,
)

FORMAT = "crucible.scaling.fit/1"
SYMBOLS = {"E": "E", "A": "A", "B": "B", "alpha": "α", "beta": "β"}


def _count(x: float) -> str:
    """A parameter or token count the way papers print them: 72.2B, 1.33T."""
    if not math.isfinite(x):
        return "n/a"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _number(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "n/a"


def _interval(e: Estimate, fmt: Any = _number) -> str:
    return "n/a" if not (math.isfinite(e.low) and math.isfinite(e.high)) else f"{fmt(e.low)} – {fmt(e.high)}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _law_section(fit: ParametricFit) -> list[str]:
    rows = [
        [SYMBOLS[p], _number(e.value), _interval(e), f"{HOFFMANN.value(p):g}", f"{BESIROGLU.value(p):g}"]
        for p, e in fit.intervals().items()
    ]
    return [
        "### Parametric law: L(N, D) = E + A / N^α + B / D^β",
        "",
        *_table(["parameter", "fit", "interval", "Hoffmann et al. 2022", "Besiroglu et al. 2024"], rows),
        "",
    ]


def _isoflop_section(isofit: IsoFlopFit | None) -> list[str]:
    if isofit is None:
        return ["### IsoFLOP fit", "", "None: it needs runs grouped by compute budget (Observation.budget).", ""]
    minima = [
        [
            f"{m.budget:.3g}",
            str(m.runs),
            _count(m.parameters),
            _count(m.tokens),
            f"{m.loss:.4f}",
            "yes" if m.bracketed else "no",
        ]
        for m in isofit.minima
    ]
    exponents = [
        ["a (N_opt ∝ C^a)", _number(isofit.a.value), _interval(isofit.a), f"{HOFFMANN_ISOFLOP_A:g}"],
        ["b (D_opt ∝ C^b)", _number(isofit.b.value), _interval(isofit.b), f"{HOFFMANN_ISOFLOP_B:g}"],
    ]
    return [
        "### IsoFLOP minima (approach 2)",
        "",
        *_table(["budget (FLOPs)", "runs", "N_opt", "D_opt", "loss at minimum", "within the sizes run"], minima),
        "",
        *_table(["exponent", "fit", "interval", "Hoffmann et al. 2022"], exponents),
        "",
    ]


def _allocation_section(
    obs: Sequence[Observation], fit: ParametricFit, isofit: IsoFlopFit | None, budgets: Sequence[float]
) -> list[str]:
    largest = max(o.flops for o in obs)
    rows = []
    for c in budgets:
        a = fit.optimal(c)
        iso = _count(isofit.optimal(c).parameters.value) if isofit is not None else "n/a"
        beyond = f"{c / largest:.3g}×" if c > largest else "no"
        rows.append(
            [
                f"{c:.3g}",
                _count(a.parameters.value),
                _interval(a.parameters, _count),
                _count(a.tokens.value),
                _interval(a.tokens, _count),
                f"{a.tokens_per_parameter.value:.3g}",
                _interval(a.tokens_per_parameter, lambda x: f"{x:.3g}"),
                iso,
                beyond,
            ]
        )
    header = [
        "compute (FLOPs)",
        "N",
        "interval",
        "D",
        "interval",
        "tokens/param",
        "interval",
        "N (IsoFLOP)",
        "beyond largest run",
    ]
    return ["### Compute-optimal allocation (parametric law, C = 6ND)", "", *_table(header, rows), ""]


def fit_markdown(
    obs: Sequence[Observation], fit: ParametricFit, isofit: IsoFlopFit | None, budget_flops: list[float]
) -> str:
    """Markdown tables: the fitted law, the IsoFLOP exponents, and the allocation at each budget."""
    (n_lo, n_hi), (d_lo, d_hi) = fit.parameters_seen, fit.tokens_seen
    lines = [
        "## Scaling-law fit",
        "",
        f"Fitted to {len(obs)} runs: N {_count(n_lo)} – {_count(n_hi)} parameters, D {_count(d_lo)} – {_count(d_hi)} "
        f"tokens. Intervals are {fit.level:.0%} bootstrap percentile intervals over {len(fit.samples)} resamples.",
        "",
        *_law_section(fit),
        *_isoflop_section(isofit),
        *_allocation_section(obs, fit, isofit, budget_flops),
    ]
    return "\n".join(lines)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no NaN


def _isoflop_json(isofit: IsoFlopFit) -> dict[str, Any]:
    return {
        "minima": [asdict(m) for m in isofit.minima],
        "a": {k: _finite(v) for k, v in asdict(isofit.a).items()},
        "b": {k: _finite(v) for k, v in asdict(isofit.b).items()},
        "log_kn": isofit.log_kn,
        "log_kd": isofit.log_kd,
        "samples": [list(s) for s in isofit.samples],
        "level": isofit.level,
    }


def fit_to_json(fit: ParametricFit, isofit: IsoFlopFit | None) -> dict[str, Any]:
    """The fit (bootstrap laws included) as a JSON-ready dict; the IsoFLOP fit rides along."""
    return {
        "format": FORMAT,
        "law": asdict(fit.law),
        "samples": [asdict(s) for s in fit.samples],
        "parameters_seen": list(fit.parameters_seen),
        "tokens_seen": list(fit.tokens_seen),
        "level": fit.level,
        "objective": _finite(fit.objective),
        "isoflop": _isoflop_json(isofit) if isofit is not None else None,
    }


def _law_from(d: Any, where: str) -> Law:
    if not isinstance(d, dict) or set(d) != set(PARAMETERS):
        raise ValueError(f"{where} must map exactly {', '.join(PARAMETERS)} to numbers; got {d!r}")
    return Law(**{p: float(d[p]) for p in PARAMETERS})


def fit_from_json(d: dict[str, Any]) -> ParametricFit:
    """The ParametricFit that `fit_to_json` wrote (a `fit.json` file's contents)."""
    if d.get("format") != FORMAT:
        raise ValueError(f"not a scaling-law fit: format is {d.get('format')!r}, expected {FORMAT!r}")
    missing = [k for k in ("law", "samples", "parameters_seen", "tokens_seen", "level") if k not in d]
    if missing:
        raise ValueError(f"fit.json lacks {', '.join(missing)}; write it again with fit_to_json")
    n_lo, n_hi = (float(x) for x in d["parameters_seen"])
    d_lo, d_hi = (float(x) for x in d["tokens_seen"])
    objective = d.get("objective")
    return ParametricFit(
        law=_law_from(d["law"], "law"),
        samples=[_law_from(s, f"samples[{i}]") for i, s in enumerate(d["samples"])],
        parameters_seen=(n_lo, n_hi),
        tokens_seen=(d_lo, d_hi),
        level=float(d["level"]),
        objective=math.nan if objective is None else float(objective),
    )
