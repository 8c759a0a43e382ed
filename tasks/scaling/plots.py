"""Figures of a scaling-law fit: IsoFLOP curves with their minima, and the compute-optimal frontier."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from infra.core.storage import atomic_path
from tasks.scaling.fit import IsoFlopFit, Observation, ParametricFit, law_quantiles


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _save(plt: ModuleType, fig: Any, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def isoflop_plot(obs: Sequence[Observation], isofit: IsoFlopFit, path: Path) -> None:
    """Loss against parameters per compute budget: the runs, the fitted parabola, its minimum."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(isofit.minima)))
    for m, colour in zip(isofit.minima, colours):
        runs = [o for o in obs if o.budget is not None and float(o.budget) == m.budget]
        n = np.array([o.parameters for o in runs])
        ax.scatter(n, [o.loss for o in runs], color=colour, s=14, label=f"{m.budget:.2g} FLOPs")
        # Span the runs and the minimum, which may lie outside them when not bracketed.
        grid = np.geomspace(min(n.min(), m.parameters), max(n.max(), m.parameters), 100)
        c2, c1, c0 = m.coefficients
        x = np.log(grid)
        ax.plot(grid, c2 * x * x + c1 * x + c0, color=colour, linewidth=1)
        ax.scatter([m.parameters], [m.loss], marker="*", s=110, color=colour, edgecolors="black", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("final loss (nats/token)")
    ax.set_title("IsoFLOP curves (star: fitted minimum)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _save(plt, fig, path)


def frontier_plot(obs: Sequence[Observation], fit: ParametricFit, path: Path, isofit: IsoFlopFit | None = None) -> None:
    """Compute-optimal N against C from the law with its bootstrap band; IsoFLOP minima; the runs."""
    plt = _pyplot()
    flops = np.array([o.flops for o in obs])
    # Two decades past the largest run: the extrapolation a plan reads off this figure.
    c = np.geomspace(flops.min() / 2.0, flops.max() * 100.0, 200)

    def n_opt(law: Any) -> Any:
        return law.optimum(c)[0]

    low, high = law_quantiles(fit, n_opt)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(flops, [o.parameters for o in obs], s=10, color="0.6", label="runs (any split)")
    ax.plot(c, n_opt(fit.law), color="C0", label="parametric law (closed form)")
    if fit.samples:
        ax.fill_between(c, low, high, color="C0", alpha=0.2, label=f"{fit.level:.0%} bootstrap band")
    if isofit is not None:
        ax.scatter(
            [m.budget for m in isofit.minima],
            [m.parameters for m in isofit.minima],
            marker="*",
            s=110,
            color="C1",
            edgecolors="black",
            zorder=3,
            label=f"IsoFLOP minima (N ∝ C^{isofit.a.value:.2f})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("compute-optimal parameters N")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(plt, fig, path)
