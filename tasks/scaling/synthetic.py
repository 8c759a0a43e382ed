"""Runs drawn from a known law, laid out like Hoffmann et al.'s: what the fits are checked
against (tests/tasks/scaling/test_fit.py, benchmarks/scaling_fit_recovery.py)."""

from __future__ import annotations

import numpy as np

from tasks.scaling.fit import Law, Observation


def papers_grid(law: Law, *, sigma: float, seed: int = 0) -> list[Observation]:
    """IsoFLOP runs at 9 budgets from 6e18 to 3e21 (10 sizes each, N_opt/6 to 6 N_opt), and a
    grid of 8 sizes from 7e7 to 1.6e10 by 6 token counts from 5e9 to 5e11, each loss times
    lognormal noise of `sigma` (in log-loss)."""
    rng = np.random.default_rng(seed)
    shapes: list[tuple[float, float, float | None]] = []
    for c in np.geomspace(6e18, 3e21, 9):
        n_opt = float(law.optimum(c)[0])
        shapes += [(n, c / (6.0 * n), float(c)) for n in n_opt * np.geomspace(1 / 6, 6, 10)]
    shapes += [(n, d, None) for n in np.geomspace(7e7, 1.6e10, 8) for d in np.geomspace(5e9, 5e11, 6)]
    noise = np.exp(rng.normal(0.0, sigma, len(shapes))) if sigma > 0 else np.ones(len(shapes))
    return [
        Observation(parameters=n, tokens=d, flops=6.0 * n * d, loss=float(law.loss(n, d)) * k, budget=c, name=f"run{i}")
        for i, ((n, d, c), k) in enumerate(zip(shapes, noise))
    ]
