"""A fifth stage, added as a contributor would add one: a `Stage` entry and its flow, nothing
else. Run as `python -m tests.flows.finetune_stage <crucible arguments>`: the entry joins the
stage list, then the `crucible` command line runs as usual (its parser, preflight, stage keys,
records and pipeline flow all read the list).

The flow is a placeholder for fine-tuning: it reads the trained model's summary (so it runs
after training) and records what it was given."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import flow

from flows.stage import PIPELINE, Stage
from infra.core.storage import RunDir, read_json, write_json
from tasks.training.config import TrainingConfig

OUTPUT = "finetune.json"


@flow(name="finetune")
def finetune_flow(cfg: TrainingConfig, run_dir: str) -> dict[str, Any]:
    run = RunDir(Path(run_dir))
    trained = read_json(run.train_summary)
    made = {"from_step": trained["steps"], "lr": cfg.lr, "runs": (read_json(run.root / OUTPUT)["runs"] + 1)
            if (run.root / OUTPUT).exists() else 1}  # fmt: skip
    write_json(run.root / OUTPUT, made)
    return made


FINETUNE = Stage(
    name="finetune",
    help="fine-tune the trained model (a placeholder stage added by a test)",
    flow="tests.flows.finetune_stage:finetune_flow",
    section="training",
    arguments=lambda cfg, run_dir: (cfg.training, run_dir),
    code=("tests/flows/finetune_stage.py",),
    done=lambda run: run.root / OUTPUT,
)

if __name__ == "__main__":
    PIPELINE.append(FINETUNE)
    from infra.app.cli import main

    sys.exit(main(sys.argv[1:]))
