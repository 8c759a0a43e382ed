"""Evaluate a model on the configured tasks and write its results.

A model is a Crucible run (its final checkpoint) or a Hugging Face folder. Each
(task, formulation) is one unit of work, so units can run on separate Ray workers; the
results are then combined into one JSON file beside the per-item samples.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from infra.core.storage import RunDir, atomic_path, write_json
from tasks.evaluation.config import GENERATIVE, EvaluationConfig
from tasks.evaluation.generation import GenerationSettings
from tasks.evaluation.harness import TaskRun, run_task, unit_key
from tasks.evaluation.judges import apply_judges, check_judges, run_judge
from tasks.evaluation.models import EvalModel, load_eval_model
from tasks.evaluation.open_ended import TRUTHFULQA_GEN_SETTINGS, file_docs, run_generation, truthfulqa_docs
from tasks.evaluation.perplexity import perplexity, text_perplexity
from tasks.tokenization.reader import TokenRows, check_tokenizer_matches, read_manifest

log = logging.getLogger(__name__)


def task_runs(cfg: EvaluationConfig) -> list[TaskRun]:
    """Every unit of work: each multiple-choice task in each formulation, then each generation task."""
    choice = [
        TaskRun(t, f, cfg.num_fewshot.get(t, 0), cfg.limit)
        for t in cfg.tasks
        if t not in GENERATIVE
        for f in cfg.formulations
    ]
    return choice + [TaskRun(t, "generate", 0, cfg.generation_limit) for t in cfg.generation_tasks()]


@lru_cache(maxsize=2)
def cached_model(path: str) -> EvalModel:
    """One loaded model per worker process, shared by the units it runs."""
    return load_eval_model(path)


def generation_unit(model: EvalModel, run: TaskRun, cfg: EvaluationConfig) -> dict[str, Any]:
    """One generation task: its items, its settings, generated and scored."""
    note = None
    if run.task == "truthfulqa_gen":
        docs, note = truthfulqa_docs(cfg.benchmarks_root(), cfg.allow_hub)
        settings = TRUTHFULQA_GEN_SETTINGS
    else:
        spec = next(g for g in cfg.generation_files if g.name == run.task)
        docs = file_docs(spec.name, Path(spec.file))
        settings = GenerationSettings(**{**spec.model_dump(exclude={"name", "file"}), "until": tuple(spec.until)})
    result = run_generation(
        model, run.task, docs[: run.limit] if run.limit else docs, settings, cfg.generation_batch_size
    )
    if note:
        result["references_from"] = note
    return result


def evaluate_unit(model_path: str, run: TaskRun, cfg: EvaluationConfig) -> dict[str, Any]:
    if run.formulation == "generate":
        result = generation_unit(cached_model(model_path), run, cfg)
    else:
        result = run_task(cached_model(model_path), run, cfg.benchmarks_root(), cfg.allow_hub)
    log.info(
        "%s: %s",
        run.key,
        {k: round(v, 4) for k, v in result.items() if isinstance(v, float) and not k.endswith("stderr")},
    )
    return result


def validation_perplexity(run_dir: Path, cfg: EvaluationConfig) -> dict[str, Any]:
    """Perplexity and bits per byte on the run's held-out token shards (Crucible runs only)."""
    run = RunDir(run_dir)
    manifest = read_manifest(run.shards)
    check_tokenizer_matches(manifest, run.tokenizer, run.shards)
    model = cached_model(str(run_dir))
    from tasks.tokenization.bpe import load_tokenizer

    return perplexity(
        model.module,
        TokenRows.open(run.shards, "val", manifest=manifest),
        load_tokenizer(run.tokenizer),
        manifest["eos_id"],
        cfg.perplexity_max_rows,
        cfg.batch_size,
    )


def perplexities(model_path: str, cfg: EvaluationConfig, is_run: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if is_run:
        out["validation"] = validation_perplexity(Path(model_path), cfg)
    text_path = cfg.text_path()  # None without a text_file
    if text_path is not None:
        out["text_file"] = text_perplexity(cached_model(model_path), text_path, cfg.batch_size, logits_mb=cfg.logits_mb)
    return out


def substituted_inputs(cfg: EvaluationConfig) -> dict[str, str]:
    """Which configured inputs were missing and replaced by the bundled samples, and by what."""
    out = {}
    root, text = cfg.benchmarks_root(), cfg.text_path()
    if cfg.benchmarks_dir and root is not None and root != Path(cfg.benchmarks_dir):
        out["benchmarks_dir"] = f"{cfg.benchmarks_dir} does not exist: scored on the samples in {root}"
    if cfg.text_file and text is not None and text != Path(cfg.text_file):
        out["text_file"] = f"{cfg.text_file} does not exist: scored {text} instead"
    return out


def combine(name: str, units: list[dict[str, Any]], ppl: dict[str, Any], step: int | None) -> dict[str, Any]:
    """The results file's content: figures per task key, items left out (they go to samples/)."""
    tasks = {unit_key(u["task"], u["formulation"]): {k: v for k, v in u.items() if k != "items"} for u in units}
    return {"model": name, "step": step, "perplexity": ppl, "tasks": tasks}


def write_results(dest: Path, results: dict[str, Any], units: list[dict[str, Any]]) -> None:
    """results.json plus one JSONL of per-item contexts and log-likelihoods per task key."""
    for u in units:
        with atomic_path(dest.parent / "samples" / f"{unit_key(u['task'], u['formulation'])}.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(i) + "\n" for i in u["items"]), encoding="utf-8")
    write_json(dest, results)


def evaluate_model(model_path: str | Path, cfg: EvaluationConfig, dest: Path) -> dict[str, Any]:
    """Evaluate in this process (no Ray): for `crucible evaluate-model` and tests."""
    model_path = str(Path(model_path).resolve())
    is_run = (Path(model_path) / "checkpoints").is_dir()
    check_judges(cfg.judges)
    units = [evaluate_unit(model_path, r, cfg) for r in task_runs(cfg)]
    generated = [u for u in units if u["formulation"] == "generate"]
    apply_judges(generated, cfg.judges, [run_judge(j, generated) for j in cfg.judges])
    model = cached_model(model_path)
    step = final_step(Path(model_path)) if is_run else None
    results = combine(model.name, units, perplexities(model_path, cfg, is_run), step)
    write_results(dest, results, units)
    return results


def final_step(run_dir: Path) -> int | None:
    meta = run_dir / "checkpoints" / "final" / "model.json"
    return json.loads(meta.read_text())["step"] if meta.is_file() else None
