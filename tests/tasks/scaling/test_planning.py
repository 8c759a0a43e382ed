"""`crucible plan --fit`: sizes from a fitted law, its range, and the extrapolation warning."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from infra.app.cli import main
from tasks.scaling.fit import HOFFMANN, Observation, fit_parametric
from tasks.scaling.planning import fitted_plan, load_fit
from tasks.scaling.summary import fit_to_json


@pytest.fixture(scope="module")
def fit():
    """Hoffmann et al.'s law, noise-free, fitted back from a small grid (no bootstrap: fast)."""
    grid = itertools.product(np.geomspace(1e7, 1e9, 5), np.geomspace(1e8, 1e10, 5))
    obs = [Observation(float(n), float(d), 6 * n * d, float(HOFFMANN.loss(n, d))) for n, d in grid]
    return fit_parametric(obs, bootstrap=0)


def test_the_compute_optimal_tokens_for_n_are_those_of_the_budget_whose_optimum_is_n(fit):
    for c in (1e18, 1e21, 1e24):
        n, d = fit.law.optimum(c)
        assert fit.law.optimal_tokens(float(n)) == pytest.approx(float(d), rel=1e-9)


def test_a_budget_gets_the_fitted_optimum_and_a_far_one_a_warning(fit):
    near = fitted_plan(fit, "total", budget=1e17)
    n, d = HOFFMANN.optimum(1e17)
    assert near.parameters == pytest.approx(float(n), rel=1e-3)
    assert near.tokens == pytest.approx(float(d), rel=1e-3)
    assert near.loss.value == pytest.approx(float(HOFFMANN.loss(n, d)), rel=1e-5)
    assert not near.extrapolated and "the fit saw N 10,000,000-1,000,000,000" in "\n".join(near.lines)
    far = fitted_plan(fit, "total", budget=5.76e23, factor=10)
    assert far.extrapolated
    assert any(line.startswith("warning: this plan extrapolates") for line in far.lines)
    assert not fitted_plan(fit, "total", budget=5.76e23, factor=1e6).extrapolated


def test_given_parameters_and_tokens_the_law_predicts_the_loss(fit):
    plan = fitted_plan(fit, "total", parameters=3e8, tokens=2e9)
    assert (plan.parameters, plan.tokens) == (3e8, 2e9)
    assert plan.loss.value == pytest.approx(float(HOFFMANN.loss(3e8, 2e9)), rel=1e-5)


def test_plan_fit_reads_a_sweeps_fit_json_and_refuses_a_folder_without_one(fit, tmp_path, capsys):
    record = fit_to_json(fit, None) | {"parameters_counted": "non_embedding"}
    (tmp_path / "fit.json").write_text(json.dumps(record))
    loaded, counted = load_fit(tmp_path)
    assert counted == "non_embedding"
    assert loaded.law.alpha == pytest.approx(fit.law.alpha)
    assert main(["plan", "--fit", str(tmp_path), "--budget", "1e18"]) == 0
    out = capsys.readouterr().out
    assert "fitted compute-optimal split of 1.000e+18 FLOPs" in out
    assert "parameters (non-embedding)" in out and "GPU-hours" in out
    assert main(["plan", "--fit", str(tmp_path / "nothing"), "--budget", "1e18"]) == 2
    assert "no fit.json in" in capsys.readouterr().err
    (tmp_path / "fit.json").write_text(json.dumps({"problem": "too few runs", "markdown": ""}))
    assert main(["plan", "--fit", str(tmp_path), "--params", "1e9"]) == 2
    assert "has no fitted law: too few runs" in capsys.readouterr().err
