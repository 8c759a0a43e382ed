"""Run one benchmark task on one model: documents -> prompts -> log-likelihoods -> metrics.

Prompts are assembled as lm-evaluation-harness assembles them: description, then each
few-shot example as its query, " ", its gold choice and "\\n\\n", then the item's query;
each choice is the continuation " " + choice. Few-shot examples come from the task's
few-shot split: the first n (MMLU, per subject) or drawn with `random.Random(1234)`,
advanced item by item in order, as the harness does.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.evaluation.benchmarks import TASKS, Doc, TaskSpec, as_letters
from tasks.evaluation.data import BenchmarkDataError, load_split
from tasks.evaluation.loglikelihood import encode_continuations
from tasks.evaluation.metrics import aggregate, item_metrics, random_chance, subject_summary
from tasks.evaluation.models import EvalModel
from tasks.evaluation.shared_context import Encoded

FEWSHOT_SEED = 1234
TARGET_DELIMITER, FEWSHOT_DELIMITER = " ", "\n\n"
FORMULATIONS = ("cloze", "letters")


@dataclass(frozen=True)
class TaskRun:
    task: str
    # "cloze": score each choice's text; "letters": options A/B/C/D, score the letter;
    # "generate": an open-ended task (tasks/evaluation/open_ended.py)
    formulation: str = "cloze"
    num_fewshot: int = 0
    limit: int | None = None  # first N items (MMLU: per subject)

    @property
    def key(self) -> str:
        return unit_key(self.task, self.formulation)


def unit_key(task: str, formulation: str) -> str:
    """The task's name in results.json and samples/: `<task>_letters` for the letter form."""
    return f"{task}_letters" if formulation == "letters" else task


def select(spec: TaskSpec, docs: list[Doc], limit: int | None) -> list[Doc]:
    if limit is None:
        return docs
    if spec.name != "mmlu":
        return docs[:limit]
    taken: dict[str, int] = defaultdict(int)
    out = []
    for d in docs:  # the harness runs one task per subject, each limited on its own
        assert d.subject is not None  # every MMLU item names its subject
        if taken[d.subject] < limit:
            taken[d.subject] += 1
            out.append(d)
    return out


def contexts(spec: TaskSpec, docs: list[Doc], pool: list[Doc], n: int, letters: bool) -> list[str]:
    """Each item's full context: description, few-shot examples, query."""
    rnd = random.Random(FEWSHOT_SEED)
    by_subject: dict[str | None, list[Doc]] = defaultdict(list)
    for p in pool:
        by_subject[p.subject].append(p)
    out = []
    for doc in docs:
        shots: list[Doc] = []
        if n and spec.sampler == "first_n":
            shots = by_subject[doc.subject][:n]
        elif n:
            if len(pool) < n + spec.fewshot_excludes_doc:
                raise ValueError(
                    f"{spec.name}: {n}-shot needs at least {n + 1} examples in the "
                    f"{spec.fewshot_split} split, it has {len(pool)}"
                )
            if spec.fewshot_excludes_doc:
                shots = [x for x in rnd.sample(pool, n + 1) if x != doc][:n]
            else:
                shots = rnd.sample(pool, n)
        examples = "".join(s.query + TARGET_DELIMITER + s.choices[s.gold] + FEWSHOT_DELIMITER for s in shots)
        out.append(spec.description(doc, letters) + examples + doc.query)
    return out


def encode_question(model: EvalModel, context: str, choices: list[str]) -> Encoded:
    """The harness's encode_pair for every choice, with the context encoded once."""
    ctx, conts = encode_continuations(model.encode, context, [TARGET_DELIMITER + c for c in choices], model.eot_id)
    if not ctx:  # a whitespace-only context: the shared-context scorers need a token to predict from
        ctx = [model.prefix_id]
    empty = [choices[i] for i, c in enumerate(conts) if not c]
    if empty:
        raise ValueError(f"choice(s) {empty} encode to no tokens after the context")
    return ctx, conts


def load_docs(run: TaskRun, root: Path | None, allow_hub: bool) -> tuple[TaskSpec, list[Doc], list[Doc]]:
    spec = TASKS[run.task]
    letters = run.formulation == "letters"
    records = load_split(spec.dataset, spec.split, root, allow_hub, spec.required)
    if not records:  # a score over no items would just be missing from the results
        raise BenchmarkDataError(
            f"{spec.name}: the {spec.dataset} {spec.split} split holds no items; "
            f"check the file in evaluation.benchmarks_dir or re-download it"
        )
    if run.limit and spec.name != "mmlu":
        records = records[: run.limit]  # render only what is scored (MMLU limits per subject below)
    docs = select(spec, [spec.render(r) for r in records], run.limit)
    pool: list[Doc] = []
    if run.num_fewshot:
        if spec.fewshot_split is None:
            raise ValueError(
                f"{spec.name} is 0-shot only (its prompt already holds fixed examples); set its num_fewshot to 0"
            )
        pool = [spec.render(r) for r in load_split(spec.dataset, spec.fewshot_split, root, allow_hub, spec.required)]
    if letters:
        docs, pool = [as_letters(d) for d in docs], [as_letters(d) for d in pool]
    return spec, docs, pool


@dataclass(frozen=True)
class PreparedTask:
    """A task's items rendered and tokenized for one model's tokenizer: what `score_task` scores."""

    run: TaskRun
    spec: TaskSpec
    docs: list[Doc]
    contexts: list[str]
    questions: list[Encoded]

    @property
    def metrics(self) -> tuple[str, ...]:
        spec = self.spec
        return spec.metrics if self.run.formulation == "cloze" else tuple(m for m in spec.metrics if m != "acc_norm")


def prepare_task(model: EvalModel, run: TaskRun, root: Path | None, allow_hub: bool = False) -> PreparedTask:
    """Load, render and tokenize a task's items once (training scores them again at every eval point)."""
    spec, docs, pool = load_docs(run, root, allow_hub)
    ctxs = contexts(spec, docs, pool, run.num_fewshot, run.formulation == "letters")
    return PreparedTask(run, spec, docs, ctxs, [encode_question(model, c, d.choices) for c, d in zip(ctxs, docs)])


def score_task(model: EvalModel, task: PreparedTask) -> dict[str, Any]:
    """Metrics (with standard errors and random chance) and each item's log-likelihoods."""
    run, spec, docs, ctxs, metrics = task.run, task.spec, task.docs, task.contexts, task.metrics
    scores = model.score(task.questions)
    per_item = [item_metrics(d, [s.loglikelihood for s in sc], metrics) for d, sc in zip(docs, scores)]
    result: dict[str, Any] = {
        "task": run.task,
        "formulation": run.formulation,
        "num_fewshot": run.num_fewshot,
        **aggregate(per_item),
        "random_chance": random_chance(docs, metrics[0]),
    }
    if spec.name == "mmlu":
        by_subject: dict[str, list[dict[str, float]]] = defaultdict(list)
        for d, p in zip(docs, per_item):
            assert d.subject is not None  # every MMLU item names its subject
            by_subject[d.subject].append(p)
        result["subjects"] = {s: aggregate(v) for s, v in sorted(by_subject.items())}
        for m in metrics:
            result.update(subject_summary(result["subjects"], m))
    result["items"] = [
        {"context": c, "choices": d.choices, "gold": d.gold, "loglikelihoods": [s.loglikelihood for s in sc]}
        for c, d, sc in zip(ctxs, docs, scores)
    ]
    return result


def run_task(model: EvalModel, run: TaskRun, root: Path | None, allow_hub: bool = False) -> dict[str, Any]:
    """Metrics (with standard errors and random chance) and each item's log-likelihoods."""
    return score_task(model, prepare_task(model, run, root, allow_hub))
