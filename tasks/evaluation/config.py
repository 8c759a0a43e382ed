"""Typed configuration of the evaluation stage."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TaskName = Literal[
    "arc_easy", "arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc1", "truthfulqa_mc2", "truthfulqa_gen"
]
ALL_TASKS: list[TaskName] = [
    "arc_easy",
    "arc_challenge",
    "hellaswag",
    "mmlu",
    "truthfulqa_mc1",
    "truthfulqa_mc2",
    "truthfulqa_gen",
]
Formulation = Literal["cloze", "letters"]
ALL_FORMULATIONS: list[Formulation] = ["cloze", "letters"]
GENERATIVE: tuple[str, ...] = ("truthfulqa_gen",)  # generated and scored by BLEU/ROUGE and judges, not by choices


class GenerationFile(BaseModel):
    """A user's open-ended task: a JSON-lines file of {"prompt", "references"[, "incorrect_references", "id"]}."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="The task's name in results and the report.")
    file: str = Field(description="The task's JSON-lines file; its prompts are also kept out of the training data.")
    until: list[str] = Field(default_factory=lambda: ["\n\n"], description="Stop sequences.")
    max_gen_toks: int = Field(256, ge=1, description="Most tokens generated per prompt.")
    do_sample: bool = Field(False, description="Sample instead of greedy decoding.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
    top_k: int = Field(0, ge=0, description="Sample among the k likeliest tokens (0: all).")
    top_p: float = Field(
        1.0, gt=0, le=1, description="Nucleus sampling: the smallest set of tokens holding this probability."
    )
    seed: int = Field(1234, description="Sampling seed (each item's generator is seeded with seed + its index).")


class JudgeConfig(BaseModel):
    """A model that rates each generation as truthful (or informative), with a probability."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="The judge's name in results and the report.")
    kind: Literal["causal_lm", "classifier"] = Field(
        description="causal_lm: a Hugging Face causal LM, prompted with `template`, comparing its next-token "
        "probabilities of `yes` and `no`; classifier: a Hugging Face sequence classifier on `template`'s text."
    )
    model: str = Field(description="A Hugging Face model folder (nothing is downloaded).")
    aspect: Literal["truthful", "informative"] = Field(
        "truthful", description="What it rates: truthful or informative."
    )
    template: str | None = Field(
        None,
        description="Python format string over {question}, {references}, "
        "{answer}; None = the built-in one for the kind and aspect.",
    )
    yes: str = Field(" yes", description="causal_lm: the word meaning the answer has the aspect.")
    no: str = Field(" no", description="causal_lm: the word meaning the answer lacks the aspect.")
    positive_label: str | int = Field(1, description="classifier: the label (name or index) meaning it has it.")
    tasks: list[str] | None = Field(None, description="Generation tasks it judges; None = all of them.")


class EvaluationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    benchmarks_dir: str | None = Field(
        "../shared/benchmarks",
        description="Folder of <dataset>/<split>.jsonl files in the Hugging Face schemas "
        "(arc_easy, arc_challenge, hellaswag, mmlu, truthfulqa).",
    )
    samples_dir: str | None = Field(
        "tests/fixtures/eval",
        description="A few items of each benchmark, and text.txt, in this repository (a relative path is "
        "taken from the repository's root): used, with a warning, when benchmarks_dir or text_file does not "
        "exist, so the demo evaluates on a machine without the real files; null = fail instead.",
    )
    allow_hub: bool = Field(True, description="Load a split missing locally from the Hugging Face hub.")
    tasks: list[TaskName] = Field(
        default_factory=lambda: list(ALL_TASKS), description="Built-in benchmark tasks to run."
    )
    formulations: list[Formulation] = Field(
        default_factory=lambda: list(ALL_FORMULATIONS),
        description="'cloze' scores each choice's text (the harness's prompts); 'letters' lists the "
        "options as A/B/C/D and scores the letter.",
    )
    num_fewshot: dict[TaskName, int] = Field(
        default_factory=dict, description="Few-shot examples per task; 0 (the harness's default) if absent."
    )
    limit: int | None = Field(200, ge=1, description="First N items per task (MMLU: per subject); None = all.")
    batch_size: int = Field(
        16, ge=1, description="Rows per batch for perplexity (benchmark questions are batched by a token budget)."
    )
    perplexity_max_rows: int = Field(512, ge=1, description="Validation rows scored.")
    text_file: str | None = Field(None, description="Also report perplexity and bits per byte on this text file.")
    generation_limit: int | None = Field(
        100,
        ge=1,
        description="First N items of each generation task (each costs up to max_gen_toks forward passes); None = all.",
    )
    generation_batch_size: int = Field(16, ge=1, description="Prompts generated together (longest first).")
    generation_files: list[GenerationFile] = Field(
        default_factory=list,
        description="Open-ended tasks of your own, each a JSON-lines file of prompts and references.",
    )
    judges: list[JudgeConfig] = Field(
        default_factory=list, description="Models that rate each generation as truthful (or informative)."
    )
    logits_mb: int = Field(
        256,
        ge=1,
        description="text_file: MB of fp32 logits held at once; the output head "
        "runs a slice of positions at a time (a 49k vocabulary x 8k window x 16 rows is 25 GB)",
    )

    @model_validator(mode="after")
    def _fewshot(self) -> EvaluationConfig:
        fixed = [t for t, n in self.num_fewshot.items() if n and t.startswith("truthfulqa")]
        if fixed:
            raise ValueError(f"{fixed} are 0-shot only: their prompt already holds six fixed examples")
        if any(n < 0 for n in self.num_fewshot.values()):
            raise ValueError("num_fewshot values must be >= 0")
        names = [g.name for g in self.generation_files]
        clash = sorted({n for n in names if names.count(n) > 1 or n in ALL_TASKS})
        if clash:
            raise ValueError(f"generation_files names {clash} repeat or shadow a built-in task; rename them")
        known = set(names) | {t for t in self.tasks if t in GENERATIVE}
        judges = [j.name for j in self.judges]
        if len(set(judges)) < len(judges):
            raise ValueError(f"judge names must be unique, got {judges}")
        for j in self.judges:
            unknown = sorted(set(j.tasks or []) - known)
            if unknown:
                raise ValueError(
                    f"judge {j.name}: tasks {unknown} are not generation tasks of this config (have {sorted(known)})"
                )
        return self

    def generation_tasks(self) -> list[str]:
        """The built-in generative tasks chosen, then the files, in order."""
        return [t for t in self.tasks if t in GENERATIVE] + [g.name for g in self.generation_files]

    def _samples(self) -> Path | None:
        if not self.samples_dir:
            return None
        path = Path(self.samples_dir)
        return path if path.is_absolute() else Path(__file__).resolve().parents[2] / path

    def benchmarks_root(self) -> Path | None:
        """benchmarks_dir, or the bundled samples when it does not exist (None: the hub only)."""
        if not self.benchmarks_dir:
            return None
        root, samples = Path(self.benchmarks_dir), self._samples()
        if not root.is_dir() and samples is not None and samples.is_dir():
            return samples
        return root

    def text_path(self) -> Path | None:
        """text_file, or the bundled samples' text.txt when it does not exist."""
        if not self.text_file:
            return None
        path, samples = Path(self.text_file), self._samples()
        if not path.is_file() and samples is not None and (samples / "text.txt").is_file():
            return samples / "text.txt"
        return path

    def benchmark_files(self) -> list[str]:
        """The local files this config evaluates on (curation decontaminates against them)."""
        from tasks.evaluation.benchmarks import TASKS

        root = self.benchmarks_root()
        if root is None:
            return []
        files = {str(root / TASKS[t].dataset / f"{TASKS[t].split}.jsonl") for t in self.tasks if t in TASKS}
        if "truthfulqa_gen" in self.tasks:  # its generation split, or the multiple-choice file standing in
            gen = root / "truthfulqa_generation" / "validation.jsonl"
            files |= {str(gen if gen.is_file() else root / "truthfulqa" / "validation.jsonl")}
        # A user's held-out generation set is kept out of the training data as well.
        files |= {g.file for g in self.generation_files}
        return sorted(files)
