"""Benchmarks scored on the current weights during training (`training.eval_tasks`).

Nothing here scores: the evaluation stage's own code loads, renders and tokenizes each
task's items once per rank at set-up (tasks/evaluation/harness.py `prepare_task`), and its
`score_task` scores them on the engine's module every `eval_tasks_every` steps and at the
last step. The figures join that step's record as `eval/<task>/<metric>`.

The items come from the pipeline's evaluation.benchmarks_dir (the train stage is handed
it), never from the hub: a rank must not wait on the network, and a missing file or an item
too long for the window stops the run in the driver, before any worker starts
(`check_eval_tasks`).

Scoring leaves training as it was, bit for bit: no gradients, eval mode (no dropout) and
back, and every random generator captured before and restored after. Every rank scores the
same items in the same order, so under ZeRO-3, where each layer's forward pass gathers its
parameters from all ranks, the collectives match; rank 0 records the figures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from infra.core.storage import RunDir, read_json
from models.gpt import GPT
from tasks.evaluation.benchmarks import TASKS
from tasks.evaluation.data import DATASETS, BenchmarkDataError, hub_command
from tasks.evaluation.harness import PreparedTask, TaskRun, load_docs, prepare_task, score_task
from tasks.evaluation.models import EvalModel, crucible_model
from tasks.training import rng
from tasks.training.checks import TrainingConfigError
from tasks.training.config import EvalTask, TrainingConfig
from tasks.training.metrics import eval_key

log = logging.getLogger(__name__)
NO_FOLDER = (
    "training.eval_tasks needs the benchmark files: set evaluation.benchmarks_dir (the train stage hands "
    "the pipeline's evaluation folder to the ranks; `python -m tasks.training.launch` takes it in the job)"
)


@dataclass(frozen=True)
class EvalTasks:
    """The tasks' items, tokenized with the run's tokenizer, and the model wrapper that scores them."""

    model: EvalModel  # its module is the engine's, set at each scoring
    tasks: list[PreparedTask]


def _task_run(entry: EvalTask) -> TaskRun:
    return TaskRun(entry.task, "cloze", 0, entry.limit)


def _missing_file(task: str, root: Path) -> str | None:
    spec = TASKS[task]
    ds = DATASETS[spec.dataset]
    path = root / ds.folder / f"{spec.split}.jsonl"
    if path.is_file():
        return None
    return (
        f"training.eval_tasks: {task} reads {path}, which does not exist (training never loads benchmarks "
        f"from the hub); set evaluation.benchmarks_dir to a folder holding {ds.folder}/{spec.split}.jsonl, "
        f"or make the file on a machine with network access: {hub_command(ds, spec.split, path)}"
    )


def _too_long(task: PreparedTask, window: int) -> str | None:
    """The harness refuses a choice longer than the window; here that is found before training."""
    longest = max(len(c) for _, conts in task.questions for c in conts)
    if longest <= window:
        return None
    return (
        f"training.eval_tasks: the longest choice of {task.run.task} is {longest} tokens, more than the model's "
        f"window of {window} (tokenization.seq_len); drop the task from training.eval_tasks, or tokenize "
        f"with a longer seq_len"
    )


def prepare_eval_tasks(entries: list[EvalTask], root: Path | None, tokenizer: Path, window: int) -> EvalTasks:
    """Every entry's items rendered and tokenized; raises with the fix when one cannot be scored."""
    if root is None:
        raise TrainingConfigError(NO_FOLDER)
    model = crucible_model("training", torch.nn.Identity(), tokenizer, window)
    problems = [p for e in entries if (p := _missing_file(e.task, root))]
    tasks = [] if problems else [prepare_task(model, _task_run(e), root) for e in entries]
    problems += [p for t in tasks if (p := _too_long(t, window))]
    if problems:
        raise TrainingConfigError("training cannot start:\n  - " + "\n  - ".join(problems))
    return EvalTasks(model, tasks)


def rank_eval_tasks(
    cfg: TrainingConfig, root: str | None, run: RunDir, window: int, model_parallel: bool
) -> EvalTasks | None:
    """A rank's eval tasks, tokenized (None when none are configured). The driver has checked
    them already; a run started without it (tasks/training/launch.py) is checked here."""
    if not cfg.eval_tasks:
        return None
    if model_parallel:
        raise TrainingConfigError(
            "training.eval_tasks needs training.parallel.pipeline=1 and tensor=1; set training.eval_tasks: []"
        )
    return prepare_eval_tasks(cfg.eval_tasks, Path(root) if root else None, run.tokenizer, window)


def check_eval_tasks(cfg: TrainingConfig, root: str | None, run: RunDir | None = None) -> None:
    """In the driver, before any worker starts: every eval task's file is there and well formed,
    and (once the run has its tokenizer and shards) every item fits the model's window."""
    if not cfg.eval_tasks:
        return
    folder = Path(root) if root else None
    try:
        if run is not None and run.tokenizer.is_file() and run.manifest.is_file():
            prepare_eval_tasks(cfg.eval_tasks, folder, run.tokenizer, read_json(run.manifest)["seq_len"])
        elif folder is not None:  # before tokenization: the files alone
            missing = [p for e in cfg.eval_tasks if (p := _missing_file(e.task, folder))]
            if missing:
                raise TrainingConfigError("training cannot start:\n  - " + "\n  - ".join(missing))
            for e in cfg.eval_tasks:
                load_docs(_task_run(e), folder, allow_hub=False)
        else:
            raise TrainingConfigError(NO_FOLDER)
    except BenchmarkDataError as exc:
        raise TrainingConfigError(f"training.eval_tasks cannot be read: {exc}") from None
    log.info("training.eval_tasks: %s, from %s", ", ".join(e.task for e in cfg.eval_tasks), folder)


class _OnDevice(torch.nn.Module):
    """The engine's model as the scorer sees it: the scorer builds its batches on the CPU, so
    they are moved to the rank's device, and the logits back."""

    def __init__(self, module: GPT, device: torch.device):
        super().__init__()
        self.inner, self.device = module, device

    def packed_logits(
        self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        dev = self.device
        out = self.inner.packed_logits(
            ids.to(dev), positions.to(dev), mask.to(dev), None if keep is None else keep.to(dev)
        )
        return out.float().cpu()


@torch.no_grad()
def score_eval_tasks(evals: EvalTasks, engine: Any, device: torch.device) -> dict[str, float]:
    """Every task's metrics on the engine's current weights, keyed `eval/<task>/<metric>`; every
    rank must call it (under ZeRO-3 each forward pass is a collective)."""
    saved = rng.capture()
    was_training = engine.module.training  # DeepSpeed's engine passes train/eval on to its module only
    engine.eval()
    try:
        model = replace(evals.model, module=_OnDevice(engine.module, device))
        out: dict[str, float] = {}
        for task in evals.tasks:
            result = score_task(model, task)
            out.update({eval_key(task.run.task, m): result[m] for m in task.metrics})
        return out
    finally:
        engine.train(was_training)
        rng.restore(saved)
