"""Which earlier run a run builds on: incremental curation and continued pre-training.

Every pipeline run records `lineage.json` (its deployment, flow run and the run it built
on). A served deployment's run that curates incrementally or continues pre-training, with
no `previous_run` set, builds on the deployment's newest run whose four stages finished.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from flows import stages
from flows.config import PipelineConfig
from infra.core.storage import RunDir, write_json
from infra.core.task_markers import read_marker

log = logging.getLogger(__name__)
LINEAGE = "lineage.json"


def _finished(root: Path) -> bool:
    records = stages.recorded(RunDir(root))
    return all(records.get(s, {}).get("status") == "finished" for s in stages.STAGES)


def newest_finished_run(runs_dir: Path, deployment: str, exclude: Path) -> Path | None:
    found: list[tuple[str, Path]] = []
    for path in sorted(runs_dir.glob(f"*/{LINEAGE}")):
        info = read_marker(path) or {}
        if info.get("deployment") == deployment and path.parent != exclude and _finished(path.parent):
            found.append((info.get("started", ""), path.parent))
    return max(found)[1] if found else None


def resolve(cfg: PipelineConfig, run: RunDir, deployment: str | None) -> PipelineConfig:
    """The config with `previous_run` filled in (when served and needed) and, for continued
    pre-training, the earlier run's tokenizer."""
    wants = cfg.curation.incremental or cfg.training.init_from_previous
    # A retry builds on what its first attempt built on, even if another run finished since.
    previous = cfg.previous_run or (read_marker(run.root / LINEAGE) or {}).get("previous_run")
    if wants and previous is None and deployment:
        found = newest_finished_run(run.root.parent, deployment, run.root)
        previous = str(found) if found else None
        log.info("builds on %s", previous or f"nothing yet: no finished run of deployment {deployment}")
    update: dict[str, Any] = {"previous_run": previous}
    if previous and cfg.training.init_from_previous and not cfg.tokenization.tokenizer_path:
        tokenizer = RunDir(Path(previous)).tokenizer
        update["tokenization"] = cfg.tokenization.model_copy(update={"tokenizer_path": str(tokenizer)})
    elif cfg.training.init_from_previous and previous is None:
        log.warning("training.init_from_previous: no previous run to continue from; training from random weights")
    return cfg.model_copy(update=update)


def init_from(cfg: PipelineConfig) -> str | None:
    """The final model folder training starts from, when continuing pre-training."""
    if cfg.training.init_from_previous and cfg.previous_run:
        return str(RunDir(Path(cfg.previous_run)).checkpoints / "final")
    return None


def record(run: RunDir, cfg: PipelineConfig, deployment: str | None, flow_run_id: str | None) -> None:
    info = read_marker(run.root / LINEAGE) or {}
    write_json(
        run.root / LINEAGE,
        {
            "deployment": deployment,
            "flow_run_id": flow_run_id,
            "previous_run": cfg.previous_run,
            # The first start, kept across retries: runs are ordered by it.
            "started": info.get("started") or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    )
