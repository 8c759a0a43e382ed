"""A sweep's fits and report: the laws fitted to its runs (one run held out to test them),
fit.json for `crucible plan --fit`, the IsoFLOP and frontier plots, and report.md's section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.core.storage import read_json, write_json
from tasks.scaling.fit import (
    MIN_RUNS,
    IsoFlopFit,
    Observation,
    ParametricFit,
    fit_isoflop,
    fit_parametric,
)
from tasks.scaling.records import FIT_FILE, RUN_COLUMNS, read_sweep

ISOFLOP_PLOT = "isoflop.png"
FRONTIER_PLOT = "frontier.png"


@dataclass
class Analysis:
    observations: list[Observation]  # every finished run: what the reported laws are fitted to
    fit: ParametricFit
    isofit: IsoFlopFit | None
    isoflop_problem: str | None  # why there is no IsoFLOP fit, when there is none
    plan_budgets: list[float]
    held_out: Observation | None = None  # the run the hold-out test predicts
    holdout_fit: ParametricFit | None = None  # the law fitted without it


def observations(sweep: dict[str, Any]) -> list[Observation]:
    """The finished runs as (N, D, C, loss), N counted as the sweep says."""
    count = "parameters" if sweep["parameters_counted"] == "total" else "non_embedding_parameters"
    return [
        Observation(
            parameters=float(r[count]),
            tokens=float(r["tokens"]),
            flops=float(r["flops"]),
            loss=float(r["val_loss"]),
            budget=r["budget"],
            name=r["name"],
        )
        for r in sweep["runs"]
        if r.get("status") == "finished"
    ]


def analyse(sweep: dict[str, Any]) -> Analysis:
    """The laws fitted to every finished run, and the hold-out test: the largest-compute run
    predicted by the law fitted to the others."""
    obs = observations(sweep)
    settings = sweep["settings"]
    fit = fit_parametric(obs, bootstrap=settings["bootstrap"])
    isofit, problem = None, None
    if settings["budgets"] is not None:
        try:
            isofit = fit_isoflop(obs, bootstrap=settings["bootstrap"])
        except ValueError as exc:  # e.g. every budget's runs on one side of its optimum
            problem = str(exc)
    else:
        problem = "the sweep gives token budgets, not compute budgets (sweep.budgets)"
    top = max(o.flops for o in obs)
    a = Analysis(obs, fit, isofit, problem, settings["plan_budgets"] or [top * 10, top * 100, top * 1000])
    if settings["holdout"] and len(obs) > MIN_RUNS:
        a.held_out = max(obs, key=lambda o: o.flops)
        a.holdout_fit = fit_parametric([o for o in obs if o is not a.held_out], bootstrap=settings["bootstrap"])
    return a


def write_fits(root: Path) -> Analysis:
    """Fit the sweep in `root`; write fit.json and the plots beside sweep.json."""
    from tasks.scaling.plots import frontier_plot, isoflop_plot
    from tasks.scaling.summary import fit_to_json

    sweep = read_sweep(root)
    a = analyse(sweep)
    record = fit_to_json(a.fit, a.isofit)
    record["parameters_counted"] = sweep["parameters_counted"]
    record["held_out"] = holdout_record(a)
    record["isoflop_problem"] = a.isoflop_problem
    frontier_plot(a.observations, a.fit, root / FRONTIER_PLOT, isofit=a.isofit)
    if a.isofit is not None:
        isoflop_plot(a.observations, a.isofit, root / ISOFLOP_PLOT)
    record["markdown"] = fits_markdown(a, root)
    write_json(root / FIT_FILE, record)  # last: plan --fit and the report read it
    return a


def holdout_record(a: Analysis) -> dict[str, Any] | None:
    """The held-out run's measured loss against the law's prediction from the other runs."""
    if a.held_out is None or a.holdout_fit is None:
        return None
    o = a.held_out
    p = a.holdout_fit.predict(o.parameters, o.tokens)
    return {
        "name": o.name,
        "parameters": o.parameters,
        "tokens": o.tokens,
        "flops": o.flops,
        "measured": o.loss,
        "predicted": p.value,
        "low": p.low,
        "high": p.high,
        "relative_error": (p.value - o.loss) / o.loss,
    }


def write_sweep_report(root: Path) -> Path:
    """Fit, plot, and rewrite the run's report.md (curation, tokenization and the sweep)."""
    from tasks.report import write_report

    try:
        write_fits(Path(root))
    except ValueError as exc:  # too few finished runs to fit: the report says so, with the runs
        write_json(Path(root) / FIT_FILE, {"problem": str(exc), "markdown": f"No fit: {exc}."})
    return write_report(Path(root))


def sweep_section(root: Path) -> list[str]:
    """report.md's sweep section, from sweep.json and fit.json (no fitting here)."""
    sweep = read_sweep(root)
    lines = ["## Scaling-law sweep", "", *runs_markdown(sweep), ""]
    if not (root / FIT_FILE).is_file():
        return [*lines, "No fit yet: `crucible sweep` writes it once the runs have finished.", ""]
    return [*lines, read_json(root / FIT_FILE)["markdown"], ""]


def fits_markdown(a: Analysis, root: Path) -> str:
    """The hold-out test, the fitted laws and optima, and the plots."""
    from tasks.scaling.summary import fit_markdown

    lines = []
    if (held := holdout_record(a)) is not None:
        lines += [
            "### Hold-out",
            "",
            f"The largest-compute run, `{held['name']}`, was left out of the fits. The parametric law "
            f"fitted to the other {len(a.observations) - 1} runs predicts its loss as {held['predicted']:.4f} "
            f"(interval {held['low']:.4f}-{held['high']:.4f}); measured: {held['measured']:.4f}, an error of "
            f"{held['relative_error']:+.2%}. The law below is fitted to all {len(a.observations)} runs.",
            "",
        ]
    lines += [fit_markdown(a.observations, a.fit, a.isofit, a.plan_budgets), ""]
    if a.isoflop_problem:
        lines += [f"No IsoFLOP fit: {a.isoflop_problem}.", ""]
    for name, what in ((ISOFLOP_PLOT, "IsoFLOP profiles"), (FRONTIER_PLOT, "compute-optimal frontier")):
        if (root / name).is_file():
            lines += [f"![{what}]({name})", ""]
    return "\n".join(lines)


def runs_markdown(sweep: dict[str, Any]) -> list[str]:
    """The runs as a markdown table, the left-out grid points after it."""
    head = [*RUN_COLUMNS, "status"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows += ["| " + " | ".join(_cell(r.get(k)) for k in head) + " |" for r in sweep["runs"]]
    left = [f"- `{p['name']}`: {p['skipped']}" for p in sweep["left_out"]]
    return [
        f"{len(sweep['runs'])} runs on vocabulary {sweep['vocab_size']} and context {sweep['seq_len']}; "
        f"N in the fits counts {sweep['parameters_counted'].replace('_', '-')} parameters; `val_loss` is the "
        f"token-weighted mean over the whole validation split; FLOPs count attention (models/flops.py).",
        "",
        *rows,
        *(["", "Grid points left out:", *left] if left else []),
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
    if isinstance(value, int) and value >= 10_000:
        return f"{value:,}"
    return "" if value is None else str(value)
