"""Per-step training metrics: MFU against a table of device peaks, and the sinks they go to
(metrics.jsonl, TensorBoard event files, and MLflow when the run is tracked). Rank 0 writes;
the record's keys are fixed."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from infra.core.storage import write_text

if TYPE_CHECKING:
    from tasks.tracking.metric_logger import MetricLogger

log = logging.getLogger(__name__)

# Dense bf16 tensor-core peaks in FLOP/s (vendors' datasheets, without sparsity), matched
# against torch.cuda.get_device_name() in order: the first key contained in the name wins.
PEAK_FLOPS = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM and NVL
    ("B200", 2.25e15),
    ("A100", 312e12),
    ("A10G", 125e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("V100", 125e12),  # fp16
    ("MI300X", 1.3e15),
)


def device_peak_flops(device: str, override: float | None) -> float | None:
    """One device's peak FLOP/s: the config's value, else the GPU's from the table; None for
    CPUs and unknown GPUs (MFU is then not reported)."""
    if override is not None:
        return override
    if device != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, peak in PEAK_FLOPS:
        if key in name:
            return peak
    log.warning("no peak FLOP/s known for %s; set training.peak_flops to report MFU", name)
    return None


def mfu(flops_per_token: float, tokens_per_s: float, world: int, peak: float | None) -> float | None:
    """Model FLOPs utilisation: model FLOPs per token x tokens/s / (world x one device's peak)."""
    return None if peak is None else flops_per_token * tokens_per_s / (world * peak)


class MetricsSink:
    """metrics.jsonl (one record per step, and events), TensorBoard scalars, and the step
    records queued for MLflow (`tracker`, tasks/tracking/metric_logger.py)."""

    def __init__(self, path: Path, tensorboard_dir: Path | None, resume_step: int, tracker: MetricLogger | None = None):
        self.path = path
        self.tracker = tracker
        self.tb = None
        self.tensorboard_dir = tensorboard_dir
        if resume_step == 0:
            path.unlink(missing_ok=True)
        else:
            self.truncate(resume_step)
        self._open_tensorboard(resume_step)
        if tracker is not None:
            # The steps the resume kept: an earlier rank 0 killed before it sent them sends
            # them now (the logger skips those MLflow already holds).
            for record in read_metrics(path)[0]:
                tracker.log(record)

    def _open_tensorboard(self, resume_step: int) -> None:
        if self.tensorboard_dir is not None:
            from tensorboardX import SummaryWriter

            # purge_step hides the events of steps that will be trained again after a resume.
            self.tb = SummaryWriter(str(self.tensorboard_dir), purge_step=resume_step + 1 if resume_step else None)

    def truncate(self, after_step: int) -> None:
        """Drop step records past `after_step` (they are trained again); events stay."""
        if self.tb is not None:  # after a roll-back: TensorBoard forgets those steps too
            self.tb.close()
            self._open_tensorboard(after_step)
        if not self.path.exists():
            return
        keep = []
        for ln in self.path.read_text().splitlines():
            if ln:
                rec = json.loads(ln)
                if "event" in rec or rec["step"] <= after_step:
                    keep.append(ln)
        write_text(self.path, "".join(ln + "\n" for ln in keep))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None and "event" not in record:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and value is not None:
                    # A key with its own group (eval/<task>/<metric>) keeps it: its own TensorBoard section.
                    self.tb.add_scalar(key if "/" in key else f"train/{key}", value, record["step"])
            self.tb.flush()
        if self.tracker is not None and "event" not in record:
            self.tracker.log(record)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.tracker is not None:
            self.tracker.close()  # the metrics still queued, within a bounded wait


# training.eval_tasks' figures in a step's record: `eval/<task>/<metric>` (tasks/training/eval_tasks.py).
# The evaluation stage's own MLflow keys are dotted (eval.arc_easy.acc): the two never clash.
EVAL_PREFIX = "eval/"


def eval_key(task: str, metric: str) -> str:
    return f"{EVAL_PREFIX}{task}/{metric}"


def eval_keys(records: list[dict[str, Any]]) -> list[str]:
    """The `eval/...` keys the step records hold, in first-seen order."""
    return list(dict.fromkeys(k for r in records for k in r if k.startswith(EVAL_PREFIX)))


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(step records, event records) of a run's metrics.jsonl."""
    steps: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    if path.exists():
        for ln in path.read_text().splitlines():
            if ln:
                rec = json.loads(ln)
                (events if "event" in rec else steps).append(rec)
    return steps, events
