"""Wall time of our benchmark evaluator against lm-evaluation-harness 0.4.13's HF backend.

Same model, tasks and items as benchmarks/eval_agreement.py (arc_easy, arc_challenge,
hellaswag, MMLU cloze and letters on --mmlu-subjects, truthfulqa_mc1/mc2; the first --limit
items of each, MMLU per subject), same batch size, torch.set_num_threads(--threads, default 2)
for both. Both models are loaded before any timing, and the sides run alternately
(--repeats rounds, after one small untimed warm-up each); each side's best round counts.

What is timed:
- lm-eval: `lm_eval.evaluator.evaluate(HFLM, tasks, limit)` on task objects built
  beforehand, i.e. building every request (docs -> prompts, few-shot), tokenizing, the
  model's forward passes, per-item metrics and aggregation. Not timed: indexing the task
  YAMLs (TaskManager), building the tasks and loading their datasets into Arrow, and
  simple_evaluate's extras (environment and git info). Samples are not logged (its cheaper mode).
- ours: `run_task` for each task, i.e. reading the JSON-lines files, rendering prompts,
  tokenizing, scoring (contexts computed once per question), metrics, and the per-item
  log-likelihoods it always returns.
Reports each side's best wall time, items/s, and the ratio ours/lm-eval in items/s
(goal >= 3 on a 100M+ model). --per-task then times each task alone on both sides (once
each), and --profile runs ours once more under cProfile and prints where time goes.

Usage: .venv/bin/python benchmarks/eval_speed.py [--run runs/demo2 | --model HF_DIR]
           [--limit 50] [--repeats 2] [--batch-size 16] [--mmlu-subjects a,b,...] [--per-task] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

# eval_agreement sets the offline environment variables on import, before lm-eval loads;
# benchmarks/ is on sys.path when run as a script.
from eval_agreement import (
    FEWSHOT_SEED,
    add_common_args,
    lmeval_specs,
    load_hflm,
    quiet_lmeval,
    stage_run,
)

from tasks.evaluation.harness import contexts, encode_question, load_docs, run_task
from tasks.evaluation.models import load_eval_model


def token_counts(model, run, root: Path) -> dict[str, int]:
    """Tokens each side runs through the model, padding aside: the harness one row per choice
    (context + choice - 1; a question whose choices are all one token, once), ours each context once
    plus each choice but its last token, before a prefix shared across questions is taken out.
    Their ratio is roughly the speed-up that context sharing alone can give."""
    spec, docs, pool = load_docs(run, root, False)
    qs = [
        encode_question(model, c, d.choices)
        for c, d in zip(contexts(spec, docs, pool, run.num_fewshot, run.formulation == "letters"), docs)
    ]
    harness = sum(
        len(ctx) if all(len(c) == 1 for c in conts) else sum(len(ctx) + len(c) - 1 for c in conts) for ctx, conts in qs
    )
    ours = sum(len(ctx) + sum(len(c) - 1 for c in conts) for ctx, conts in qs)
    return {"harness_tokens": harness, "ours_tokens": ours}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, limit=50)
    ap.add_argument("--repeats", type=int, default=2, help="alternating timed rounds per side")
    ap.add_argument("--profile", action="store_true", help="then profile one run of ours with cProfile")
    ap.add_argument(
        "--per-task",
        action="store_true",
        help="then time each task on its own, both sides, once each (where the time goes)",
    )
    ap.add_argument("--out", type=Path, help="also write the timings as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    quiet_lmeval()
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix="eval_speed_") as tmp:
        folder, subjects, root, include, cases = stage_run(args, Path(tmp))
        lm, ours_model = load_hflm(folder, args.batch_size), load_eval_model(folder)
        tm = TaskManager(include_path=str(include))
        loaded = tm.load(lmeval_specs(tm, args.benchmarks, cases))  # untimed: task building, datasets

        def lmeval(limit: int, task_dict: dict = loaded) -> dict:
            for task in task_dict["tasks"].values():  # what simple_evaluate does before evaluate()
                if task.get_config("num_fewshot") is None:
                    task.set_config(key="num_fewshot", value=0)
                task.set_fewshot_seed(seed=FEWSHOT_SEED)
            return evaluate(lm=lm, task_dict=task_dict, limit=limit, log_samples=False)

        def ours(limit: int) -> dict[str, dict]:
            return {c.key: run_task(ours_model, replace(c.run, limit=limit), root) for c in cases}

        lmeval(2), ours(2)  # warm-up: first-call costs (allocator, lazy imports, dataset caches)
        times: dict[str, list[float]] = {"lm-eval": [], "ours": []}
        n_items = {}
        for _ in range(args.repeats):  # alternate, so machine noise hits both alike
            for side, fn in (("lm-eval", lmeval), ("ours", ours)):
                start = time.perf_counter()
                out = fn(args.limit)
                times[side].append(time.perf_counter() - start)
                print(f"  {side:<8} {times[side][-1]:8.2f} s", flush=True)
                if side == "ours":
                    n_items = {k: r["n"] for k, r in out.items()}
        n_items_total = sum(n_items.values())

        per_task: dict[str, dict[str, float]] = {}
        if args.per_task:
            for c in cases:
                one = tm.load(lmeval_specs(tm, args.benchmarks, [c]))
                start = time.perf_counter()
                lmeval(args.limit, one)
                theirs = time.perf_counter() - start
                start = time.perf_counter()
                run_task(ours_model, replace(c.run, limit=args.limit), root)
                mine = time.perf_counter() - start
                counts = token_counts(ours_model, replace(c.run, limit=args.limit), root)
                per_task[c.key] = {"lm-eval_s": theirs, "ours_s": mine, "ratio": theirs / mine, **counts}
                print(
                    f"  {c.key:<16} lm-eval {theirs:7.2f} s  ours {mine:7.2f} s  {theirs / mine:5.2f}x   tokens: "
                    f"harness {counts['harness_tokens']}, ours {counts['ours_tokens']} "
                    f"({counts['harness_tokens'] / counts['ours_tokens']:.2f}x fewer)",
                    flush=True,
                )

        profile = None
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(ours, args.limit)
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(30)
            buf.write("\n--- by own time ---\n")
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(20)
            profile = buf.getvalue()

    best = {side: min(ts) for side, ts in times.items()}
    rate = {side: n_items_total / t for side, t in best.items()}
    ratio = rate["ours"] / rate["lm-eval"]
    print(
        f"\nmodel: {args.model or args.run} | {len(cases)} tasks, {n_items_total} items (limit {args.limit}, MMLU "
        f"{len(subjects)} subjects, few-shot {args.fewshot}) | batch {args.batch_size} | threads {args.threads} | "
        f"best of {args.repeats}"
    )
    print(f"{'side':<10}{'best s':>9}{'items/s':>10}   all rounds (s)")
    for side in ("lm-eval", "ours"):
        print(f"{side:<10}{best[side]:>9.2f}{rate[side]:>10.1f}   {', '.join(f'{t:.2f}' for t in times[side])}")
    print(f"ours / lm-eval (items/s): {ratio:.2f}x  (goal >= 3x: {'met' if ratio >= 3 else 'NOT met'})")
    if profile:
        print("\ncProfile of ours (one run):\n" + profile)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "model": args.model or args.run,
                    "limit": args.limit,
                    "items": n_items,
                    "threads": args.threads,
                    "batch_size": args.batch_size,
                    "times_s": times,
                    "best_s": best,
                    "items_per_s": rate,
                    "ratio_ours_over_lmeval": ratio,
                    "per_task": per_task,
                },
                indent=1,
            )
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
