"""The benchmark tasks, rendered exactly as lm-evaluation-harness 0.4 renders them.

Each task turns a record in its Hugging Face schema into a `Doc`: the query text
(`doc_to_text`), the choices (`doc_to_choice`, each scored as " " + choice), the gold
index, and the plain question stem that the letter format lists its options under.
Templates, preprocessing, splits and few-shot pools follow the harness's task YAMLs
(arc_easy, arc_challenge, hellaswag, mmlu / mmlu_continuation, truthfulqa_mc1/mc2).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Doc:
    query: str  # the prompt for this item, without few-shot examples or description
    choices: list[str]  # scored as target_delimiter + choice
    gold: int  # index of the correct choice
    stem: str  # the question alone, for the letter format
    labels: list[int] | None = None  # TruthfulQA mc2: 1 for each true choice
    subject: str | None = None  # MMLU


@dataclass(frozen=True)
class TaskSpec:
    name: str
    dataset: str  # key of tasks/evaluation/data.py DATASETS
    split: str  # evaluated split
    fewshot_split: str | None  # pool of few-shot examples (None: the task is always 0-shot)
    sampler: str  # "random" (seeded, in document order) or "first_n"
    required: tuple[str, ...]  # record fields the renderer reads
    render: Callable[[dict[str, Any]], Doc]
    metrics: tuple[str, ...]
    description: Callable[[Doc, bool], str] = field(default=lambda doc, letters: "")
    # The harness passes the evaluated doc to the sampler (which drops it from the draw, after
    # drawing n + 1) when the few-shot split "equals" the test split; for HellaSwag both are unset.
    fewshot_excludes_doc: bool = False


def hellaswag_preprocess(text: str) -> str:
    text = text.strip()
    # WikiHow items carry bracketed markup such as " [title]" and "[header]".
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _arc(rec: dict[str, Any]) -> Doc:
    labels = list(rec["choices"]["label"])
    return Doc(
        query=f"Question: {rec['question']}\nAnswer:",
        choices=list(rec["choices"]["text"]),
        gold=labels.index(rec["answerKey"]),
        stem=rec["question"],
    )


def _hellaswag(rec: dict[str, Any]) -> Doc:
    ctx = rec["ctx_a"] + " " + rec["ctx_b"].capitalize()
    query = hellaswag_preprocess(rec["activity_label"] + ": " + ctx)
    return Doc(
        query=query, choices=[hellaswag_preprocess(e) for e in rec["endings"]], gold=int(rec["label"]), stem=query
    )


def _mmlu(rec: dict[str, Any]) -> Doc:
    q = rec["question"].strip()
    return Doc(
        query=f"Question: {q}\nAnswer:",
        choices=list(rec["choices"]),
        gold=int(rec["answer"]),
        stem=q,
        subject=rec["subject"],
    )


TRUTHFULQA_PROMPT = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain."
)


def _truthfulqa(targets: str) -> Callable[[dict[str, Any]], Doc]:
    def render(rec: dict[str, Any]) -> Doc:
        t = rec[targets]
        # The first mc1 choice is the true one; mc2 marks every true choice in `labels`.
        return Doc(
            query=f"{TRUTHFULQA_PROMPT}\n\nQ: {rec['question']}\nA:",
            choices=list(t["choices"]),
            gold=0,
            stem=rec["question"],
            labels=[int(x) for x in t["labels"]],
        )

    return render


def mmlu_description(doc: Doc, letters: bool) -> str:
    kind = "multiple choice questions" if letters else "questions"
    assert doc.subject is not None  # every MMLU item names its subject
    return f"The following are {kind} (with answers) about {doc.subject.replace('_', ' ')}.\n\n"


ARC_FIELDS = ("question", "choices", "answerKey")
TASKS: dict[str, TaskSpec] = {
    "arc_easy": TaskSpec("arc_easy", "arc_easy", "test", "train", "random", ARC_FIELDS, _arc, ("acc", "acc_norm")),
    "arc_challenge": TaskSpec(
        "arc_challenge", "arc_challenge", "test", "train", "random", ARC_FIELDS, _arc, ("acc", "acc_norm")
    ),
    "hellaswag": TaskSpec(
        "hellaswag",
        "hellaswag",
        "validation",
        "train",
        "random",
        ("activity_label", "ctx_a", "ctx_b", "endings", "label"),
        _hellaswag,
        ("acc", "acc_norm"),
        fewshot_excludes_doc=True,
    ),
    # Cloze form is the harness's mmlu_continuation; the letter form is its default `mmlu`.
    "mmlu": TaskSpec(
        "mmlu",
        "mmlu",
        "test",
        "dev",
        "first_n",
        ("question", "subject", "choices", "answer"),
        _mmlu,
        ("acc", "acc_norm"),
        description=mmlu_description,
    ),
    "truthfulqa_mc1": TaskSpec(
        "truthfulqa_mc1",
        "truthfulqa",
        "validation",
        None,
        "random",
        ("question", "mc1_targets"),
        _truthfulqa("mc1_targets"),
        ("mc1",),
    ),
    "truthfulqa_mc2": TaskSpec(
        "truthfulqa_mc2",
        "truthfulqa",
        "validation",
        None,
        "random",
        ("question", "mc2_targets"),
        _truthfulqa("mc2_targets"),
        ("mc2",),
    ),
}
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def as_letters(doc: Doc) -> Doc:
    """The multiple-choice letter format: options listed as A/B/C/..., each scored as " A", " B"...

    For MMLU this is the harness's default `mmlu` prompt; the other tasks use the same layout.
    TruthfulQA lists its true answers first, so "always A" would score perfectly: its options
    are put in a fixed pseudo-random order per question (seeded by the question's text).
    """
    if len(doc.choices) > len(LETTERS):
        raise ValueError(f"{len(doc.choices)} choices are more than the letter format's {len(LETTERS)}")
    order = list(range(len(doc.choices)))
    if doc.labels is not None:
        seed = int.from_bytes(hashlib.blake2b(doc.stem.encode("utf-8"), digest_size=8).digest(), "little")
        random.Random(seed).shuffle(order)
    choices = [doc.choices[i] for i in order]
    options = "".join(f"\n{LETTERS[k]}. {c}" for k, c in enumerate(choices))
    return Doc(
        query=f"{doc.stem}{options}\nAnswer:",
        choices=list(LETTERS[: len(choices)]),
        gold=order.index(doc.gold),
        stem=doc.stem,
        labels=None if doc.labels is None else [doc.labels[i] for i in order],
        subject=doc.subject,
    )
