"""Scaling-law fits: the parametric law L(N, D) = E + A/N^alpha + B/D^beta fitted to every run
(Hoffmann et al. 2022, approach 3, with the corrections of Besiroglu et al. 2024), and IsoFLOP
parabolas (approach 2); each with bootstrap percentile intervals.

Compute is C = 6ND throughout, the approximation both papers use for a dense transformer.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
FloatOrArray = float | Array

PARAMETERS = ("E", "A", "B", "alpha", "beta")
MIN_RUNS = len(PARAMETERS)  # fewer runs than free parameters cannot pin a law down
MIN_SIZES_PER_BUDGET = 3  # a parabola has three coefficients
MIN_BUDGETS = 2  # a line through the minima needs two points


@dataclass(frozen=True)
class Observation:
    """One finished training run: `parameters` (N) trained on `tokens` (D) with `flops` (C)."""

    parameters: float
    tokens: float
    flops: float
    loss: float
    budget: float | None = None  # the IsoFLOP compute budget the run belongs to, if any
    name: str = ""


@dataclass(frozen=True)
class Law:
    """L(N, D) = E + A / N^alpha + B / D^beta."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def loss(self, n: FloatOrArray, d: FloatOrArray) -> FloatOrArray:
        """The predicted loss of N parameters trained on D tokens (numpy arrays broadcast)."""
        return self.E + self.A / np.power(n, self.alpha) + self.B / np.power(d, self.beta)

    def optimum(self, c: FloatOrArray) -> tuple[FloatOrArray, FloatOrArray]:
        """(N_opt, D_opt) minimising the loss at compute C = 6ND (Hoffmann et al. eq. 4)."""
        half = np.asarray(c, dtype=np.float64) / 6.0
        n_opt = self._g * np.power(half, self.beta / (self.alpha + self.beta))
        return n_opt, half / n_opt

    def optimal_tokens(self, n: float) -> float:
        """D for N parameters at the budget whose optimum is N: `optimum` solved for C."""
        half = (n / self._g) ** ((self.alpha + self.beta) / self.beta)  # C / 6
        return float(half / n)

    @property
    def _g(self) -> float:
        """G of N_opt = G (C/6)^(beta/(alpha+beta))."""
        return float((self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta)))

    def value(self, name: str) -> float:
        """One parameter by its name in PARAMETERS."""
        return float(getattr(self, name))


# The published laws, for comparison. Hoffmann et al. 2022 (section 3.3) as printed, rounded;
# Besiroglu et al. 2024 re-fitted approach 3 to data read from Hoffmann's figure 4.
HOFFMANN = Law(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
BESIROGLU = Law(E=1.82, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)
HOFFMANN_ISOFLOP_A = 0.49  # approach 2: N_opt grows as C^0.49
HOFFMANN_ISOFLOP_B = 0.51  # and D_opt as C^0.51


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its bootstrap percentile interval (NaN bounds without samples)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Allocation:
    """The compute-optimal split of `flops` into parameters and tokens."""

    flops: float
    parameters: Estimate
    tokens: Estimate
    tokens_per_parameter: Estimate


def estimate(value: float, samples: Sequence[float], level: float) -> Estimate:
    """`value` with the central `level` percentile interval of `samples`."""
    finite = np.asarray([s for s in samples if math.isfinite(s)], dtype=np.float64)
    if finite.size == 0:
        return Estimate(float(value), math.nan, math.nan)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return Estimate(float(value), float(low), float(high))


def _allocation(
    c: float, point: tuple[float, float], samples: Sequence[tuple[float, float]], level: float
) -> Allocation:
    n, d = point
    return Allocation(
        flops=float(c),
        parameters=estimate(n, [s[0] for s in samples], level),
        tokens=estimate(d, [s[1] for s in samples], level),
        tokens_per_parameter=estimate(d / n, [s[1] / s[0] for s in samples], level),
    )


@dataclass(frozen=True)
class ParametricFit:
    """A fitted law, its bootstrap refits, and the range of runs it was fitted to."""

    law: Law
    samples: list[Law]
    parameters_seen: tuple[float, float]  # smallest and largest N fitted
    tokens_seen: tuple[float, float]  # smallest and largest D fitted
    level: float = 0.95
    objective: float = math.nan  # the summed Huber loss at the optimum

    def intervals(self) -> dict[str, Estimate]:
        """Each parameter of the law with its bootstrap interval."""
        return {p: estimate(self.law.value(p), [s.value(p) for s in self.samples], self.level) for p in PARAMETERS}

    def predict(self, n: float, d: float) -> Estimate:
        """The predicted loss of N parameters trained on D tokens."""
        return estimate(float(self.law.loss(n, d)), [float(s.loss(n, d)) for s in self.samples], self.level)

    def optimal(self, c: float) -> Allocation:
        """The compute-optimal N and D at compute C, by the closed form."""

        def point(law: Law) -> tuple[float, float]:
            n, d = law.optimum(c)
            return float(n), float(d)

        return _allocation(c, point(self.law), [point(s) for s in self.samples], self.level)


def _check_runs(obs: Sequence[Observation]) -> None:
    if len(obs) < MIN_RUNS:
        raise ValueError(
            f"a parametric fit has {len(PARAMETERS)} free parameters ({', '.join(PARAMETERS)}) and needs at "
            f"least {MIN_RUNS} runs; got {len(obs)}"
        )
    bad = [
        f"run {o.name or i} has {field}={getattr(o, field)}"
        for i, o in enumerate(obs)
        for field in ("parameters", "tokens", "loss")
        if not (math.isfinite(getattr(o, field)) and getattr(o, field) > 0)
    ]
    if bad:
        raise ValueError("parameters, tokens and loss must be positive and finite: " + "; ".join(bad[:5]))


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie between 0 and 1, e.g. 0.95; got {level}")


def _huber_objective(theta: Array, log_n: Array, log_d: Array, log_loss: Array, delta: float) -> tuple[float, Array]:
    """Summed Huber loss of log L_pred - log L_obs, and its gradient in (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    # log-sum-exp with the largest term factored out: exp(a - alpha log N) overflows otherwise.
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    residual = top + np.log(total) - log_loss
    weights /= total  # d log L_pred / d term: each term's share of the predicted loss
    size = np.abs(residual)
    value = np.where(size <= delta, 0.5 * residual**2, delta * (size - 0.5 * delta)).sum()
    slope = np.clip(residual, -delta, delta)  # the Huber loss's derivative
    grad = np.array(
        [
            slope @ weights[0],
            slope @ weights[1],
            slope @ weights[2],
            -(slope * weights[0]) @ log_n,
            -(slope * weights[1]) @ log_d,
        ]
    )
    return float(value), grad


# Hoffmann et al. and Besiroglu et al. start L-BFGS from this grid over (a, b, e, alpha, beta);
# alpha = beta = 0 is moved to a small positive value, since the exponents are bounded above 0.
START_GRID = (
    np.arange(0.0, 30.0, 5.0),
    np.arange(0.0, 30.0, 5.0),
    np.arange(-1.0, 1.5, 0.5),
    np.array([0.05, 0.5, 1.0, 1.5, 2.0]),
    np.array([0.05, 0.5, 1.0, 1.5, 2.0]),
)
STARTS = 10  # L-BFGS runs; from every one of the 4,500 grid points they would take minutes
BOUNDS = [(-20.0, 80.0), (-20.0, 80.0), (-10.0, 5.0), (1e-3, 4.0), (1e-3, 4.0)]
# Besiroglu et al.: Hoffmann's fit stopped before converging, its loss (a mean of Huber terms
# with delta 1e-3) being tiny against the optimiser's tolerance. Here the terms are summed, and
# since L-BFGS-B's ftol is relative to max(|f|, 1) while f is about 1e-3, ftol sits far below f.
LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-13, "maxiter": 20_000, "maxfun": 40_000, "maxls": 50}


def _minimise(theta0: Array, data: tuple[Array, Array, Array, float]) -> tuple[Array, float]:
    from scipy.optimize import minimize

    result = minimize(
        _huber_objective, theta0, args=data, jac=True, method="L-BFGS-B", bounds=BOUNDS, options=LBFGS_OPTIONS
    )
    return np.asarray(result.x, dtype=np.float64), float(result.fun)


def _best_starts(data: tuple[Array, Array, Array, float], count: int) -> list[Array]:
    """For each pair of starting exponents, the grid's best (a, b, e); the `count` best pairs.

    The whole grid is evaluated at once; keeping one start per exponent pair keeps the starts
    apart, where the grid's overall best points would all lie in one basin.
    """
    log_n, log_d, log_loss, delta = data
    grid = np.array(list(itertools.product(*START_GRID)))  # (points, 5), exponents varying fastest
    a, b, e, alpha, beta = (grid[:, i : i + 1] for i in range(5))
    size = np.abs(np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e) - log_loss)
    values = np.where(size <= delta, 0.5 * size**2, delta * (size - 0.5 * delta)).sum(axis=1)
    pairs = len(START_GRID[3]) * len(START_GRID[4])
    per_pair = values.reshape(-1, pairs)  # rows: (a, b, e) points; columns: (alpha, beta) pairs
    best_row = per_pair.argmin(axis=0)
    order = np.argsort(per_pair[best_row, np.arange(pairs)])[:count]
    return [grid[best_row[p] * pairs + p] for p in order]


def _law(theta: Array) -> Law:
    a, b, e, alpha, beta = (float(x) for x in theta)
    return Law(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta)


def fit_parametric(
    obs: Sequence[Observation], *, delta: float = 1e-3, bootstrap: int = 200, seed: int = 0, level: float = 0.95
) -> ParametricFit:
    """Fit L(N, D) by Huber regression in log space (approach 3), with `bootstrap` refits."""
    _check_runs(obs)
    _check_level(level)
    log_n = np.log([o.parameters for o in obs])
    log_d = np.log([o.tokens for o in obs])
    log_loss = np.log([o.loss for o in obs])
    data = (log_n, log_d, log_loss, delta)
    fits = [_minimise(start, data) for start in _best_starts(data, STARTS)]
    theta, objective = min(fits, key=lambda f: f[1])
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap):
        pick = rng.integers(0, len(obs), len(obs))
        # From the full fit's optimum: a resample's optimum lies near it, and one start is fast.
        refit, _ = _minimise(theta, (log_n[pick], log_d[pick], log_loss[pick], delta))
        samples.append(_law(refit))
    return ParametricFit(
        law=_law(theta),
        samples=samples,
        parameters_seen=(float(np.exp(log_n.min())), float(np.exp(log_n.max()))),
        tokens_seen=(float(np.exp(log_d.min())), float(np.exp(log_d.max()))),
        level=level,
        objective=objective,
    )


@dataclass(frozen=True)
class IsoFlopMinimum:
    """The fitted minimum of one IsoFLOP curve: loss = c2 x^2 + c1 x + c0 with x = ln N."""

    budget: float
    parameters: float  # N_opt
    tokens: float  # D_opt = budget / (6 N_opt)
    loss: float  # the parabola at N_opt
    coefficients: tuple[float, float, float]  # (c2, c1, c0)
    runs: int
    bracketed: bool  # N_opt lies within the sizes run; if not, the minimum is extrapolated


@dataclass(frozen=True)
class IsoFlopFit:
    """Approach 2: per-budget minima and the power laws N_opt = k_n C^a, D_opt = k_d C^b."""

    minima: list[IsoFlopMinimum]
    a: Estimate
    b: Estimate
    log_kn: float
    log_kd: float
    samples: list[tuple[float, float, float, float]]  # (ln k_n, a, ln k_d, b) per resample
    level: float = 0.95

    def optimal(self, c: float) -> Allocation:
        """N_opt and D_opt at compute C from the fitted power laws."""

        def point(log_kn: float, a: float, log_kd: float, b: float) -> tuple[float, float]:
            return math.exp(log_kn + a * math.log(c)), math.exp(log_kd + b * math.log(c))

        best = point(self.log_kn, self.a.value, self.log_kd, self.b.value)
        return _allocation(c, best, [point(*s) for s in self.samples], self.level)


def _vertex(budget: float, n: Array, loss: Array) -> IsoFlopMinimum | None:
    """The parabola's minimum, or None when it opens downward (no minimum to find)."""
    x = np.log(n)
    c2, c1, c0 = (float(v) for v in np.polyfit(x, loss, 2))
    if c2 <= 0.0:
        return None
    x_opt = -c1 / (2.0 * c2)
    n_opt = math.exp(x_opt)
    return IsoFlopMinimum(
        budget=budget,
        parameters=n_opt,
        tokens=budget / (6.0 * n_opt),
        loss=c0 - c1 * c1 / (4.0 * c2),
        coefficients=(c2, c1, c0),
        runs=len(n),
        bracketed=bool(x.min() <= x_opt <= x.max()),
    )


def _budgets(obs: Sequence[Observation]) -> dict[float, tuple[Array, Array]]:
    """(N, loss) per budget, for the budgets with enough distinct sizes to fit a parabola."""
    groups: dict[float, list[Observation]] = defaultdict(list)
    for o in obs:
        if o.budget is not None:
            groups[float(o.budget)].append(o)
    found = {c: runs for c, runs in sorted(groups.items()) if len({r.parameters for r in runs}) >= MIN_SIZES_PER_BUDGET}
    if len(found) < MIN_BUDGETS:
        sizes = ", ".join(f"{c:.3g}: {len({r.parameters for r in runs})}" for c, runs in sorted(groups.items()))
        raise ValueError(
            f"an IsoFLOP fit needs at least {MIN_BUDGETS} compute budgets (Observation.budget) with runs at "
            f"{MIN_SIZES_PER_BUDGET} or more distinct model sizes each; {len(found)} qualify "
            f"(distinct sizes per budget: {sizes or 'no run has a budget'})"
        )
    return {c: (np.array([r.parameters for r in runs]), np.array([r.loss for r in runs])) for c, runs in found.items()}


def _power_laws(minima: Sequence[IsoFlopMinimum]) -> tuple[float, float, float, float]:
    """Least squares of ln N_opt and ln D_opt on ln C: (ln k_n, a, ln k_d, b)."""
    log_c = np.log([m.budget for m in minima])
    a, log_kn = np.polyfit(log_c, np.log([m.parameters for m in minima]), 1)
    b, log_kd = np.polyfit(log_c, np.log([m.tokens for m in minima]), 1)
    return float(log_kn), float(a), float(log_kd), float(b)


def _resampled_minima(
    budgets: dict[float, tuple[Array, Array]], rng: np.random.Generator
) -> list[IsoFlopMinimum] | None:
    """Each budget's minimum after resampling its runs, or None if one has no minimum left."""
    minima = []
    for c, (n, loss) in budgets.items():
        pick = rng.integers(0, len(n), len(n))
        if len(set(n[pick])) < MIN_SIZES_PER_BUDGET:
            return None
        found = _vertex(c, n[pick], loss[pick])
        if found is None:
            return None
        minima.append(found)
    return minima


def fit_isoflop(obs: Sequence[Observation], *, bootstrap: int = 200, seed: int = 0, level: float = 0.95) -> IsoFlopFit:
    """Fit a parabola in ln N per budget and power laws through the minima (approach 2).

    Only the minima that lie within the sizes their budget ran enter the power laws: an
    extrapolated vertex is the parabola's guess, not a measurement, and one of them can turn
    the exponents around. The others stay in `minima`, flagged, for the table and the plot."""
    _check_level(level)
    budgets = _budgets(obs)
    minima = [m for c, (n, loss) in budgets.items() if (m := _vertex(c, n, loss)) is not None]
    placed = [m for m in minima if m.bracketed]
    if len(placed) < MIN_BUDGETS:
        unplaced = sorted(set(budgets) - {m.budget for m in placed})
        raise ValueError(
            f"the IsoFLOP fit needs the loss minimum inside the sizes run at {MIN_BUDGETS} or more budgets; "
            f"at {', '.join(f'{c:.3g}' for c in unplaced)} FLOPs it is not (the loss keeps falling, or is not "
            "convex, towards the edge of the sizes): add shapes beyond the best one"
        )
    kept = {m.budget: budgets[m.budget] for m in placed}
    rng = np.random.default_rng(seed)
    # A resample whose curve loses its minimum is dropped: it says the data cannot place it.
    resampled = (_resampled_minima(kept, rng) for _ in range(bootstrap))
    samples = [_power_laws(m) for m in resampled if m is not None]
    log_kn, a, log_kd, b = _power_laws(placed)
    return IsoFlopFit(
        minima=minima,
        a=estimate(a, [s[1] for s in samples], level),
        b=estimate(b, [s[3] for s in samples], level),
        log_kn=log_kn,
        log_kd=log_kd,
        samples=samples,
        level=level,
    )


def law_quantiles(fit: ParametricFit, quantity: Callable[[Law], Array]) -> tuple[Array, Array]:
    """The central `fit.level` band of `quantity` over the bootstrap laws (for plots)."""
    if not fit.samples:
        nan = np.full_like(quantity(fit.law), np.nan)
        return nan, nan
    values = np.stack([quantity(s) for s in fit.samples])
    tail = (1.0 - fit.level) / 2.0
    return np.quantile(values, tail, axis=0), np.quantile(values, 1.0 - tail, axis=0)
