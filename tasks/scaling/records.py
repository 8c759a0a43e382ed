"""What a sweep records: one result per grid run, and sweep.json with all of them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from infra.core.storage import RunDir, read_json, write_json
from tasks.scaling.config import SweepConfig
from tasks.scaling.grid import GridPoint
from tasks.training.config import TrainingConfig

RESULT = "result.json"  # a grid run's measured result, written last: its existence means finished
SHARED = ("shards", "tokenizer")  # the sweep's folders each grid run links to
GRID = "grid"  # the folder of the grid runs: its presence marks a sweep's run directory
SWEEP_FILE = "sweep.json"
FIT_FILE = "fit.json"  # the fitted laws, written by tasks/scaling/report.py and read by `crucible plan --fit`


def grid_dir(run: RunDir, name: str) -> Path:
    return run.root / GRID / name


def measure_point(
    run: RunDir, folder: Path, point: GridPoint, training: TrainingConfig, seconds: float
) -> dict[str, Any]:
    """The finished grid run's record: its point, its final losses (the validation one over the
    whole split, token-weighted) and the optimizer settings that shaped it."""
    from tasks.tokenization.reader import TokenRows
    from tasks.training.checkpoint import FINAL, load_model
    from tasks.training.metrics import read_metrics
    from tasks.training.validation import split_loss

    sub = RunDir(folder)
    model, _ = load_model(sub.checkpoints / FINAL)
    val = split_loss(model, TokenRows.open(run.shards, "val"), training.micro_batch_size, training.document_mask)
    summary = read_json(sub.train_summary)
    records = [r for r in read_metrics(sub.metrics)[0] if "loss" in r and "step" in r]
    return {
        **point.to_json(),
        "status": "finished",
        "val_loss": val.loss,
        "val_tokens": val.tokens,
        "train_loss": records[-1]["loss"] if records else None,
        "steps_trained": summary["steps"],
        "training_flops": summary["training_flops"],
        "seconds": round(seconds, 1),
        "optimizer": training.optimizer,
        "lr": training.lr,
        "schedule": training.schedule,
        "warmup_steps": training.warmup_steps,
        "weight_decay": training.weight_decay,
        "decay_embeddings": training.decay_embeddings,
    }


def write_sweep(run: RunDir, sweep: SweepConfig, points: list[GridPoint], results: list[dict[str, Any]]) -> Path:
    """sweep.json: the grid (with the points left out and why), every run's result and the settings."""
    manifest = read_json(run.manifest)
    dest = run.root / SWEEP_FILE
    write_json(
        dest,
        {
            "sweep": run.root.name,
            "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "vocab_size": manifest["vocab_size"],
            "seq_len": manifest["seq_len"],
            "parameters_counted": sweep.fit_parameters,
            "settings": sweep.model_dump(mode="json"),
            "runs": sorted(results, key=lambda r: (r["flops"], r["name"])),
            "left_out": [p.to_json() for p in points if p.skipped is not None],
        },
    )
    return dest


def read_sweep(folder: Path) -> dict[str, Any]:
    path = Path(folder) / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {SWEEP_FILE} in {folder}; is it the run directory of a `crucible sweep`?")
    return read_json(path)


RUN_COLUMNS = (
    "name",
    "n_layer",
    "d_model",
    "parameters",
    "non_embedding_parameters",
    "tokens",
    "flops",
    "steps",
    "val_loss",
    "seconds",
)


def runs_table(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs as table rows (a Prefect table artifact, the report's table)."""
    return [{k: r.get(k) for k in (*RUN_COLUMNS, "status")} for r in sweep["runs"]]
