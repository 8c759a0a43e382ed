"""How well the scaling-law fits recover published laws: losses drawn from Hoffmann et al.'s and
Besiroglu et al.'s fitted laws on a grid like the papers' (tasks/scaling/synthetic.py), with
lognormal noise, are fitted back; prints each parameter against the truth and the
compute-optimal N at Gopher's budget against the law's closed form.

    .venv/bin/python benchmarks/scaling_fit_recovery.py [--sigma 0.01] [--bootstrap 200]
"""

from __future__ import annotations

import argparse
import time

from tasks.scaling.fit import BESIROGLU, HOFFMANN, fit_isoflop, fit_parametric
from tasks.scaling.synthetic import papers_grid

GOPHER = 5.76e23


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sigma", type=float, default=0.01, help="log-loss noise (default 0.01)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    args = p.parse_args()
    for name, law in (("Hoffmann et al. 2022", HOFFMANN), ("Besiroglu et al. 2024", BESIROGLU)):
        obs = papers_grid(law, sigma=args.sigma, seed=args.seed)
        started = time.perf_counter()
        fit = fit_parametric(obs, bootstrap=args.bootstrap)
        iso = fit_isoflop(obs, bootstrap=args.bootstrap)
        seconds = time.perf_counter() - started
        print(f"\n{name}: {len(obs)} runs, sigma {args.sigma}, {args.bootstrap} resamples, {seconds:.1f} s")
        print("| parameter | true | fitted | 95% interval |\n|---|---|---|---|")
        for key, est in fit.intervals().items():
            print(f"| {key} | {law.value(key):.4g} | {est.value:.4g} | {est.low:.4g}-{est.high:.4g} |")
        n_true = float(law.optimum(GOPHER)[0])
        opt = fit.optimal(GOPHER).parameters
        print(
            f"N_opt at {GOPHER:.3g} FLOPs: closed form {n_true / 1e9:.1f}B, fitted {opt.value / 1e9:.1f}B "
            f"({opt.low / 1e9:.1f}-{opt.high / 1e9:.1f}B), {opt.value / n_true - 1:+.1%}"
        )
        a_true = law.beta / (law.alpha + law.beta)
        print(f"IsoFLOP a: true {a_true:.3f}, fitted {iso.a.value:.3f} ({iso.a.low:.3f}-{iso.a.high:.3f})")


if __name__ == "__main__":
    main()
