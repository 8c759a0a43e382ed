"""The `evaluate` flow: perplexity on held-out shards and HellaSwag on the trained model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact

from tasks.evaluation.config import EvaluationConfig
from tasks.evaluation.prefect_tasks import evaluate_task


def results_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    ppl, hs = results["perplexity"], results["hellaswag"]
    rows = [{"task": "validation", "metric": "perplexity", "value": ppl["perplexity"], "stderr": None, "chance": None},
            {"task": "validation", "metric": "bits_per_byte", "value": ppl["bits_per_byte"], "stderr": None, "chance": None}]
    if "skipped" not in hs:
        rows += [{"task": f"hellaswag ({hs['n']} items)", "metric": m, "value": hs[m],
                  "stderr": hs[f"{m}_stderr"], "chance": hs["random_chance"]} for m in ("acc", "acc_norm")]
    return rows


@flow(name="evaluate")
def evaluate_flow(cfg: EvaluationConfig, run_dir: str) -> dict[str, Any]:
    results = evaluate_task(str(Path(run_dir).resolve()), cfg)
    create_table_artifact(key="evaluation-results", table=results_table(results),
                          description="Held-out perplexity and HellaSwag 0-shot")
    return results
