"""Tables of evaluation results: one run's figures, and several runs side by side."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from infra.core.storage import read_json

HEADLINE = {"mmlu": ("acc", "acc_norm", "acc_subject_mean"), "truthfulqa_mc1": ("mc1",), "truthfulqa_mc2": ("mc2",)}


# Generation tasks: the harness's BLEU/ROUGE names, then judge and human figures.
GENERATION = tuple(f"{f}_{k}" for f in ("bleu", "rouge1", "rouge2", "rougeL") for k in ("max", "acc", "diff"))
RATED = ("judge_", "human_", "kappa_")


def metrics_of(key: str, figures: dict[str, Any]) -> list[str]:
    if figures.get("formulation") == "generate":
        rated = [k for k in figures if k.startswith(RATED) and not k.endswith("_stderr")]
        return [m for m in GENERATION if m in figures] + rated
    task = key.removesuffix("_letters")
    names = HEADLINE.get(task, ("acc", "acc_norm"))
    return [m for m in names if m in figures]


def results_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task and metric (value, standard error, random chance), then perplexities."""
    rows = []
    for key, t in results["tasks"].items():
        for m in metrics_of(key, t):
            shots = f", {t['num_fewshot']}-shot" if t.get("num_fewshot") else ""
            rows.append(
                {
                    "task": f"{key} ({t['n']} items{shots})",
                    "metric": m,
                    "value": t[m],
                    "stderr": t.get(f"{m}_stderr"),
                    "chance": t.get("random_chance"),
                }
            )
    for name, p in results.get("perplexity", {}).items():
        rows += [
            {"task": name, "metric": m, "value": p[m], "stderr": None, "chance": None}
            for m in ("perplexity", "bits_per_byte")
        ]
    return rows


def load_results(path: str | Path) -> dict[str, Any]:
    """Results from a run directory (eval/results.json) or a results file."""
    path = Path(path)
    file = path / "eval" / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"no evaluation results at {file}; run `crucible evaluate --run-id "
            f"{path.name}` or `crucible evaluate-model MODEL --out {file}` first"
        )
    return read_json(file)


def _cell(value: Any, stderr: Any) -> str:
    if value is None:
        return "-"
    if stderr is None or not isinstance(stderr, float) or not math.isfinite(stderr):
        return f"{value:.4f}"
    return f"{value:.4f} ± {stderr:.4f}"


def compare_table(paths: list[str | Path]) -> str:
    """A Markdown table: one row per task and metric, one column per run or baseline."""
    results = [load_results(p) for p in paths]
    names = [f"{r.get('model') or Path(p).name}" for r, p in zip(results, paths)]
    keys: list[tuple[str, str]] = []
    chance: dict[tuple[str, str], Any] = {}
    for r in results:
        for row in results_rows(r):
            k = (row["task"].split(" (")[0], row["metric"])
            if k not in keys:
                keys.append(k)
            chance.setdefault(k, row["chance"])
    lookup = [{(row["task"].split(" (")[0], row["metric"]): row for row in results_rows(r)} for r in results]
    lines = ["| task | metric | " + " | ".join(names) + " | random chance |", "|---|---|" + "---|" * (len(names) + 1)]
    for k in keys:
        cells = [_cell(lk[k]["value"], lk[k]["stderr"]) if k in lk else "-" for lk in lookup]
        c = chance.get(k)
        lines.append(f"| {k[0]} | {k[1]} | " + " | ".join(cells) + f" | {'-' if c is None else f'{c:.4f}'} |")
    return "\n".join(lines)
