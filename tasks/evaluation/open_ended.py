"""Open-ended tasks: generate an answer to each prompt and score it against reference answers.

Two sources of items:
- `truthfulqa_gen`, as lm-evaluation-harness 0.4.13 defines it: the six-example QA prompt,
  then "\\n\\nQ: " and the question; greedy, until "\\n\\n" (and end-of-text), at most 256
  tokens; references formatted by its `process_docs_gen` (stripped, a final period added,
  "I have no comment." among the true ones); BLEU and ROUGE against the true and false ones.
  Its items come from TruthfulQA's `generation` split (`truthfulqa_generation/validation.jsonl`,
  or the hub). Without it, the true and false answers of the multiple-choice file's mc2
  targets stand in, and the results say so.
- A JSON-lines file of `prompt` and `references` (and optionally `incorrect_references`,
  `id`): a user's own held-out set, scored the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.evaluation.benchmarks import TRUTHFULQA_PROMPT
from tasks.evaluation.data import BenchmarkDataError, iter_jsonl, load_split
from tasks.evaluation.generation import GenerationSettings, effective_max_gen_toks, generate
from tasks.evaluation.metrics import aggregate
from tasks.evaluation.models import EvalModel
from tasks.evaluation.text_metrics import reference_scores

log = logging.getLogger(__name__)

GENERATION_TASKS = ("truthfulqa_gen",)
TRUTHFULQA_GEN_SETTINGS = GenerationSettings(until=("\n\n",), max_gen_toks=256, do_sample=False)
NO_COMMENT = "I have no comment."


@dataclass(frozen=True)
class GenDoc:
    id: str
    prompt: str
    question: str  # what a reviewer or judge is shown
    references: list[str]  # true answers
    incorrect: list[str] = field(default_factory=list)  # false answers (TruthfulQA); may be empty


def format_answers(answers: list[str]) -> list[str]:
    """The harness's `_format_answers`: stripped, blanks dropped, a final period added."""
    out = []
    for answer in answers:
        a = answer.strip()
        if a:
            out.append(a if a[-1] == "." else a + ".")
    return out


def truthfulqa_doc(index: int, question: str, correct: list[str], incorrect: list[str]) -> GenDoc:
    true_refs = format_answers(correct)
    if NO_COMMENT not in true_refs:
        true_refs.append(NO_COMMENT)
    q = question.strip()
    return GenDoc(
        id=f"truthfulqa_gen:{index}",
        prompt=f"{TRUTHFULQA_PROMPT}\n\nQ: {q}",
        question=q,
        references=true_refs,
        incorrect=format_answers(incorrect),
    )


def truthfulqa_docs(root: Path | None, allow_hub: bool) -> tuple[list[GenDoc], str | None]:
    """The generation split's items, or the multiple-choice file's (with a note saying so)."""
    try:
        records = load_split(
            "truthfulqa_gen", "validation", root, allow_hub, ("question", "correct_answers", "incorrect_answers")
        )
        return [
            truthfulqa_doc(i, r["question"], r["correct_answers"], r["incorrect_answers"])
            for i, r in enumerate(records)
        ], None
    except BenchmarkDataError as missing:
        try:
            records = load_split("truthfulqa", "validation", root, False, ("question", "mc2_targets"))
        except BenchmarkDataError:
            raise missing from None
    docs = []
    for i, r in enumerate(records):
        t = r["mc2_targets"]
        labels = [int(x) for x in t["labels"]]
        docs.append(
            truthfulqa_doc(
                i,
                r["question"],
                [c for c, y in zip(t["choices"], labels) if y],
                [c for c, y in zip(t["choices"], labels) if not y],
            )
        )
    note = (
        "TruthfulQA's generation split is not in benchmarks_dir (truthfulqa_generation/validation.jsonl): "
        "the true and false answers of the multiple-choice file's mc2 targets are the references"
    )
    log.warning("truthfulqa_gen: %s", note)
    return docs, note


def file_docs(name: str, path: Path) -> list[GenDoc]:
    """Items of a user's JSON-lines file; a bad line is an error naming the file and line."""
    if not path.is_file():
        raise BenchmarkDataError(
            f"generation task {name}: {path} not found; give a JSON-lines file with "
            f'one {{"prompt": ..., "references": [...]}} object a line'
        )
    docs, seen = [], set()
    for line_no, rec in iter_jsonl(path):
        where = f"{path}, line {line_no}"
        prompt, refs = rec.get("prompt"), rec.get("references")
        if isinstance(refs, str):
            refs = [refs]
        bad = rec.get("incorrect_references", [])
        if not isinstance(prompt, str) or not prompt.strip():
            raise BenchmarkDataError(f"{where}: `prompt` must be a non-empty string")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
            raise BenchmarkDataError(f"{where}: `references` must be a non-empty list of non-empty strings")
        if not isinstance(bad, list) or not all(isinstance(r, str) for r in bad):
            raise BenchmarkDataError(f"{where}: `incorrect_references`, when given, must be a list of strings")
        item_id = f"{name}:{rec.get('id', line_no)}"
        if item_id in seen:
            raise BenchmarkDataError(f"{where}: id {rec.get('id')!r} repeats an earlier line; ids must be unique")
        seen.add(item_id)
        docs.append(GenDoc(id=item_id, prompt=prompt, question=prompt, references=list(refs), incorrect=list(bad)))
    if not docs:
        raise BenchmarkDataError(f"generation task {name}: {path} holds no items")
    return docs


def run_generation(
    model: EvalModel, task: str, docs: list[GenDoc], settings: GenerationSettings, batch_size: int
) -> dict[str, Any]:
    """Generate for every item, score each against its references, aggregate."""
    gens = generate(model, [d.prompt for d in docs], settings, batch_size, progress=task)
    per_item = [reference_scores(g.text, d.references, d.incorrect or None) for d, g in zip(docs, gens)]
    result: dict[str, Any] = {
        "task": task,
        "formulation": "generate",
        "num_fewshot": 0,
        **aggregate(per_item),
        "settings": settings.as_dict(),
        "max_gen_toks_used": effective_max_gen_toks(model, settings),
        "truncated_prompts": sum(1 for g in gens if g.truncated),
        "stops": {w: sum(1 for g in gens if g.stop == w) for w in ("until", "eos", "length")},
    }
    result["items"] = [
        {
            "id": d.id,
            "prompt": d.prompt,
            "question": d.question,
            "references": d.references,
            "incorrect_references": d.incorrect,
            "generation": g.text,
            "stop": g.stop,
            "tokens": g.tokens,
            "truncated": g.truncated,
            **m,
        }
        for d, g, m in zip(docs, gens, per_item)
    ]
    return result
