"""Item-by-item agreement of our benchmark evaluator with lm-evaluation-harness 0.4.13.

Both evaluate the same Hugging Face causal LM in one process on the same local benchmark
files: arc_easy, arc_challenge, hellaswag, MMLU in the cloze form (lm-eval's
`mmlu_<subject>_continuation`) and the letter form (lm-eval's default `mmlu_<subject>`) on a
few subjects, truthfulqa_mc1 and truthfulqa_mc2. Each side takes the first N items of the
evaluated split (MMLU: of each subject). For every task it reports:
- the number of items and whether every item's rendered context and continuations are
  identical strings on both sides (lm-eval's logged request arguments against ours);
- lm-eval's metrics and ours (acc, acc_norm, mc1/mc2 = lm-eval's `acc` on truthfulqa_mc1/2,
  each with its standard error; MMLU: the size-weighted group figure) and their difference;
- the largest |log-likelihood difference| over every choice of every item (goal < 1e-4);
- how many items' predicted choice (argmax of ll; of ll / length for acc_norm) differs.

The model is `--model` (an HF folder) or, by default, the trained demo run exported to a
temporary folder the way `crucible export` does. lm-eval runs through `simple_evaluate` with
`HFLM` wrapping an already-loaded float32 model, offline, with each built-in task YAML
pointed at the local files (recipe: TaskManager index + overrides; MMLU as a group YAML
whose members are the registered subject tasks). Ours runs `load_eval_model` + `run_task`.
Exits 1 if any context differs or any log-likelihood differs by --tol or more.

Usage: .venv/bin/python benchmarks/eval_agreement.py [--run runs/demo2 | --model HF_DIR]
           [--limit 100] [--mmlu-subjects a,b,...] [--fewshot 0] [--batch-size 16] [--out PATH]
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# datasets, huggingface_hub and transformers read these when imported: set them first, so
# nothing tries the network and the json builder's Arrow cache stays out of $HOME.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_CACHE", str(Path(tempfile.gettempdir()) / "crucible_lmeval_datasets"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import logging
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import yaml

from tasks.evaluation.harness import TaskRun, load_docs, run_task

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BENCH = REPO.parent / "shared" / "benchmarks"
DEFAULT_SUBJECTS = "abstract_algebra,anatomy,high_school_us_history,moral_scenarios,professional_law"
FEWSHOT_SEED = 1234  # simple_evaluate's default fewshot_random_seed


@dataclass(frozen=True)
class Case:
    """One compared task: how ours runs it, what lm-eval calls it, and how the metrics map."""

    key: str  # row name
    run: TaskRun
    lmeval: str  # lm-eval task (or, for MMLU, our local group) whose results hold the metrics
    metrics: dict[str, str]  # our metric name -> lm-eval's
    subject_tasks: dict[str, str] = field(default_factory=dict)  # MMLU: subject -> lm-eval task

    @property
    def lmeval_tasks(self) -> list[str]:
        return list(self.subject_tasks.values()) or [self.lmeval]


def make_cases(limit: int, subjects: list[str], fewshot: int) -> list[Case]:
    acc = {"acc": "acc", "acc_norm": "acc_norm"}
    return [
        Case("arc_easy", TaskRun("arc_easy", "cloze", 0, limit), "arc_easy", acc),
        Case("arc_challenge", TaskRun("arc_challenge", "cloze", 0, limit), "arc_challenge", acc),
        Case("hellaswag", TaskRun("hellaswag", "cloze", 0, limit), "hellaswag", acc),
        Case(
            "mmlu_cloze",
            TaskRun("mmlu", "cloze", fewshot, limit),
            "crucible_mmlu_cloze",
            acc,
            {s: f"mmlu_{s}_continuation" for s in subjects},
        ),
        Case(
            "mmlu_letters",
            TaskRun("mmlu", "letters", fewshot, limit),
            "crucible_mmlu_letters",
            {"acc": "acc"},
            {s: f"mmlu_{s}" for s in subjects},
        ),
        # lm-eval names both TruthfulQA metrics `acc`.
        Case("truthfulqa_mc1", TaskRun("truthfulqa_mc1", "cloze", 0, limit), "truthfulqa_mc1", {"mc1": "acc"}),
        Case("truthfulqa_mc2", TaskRun("truthfulqa_mc2", "cloze", 0, limit), "truthfulqa_mc2", {"mc2": "acc"}),
    ]


# --------------------------------------------------------------------------- model


def prepare_model(model: str | None, run: str, workdir: Path) -> Path:
    """The HF folder to evaluate: --model as given, else the run exported into `workdir`."""
    if model:
        if not (Path(model) / "config.json").is_file():
            sys.exit(f"error: --model {model} is not a Hugging Face model folder (no config.json)")
        return Path(model)
    from infra.core.storage import RunDir
    from models.export import export_hf
    from tasks.training.checkpoint import FINAL, load_model

    rd = RunDir(Path(run))
    if not (rd.checkpoints / FINAL / "model.json").is_file() or not rd.tokenizer.is_file():
        sys.exit(
            f"error: {run} has no trained model ({rd.checkpoints / FINAL}/model.json) or tokenizer "
            f"({rd.tokenizer}); pass --model HF_DIR (a Hugging Face causal-LM folder), or train a run "
            f"first: `bash infra/dev.sh demo --run-id demo2` (or `crucible run --run-id demo2`)"
        )
    trained, _ = load_model(rd.checkpoints / FINAL)
    dest = workdir / "hf"
    cls = export_hf(trained, rd.tokenizer, dest)  # as `crucible export` does
    print(f"exported {run} as {cls} to {dest}")
    return dest


def load_hflm(folder: Path, batch_size: int):
    """lm-eval's HF backend around a model we load ourselves (float32, eval mode, CPU)."""
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    return HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)


# --------------------------------------------------------------------------- data


def _subject_lines(path: Path, subjects: list[str]) -> dict[str, list[str]]:
    """The file's lines per subject, verbatim and in file order (so both sides read the same bytes)."""
    out: dict[str, list[str]] = defaultdict(list)
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                subject = json.loads(line)["subject"]
                if subject in subjects:
                    out[subject].append(line if line.endswith("\n") else line + "\n")
    return out


def stage_data(bench: Path, subjects: list[str], fewshot: int, dest: Path) -> tuple[Path, Path]:
    """Lay out the benchmark files for both sides; return (our data root, lm-eval include_path).

    Ours reads `<root>/<dataset>/<split>.jsonl`: the shared files, except MMLU cut down to
    the chosen subjects (our evaluator runs every subject it finds). lm-eval needs one
    dataset per MMLU subject task, so each subject gets its own dev/test files, and two group
    YAMLs make lm-eval aggregate the subjects as it aggregates `mmlu` (size-weighted).
    """
    ours, lm_data, lm_tasks = dest / "ours", dest / "lmeval_data", dest / "lmeval_tasks"
    for d in (ours / "mmlu", lm_tasks):
        d.mkdir(parents=True)
    for name in ("arc_easy", "arc_challenge", "hellaswag", "truthfulqa"):
        (ours / name).symlink_to(bench / name)
    for split in ("test", "dev"):
        by_subject = _subject_lines(bench / "mmlu" / f"{split}.jsonl", subjects)
        missing = [s for s in subjects if s not in by_subject]
        if missing:
            sys.exit(f"error: no MMLU {split} items for subject(s) {', '.join(missing)} in {bench / 'mmlu'}")
        with (ours / "mmlu" / f"{split}.jsonl").open("w", encoding="utf-8") as f:
            for s in subjects:
                f.writelines(by_subject[s])
        for s in subjects:
            (lm_data / s).mkdir(parents=True, exist_ok=True)
            (lm_data / s / f"{split}.jsonl").write_text("".join(by_subject[s]), encoding="utf-8")

    def group(name: str, task_of: str, metrics: list[str]) -> None:
        members = []
        for s in subjects:
            m: dict[str, Any] = {
                "task": task_of.format(s),
                "dataset_path": "json",
                "dataset_name": None,
                "dataset_kwargs": {"data_files": {sp: str(lm_data / s / f"{sp}.jsonl") for sp in ("dev", "test")}},
            }
            if fewshot:
                m["num_fewshot"] = fewshot
            members.append(m)
        cfg = {
            "group": name,
            "task": members,
            "metadata": {"version": 2},
            "aggregate_metric_list": [{"metric": x, "weight_by_size": True} for x in metrics],
        }
        (lm_tasks / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")

    group("crucible_mmlu_cloze", "mmlu_{}_continuation", ["acc", "acc_norm"])
    group("crucible_mmlu_letters", "mmlu_{}", ["acc"])
    return ours, lm_tasks


def lmeval_specs(tm, bench: Path, cases: list[Case]) -> list:
    """lm-eval task specs: each built-in YAML (templates, metrics, process_docs) with only its
    data source changed to the local JSON-lines files."""
    from lm_eval.tasks._yaml_loader import load_yaml

    def builtin(name: str, folder: str, splits: list[str], **overrides) -> dict:
        # A dict in `tasks=` is a complete inline config, so start from the registered YAML.
        cfg = load_yaml(tm.task_index[name].yaml_path, resolve_func=True)
        cfg.pop("tag", None)
        cfg.update(
            dataset_path="json",
            dataset_name=None,
            dataset_kwargs={"data_files": {s: str(bench / folder / f"{s}.jsonl") for s in splits}},
            **overrides,
        )
        return cfg

    specs: list = []
    for c in cases:
        if c.subject_tasks:
            specs.append(c.lmeval)  # the group YAML from stage_data
        elif c.run.task in ("arc_easy", "arc_challenge"):
            # No local train split: without training_split=None the task asks for it and fails.
            specs.append(builtin(c.lmeval, c.run.task, ["validation", "test"], training_split=None))
        elif c.run.task == "hellaswag":
            specs.append(builtin(c.lmeval, "hellaswag", ["validation"], training_split=None))
        else:
            specs.append(builtin(c.lmeval, "truthfulqa", ["validation"]))
    return specs


def quiet_lmeval() -> None:
    """lm-eval logs every task at INFO and every left-truncated request as a warning; keep errors."""
    for name in ("lm_eval", "lm-eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


# --------------------------------------------------------------------------- comparison


def _lmeval_items(case: Case, samples: dict[str, list[dict]], subjects: list[str | None]) -> list[dict]:
    """lm-eval's logged samples in our item order (MMLU: by subject, then doc id)."""
    by_task = {t: sorted(samples.get(t, []), key=lambda s: s["doc_id"]) for t in case.lmeval_tasks}
    nth: dict[str | None, int] = defaultdict(int)
    out = []
    for subject in subjects:
        task = case.subject_tasks.get(subject, case.lmeval) if subject else case.lmeval
        rows = by_task[task]
        out.append(rows[nth[subject]] if nth[subject] < len(rows) else None)
        nth[subject] += 1
    return out


def _argmax_norm(lls: list[float], choices: list[str]) -> int:
    return int(np.argmax(np.array(lls) / np.array([float(len(c)) for c in choices])))


def _num(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) else float("nan")  # lm-eval writes "N/A" for no stderr


def compare(case: Case, ours: dict[str, Any], res: dict[str, Any], root: Path) -> dict[str, Any]:
    """One task's agreement: contexts, log-likelihoods, predictions and metrics."""
    results, samples = res["results"], res["samples"]
    _, docs, _ = load_docs(case.run, root, allow_hub=False)  # the order run_task scored them in
    theirs = _lmeval_items(case, samples, [d.subject for d in docs])
    ctx_mismatch, first_mismatch, max_diff, pred_diff, pred_norm_diff, missing = 0, None, 0.0, 0, 0, 0
    worst = None  # where the largest difference is: float32 round-off grows with |ll|
    for i, (mine, s) in enumerate(zip(ours["items"], theirs)):
        if s is None:
            missing += 1
            continue
        args = [tuple(a) for a in s["arguments"]]
        expected = [(mine["context"], " " + c) for c in mine["choices"]]
        if args != expected:
            ctx_mismatch += 1
            if first_mismatch is None:
                first_mismatch = {"item": i, "lmeval": args[0] if args else None, "ours": expected[0]}
            continue  # log-likelihoods of different prompts are not comparable
        lm_ll = [float(r[0]) for r in s["filtered_resps"]]
        for j, (a, b) in enumerate(zip(lm_ll, mine["loglikelihoods"])):
            if abs(a - b) > max_diff:
                # float32 sums: one unit in the last place of |ll| ~ 500 is already 6e-5
                max_diff, worst = (
                    abs(a - b),
                    {
                        "item": i,
                        "choice": j,
                        "lmeval_ll": a,
                        "ours_ll": b,
                        "float32_ulp": float(np.spacing(np.float32(a))),
                    },
                )
        pred_diff += int(np.argmax(lm_ll) != np.argmax(mine["loglikelihoods"]))
        if "acc_norm" in case.metrics:
            pred_norm_diff += int(
                _argmax_norm(lm_ll, mine["choices"]) != _argmax_norm(mine["loglikelihoods"], mine["choices"])
            )

    def metric_rows(ours_m: dict[str, Any], theirs_m: dict[str, Any]) -> dict[str, dict[str, float]]:
        rows = {}
        for m, lm_name in case.metrics.items():
            a, b = _num(theirs_m.get(f"{lm_name},none")), _num(ours_m.get(m))
            ase, bse = _num(theirs_m.get(f"{lm_name}_stderr,none")), _num(ours_m.get(f"{m}_stderr"))
            rows[m] = {
                "lmeval": a,
                "ours": b,
                "diff": abs(a - b),
                "identical": a == b,
                "lmeval_stderr": ase,
                "ours_stderr": bse,
                "stderr_diff": abs(ase - bse),
                "stderr_identical": ase == bse or (math.isnan(ase) and math.isnan(bse)),
            }
        return rows

    out: dict[str, Any] = {
        "task": case.key,
        "lmeval_task": case.lmeval,
        "num_fewshot": case.run.num_fewshot,
        "lmeval_num_fewshot": sorted({res["n-shot"].get(t) for t in case.lmeval_tasks}, key=str),
        "n_ours": len(ours["items"]),
        "n_lmeval": sum(len(samples.get(t, [])) for t in case.lmeval_tasks),
        "items_missing_in_lmeval": missing,
        "context_mismatches": ctx_mismatch,
        "first_context_mismatch": first_mismatch,
        "max_abs_ll_diff": max_diff,
        "max_ll_diff_at": worst,
        "pred_diff": pred_diff,
        "pred_norm_diff": pred_norm_diff,
        "metrics": metric_rows(ours, results.get(case.lmeval, {})),
    }
    if case.subject_tasks:
        out["subjects"] = {
            s: metric_rows(ours["subjects"].get(s, {}), results.get(t, {})) for s, t in case.subject_tasks.items()
        }
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'task':<16}{'n':>5}  {'metric':<9}{'lm-eval':>9}{'ours':>9}{'|diff|':>9}  "
        f"{'stderr lm':>10}{'ours':>9}{'|diff|':>9}  {'ctx≠':>5}{'max|Δll|':>10}{'pred≠':>6}{'norm≠':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        n = r["n_ours"] if r["n_ours"] == r["n_lmeval"] else f"{r['n_ours']}/{r['n_lmeval']}"
        for k, (m, v) in enumerate(r["metrics"].items()):
            same = "=" if v["identical"] else f"{v['diff']:.1e}"
            se_same = "=" if v["stderr_identical"] else f"{v['stderr_diff']:.1e}"
            tail = (
                (
                    f"  {r['context_mismatches']:>5}{r['max_abs_ll_diff']:>10.1e}{r['pred_diff']:>6}"
                    f"{r['pred_norm_diff'] if 'acc_norm' in r['metrics'] else '-':>6}"
                )
                if k == 0
                else ""
            )
            print(
                f"{(r['task'] if k == 0 else ''):<16}{(str(n) if k == 0 else ''):>5}  {m:<9}{v['lmeval']:>9.4f}"
                f"{v['ours']:>9.4f}{same:>9}  {v['lmeval_stderr']:>10.4f}"
                f"{v['ours_stderr']:>9.4f}{se_same:>9}{tail}"
            )
        if "subjects" in r:
            subs = r["subjects"].values()
            same = sum(all(v["identical"] for v in s.values()) for s in subs)
            print(f"{'':<16}{'':>5}  per subject: metrics identical in {same} of {len(r['subjects'])}")


# --------------------------------------------------------------------------- main


def add_common_args(ap: argparse.ArgumentParser, limit: int) -> None:
    ap.add_argument("--model", help="a Hugging Face causal-LM folder (default: export --run)")
    ap.add_argument("--run", default="runs/demo2", help="Crucible run to export when --model is not given")
    ap.add_argument("--limit", type=int, default=limit, help="first N items per task (MMLU: per subject)")
    ap.add_argument("--mmlu-subjects", default=DEFAULT_SUBJECTS, help="comma-separated MMLU subjects")
    ap.add_argument("--fewshot", type=int, default=0, help="MMLU few-shot examples (first n of dev)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--benchmarks", type=Path, default=DEFAULT_BENCH, help="local benchmark folder")
    ap.add_argument("--threads", type=int, default=2, help="torch threads, the same for both sides")


def stage_run(args: argparse.Namespace, work: Path) -> tuple[Path, list[str], Path, Path, list]:
    """Shared set-up of both scripts: the model folder, the MMLU subjects, the staged data
    (our root, lm-eval's include path) and the task cases."""
    subjects = [s.strip() for s in args.mmlu_subjects.split(",") if s.strip()]
    folder = prepare_model(args.model, args.run, work)
    root, include = stage_data(args.benchmarks, subjects, args.fewshot, work / "data")
    return folder, subjects, root, include, make_cases(args.limit, subjects, args.fewshot)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, limit=100)
    ap.add_argument("--tol", type=float, default=1e-4, help="largest allowed |log-likelihood difference|")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "eval_agreement.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    quiet_lmeval()
    import lm_eval
    from lm_eval.tasks import TaskManager

    from tasks.evaluation.models import load_eval_model

    with tempfile.TemporaryDirectory(prefix="eval_agreement_") as tmp:
        folder, subjects, root, include, cases = stage_run(args, Path(tmp))

        tm = TaskManager(include_path=str(include))
        res = lm_eval.simple_evaluate(
            model=load_hflm(folder, args.batch_size),
            tasks=lmeval_specs(tm, args.benchmarks, cases),
            task_manager=tm,
            limit=args.limit,
            log_samples=True,
            fewshot_random_seed=FEWSHOT_SEED,
        )
        ours_model = load_eval_model(folder)
        rows = [compare(c, run_task(ours_model, c.run, root), res, root) for c in cases]

    print(
        f"\nmodel: {args.model or args.run} | limit {args.limit} | MMLU subjects: {', '.join(subjects)} | "
        f"MMLU few-shot {args.fewshot} | batch {args.batch_size} | threads {args.threads}"
    )
    print_table(rows)
    bad = [
        r["task"]
        for r in rows
        if r["context_mismatches"]
        or r["items_missing_in_lmeval"]
        or r["n_ours"] != r["n_lmeval"]
        or r["max_abs_ll_diff"] >= args.tol
        or r["lmeval_num_fewshot"] != [r["num_fewshot"]]
    ]
    for r in rows:
        if r["first_context_mismatch"]:
            print(f"\nfirst context mismatch in {r['task']}: {json.dumps(r['first_context_mismatch'])[:2000]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "model": args.model or args.run,
                "limit": args.limit,
                "mmlu_subjects": subjects,
                "fewshot": args.fewshot,
                "batch_size": args.batch_size,
                "tol": args.tol,
                "tasks": rows,
            },
            indent=1,
            default=str,
        )
    )
    print(f"\nwrote {args.out}")
    if bad:
        print(f"DISAGREEMENT (context mismatch, item count, few-shot count or |Δll| >= {args.tol:g}): {', '.join(bad)}")
        sys.exit(1)
    print(f"agreement: identical contexts and |Δll| < {args.tol:g} on every task")


if __name__ == "__main__":
    main()
