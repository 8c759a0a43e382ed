"""Generation against lm-evaluation-harness 0.4.13's `generate_until`: agreement and speed.

Both sides run truthfulqa_gen 0-shot on the same Hugging Face causal LM (float32, CPU, the
same torch threads and batch size) and the same items: the first --limit questions of
TruthfulQA's generation split when --benchmarks has truthfulqa_generation/validation.jsonl,
else the multiple-choice file's questions with its mc2 true/false answers as references,
written as a generation-split JSON-lines file that both sides read.

lm-eval runs its own truthfulqa_gen YAML (prompt, process_docs_gen, until "\\n\\n", greedy,
max_gen_toks 256, BLEU/ROUGE via sacrebleu and rouge-score) with only the data source
pointed at that file, through `lm_eval.evaluator.evaluate` on a task object built before
timing, samples logged. Ours runs `truthfulqa_docs` + `run_generation` (KV-cached batched
greedy decoding, rows leaving the batch as they stop) and scores with the same libraries.

Reports, per item: whether the generations are identical strings, and the largest
|difference| of each BLEU/ROUGE figure; the aggregates side by side; each side's wall time
(best of --repeats alternating rounds) and items/s, and their ratio (goal >= 2).
Exits 1 when any generation differs or any figure differs by --tol (1e-6) or more.

Usage: .venv/bin/python benchmarks/eval_generation.py [--model HF_DIR | --run runs/demo2]
           [--limit 40] [--batch-size 16] [--repeats 1] [--threads 2] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

# eval_agreement sets the offline environment variables on import, before lm-eval loads.
from eval_agreement import DEFAULT_BENCH, REPO, load_hflm, prepare_model, quiet_lmeval

from tasks.evaluation.models import load_eval_model
from tasks.evaluation.open_ended import TRUTHFULQA_GEN_SETTINGS, run_generation, truthfulqa_docs
from tasks.evaluation.text_metrics import METRIC_FAMILIES

METRICS = [f"{f}_{k}" for f in METRIC_FAMILIES for k in ("max", "acc", "diff")]


def stage_items(bench: Path, dest: Path) -> tuple[Path, str]:
    """A generation-split JSON-lines file both sides read, and where its items came from."""
    real = bench / "truthfulqa_generation" / "validation.jsonl"
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "truthfulqa_generation" / "validation.jsonl"
    out.parent.mkdir(parents=True)
    if real.is_file():
        out.write_text(real.read_text(encoding="utf-8"), encoding="utf-8")
        return dest, f"{real}"
    lines = []
    for line in (bench / "truthfulqa" / "validation.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            t = rec["mc2_targets"]
            lines.append(
                json.dumps(
                    {
                        "question": rec["question"],
                        "correct_answers": [c for c, y in zip(t["choices"], t["labels"]) if y],
                        "incorrect_answers": [c for c, y in zip(t["choices"], t["labels"]) if not y],
                    }
                )
            )
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest, f"{bench / 'truthfulqa' / 'validation.jsonl'} (mc2 true/false answers as references)"


def lmeval_task(root: Path):
    """lm-eval's own truthfulqa_gen task, reading the staged file."""
    from lm_eval.tasks import TaskManager, get_task_dict
    from lm_eval.tasks._yaml_loader import load_yaml

    tm = TaskManager()
    cfg = load_yaml(tm.task_index["truthfulqa_gen"].yaml_path, resolve_func=True)
    cfg.pop("tag", None)
    cfg.update(
        dataset_path="json",
        dataset_name=None,
        dataset_kwargs={"data_files": {"validation": str(root / "truthfulqa_generation" / "validation.jsonl")}},
    )
    return get_task_dict([cfg], tm)


def run_lmeval(lm, task_dict, limit: int) -> tuple[float, dict, list[dict]]:
    from lm_eval.evaluator import evaluate

    start = time.perf_counter()
    res = evaluate(lm=lm, task_dict=task_dict, limit=limit, log_samples=True)
    wall = time.perf_counter() - start
    name = next(iter(res["samples"]))
    return wall, res["results"][name], sorted(res["samples"][name], key=lambda s: s["doc_id"])


def run_ours(model, root: Path, limit: int, batch_size: int) -> tuple[float, dict]:
    start = time.perf_counter()
    docs, _ = truthfulqa_docs(root, allow_hub=False)
    result = run_generation(model, "truthfulqa_gen", docs[:limit], TRUTHFULQA_GEN_SETTINGS, batch_size)
    return time.perf_counter() - start, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a Hugging Face causal-LM folder (default: export --run)")
    ap.add_argument("--run", default="runs/demo2", help="Crucible run to export when --model is not given")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=1, help="alternating timed rounds per side")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--benchmarks", type=Path, default=DEFAULT_BENCH)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "eval_generation.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    quiet_lmeval()
    with tempfile.TemporaryDirectory(prefix="eval_generation_") as tmp:
        folder = prepare_model(args.model, args.run, Path(tmp))
        root, source = stage_items(args.benchmarks, Path(tmp) / "data")
        lm, ours_model = load_hflm(folder, args.batch_size), load_eval_model(folder)
        task_dict = lmeval_task(root)
        theirs_s, ours_s = [], []
        for _ in range(args.repeats):
            wall, lm_res, samples = run_lmeval(lm, task_dict, args.limit)
            theirs_s.append(wall)
            wall, ours = run_ours(ours_model, root, args.limit, args.batch_size)
            ours_s.append(wall)
    items = ours["items"]
    n = len(items)
    differ = [i for i, (o, s) in enumerate(zip(items, samples)) if o["generation"] != s["filtered_resps"][0]]
    item_diff = {m: max(abs(o[m] - float(s[m])) for o, s in zip(items, samples)) for m in METRICS}
    agg_diff = {m: abs(ours[m] - float(lm_res[f"{m},none"])) for m in METRICS}
    speed = (n / min(ours_s)) / (n / min(theirs_s))
    print(
        f"\nmodel: {args.model or args.run} | items: {n} from {source} | batch {args.batch_size} | "
        f"threads {args.threads}"
    )
    print(f"generations identical: {n - len(differ)}/{n}" + (f" (first differing item: {differ[0]})" if differ else ""))
    print(f"{'metric':<14}{'lm-eval':>12}{'ours':>12}{'|diff|':>12}{'max item |diff|':>18}")
    for m in METRICS:
        print(f"{m:<14}{float(lm_res[f'{m},none']):>12.6f}{ours[m]:>12.6f}{agg_diff[m]:>12.2e}{item_diff[m]:>18.2e}")
    print(
        f"wall: lm-eval {min(theirs_s):.1f} s ({n / min(theirs_s):.2f} items/s), ours {min(ours_s):.1f} s "
        f"({n / min(ours_s):.2f} items/s): {speed:.2f}x (goal >= 2)"
    )
    print(f"stops: {ours['stops']}; prompts cut on the left: {ours['truncated_prompts']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "model": args.model or args.run,
                "items": n,
                "source": source,
                "batch_size": args.batch_size,
                "threads": args.threads,
                "identical_generations": n - len(differ),
                "differing_items": differ,
                "max_item_diff": item_diff,
                "aggregate_diff": agg_diff,
                "lmeval_s": theirs_s,
                "ours_s": ours_s,
                "speedup": speed,
                "lmeval": {m: float(lm_res[f"{m},none"]) for m in METRICS},
                "ours": {m: ours[m] for m in METRICS},
                "first_difference": (
                    {"ours": items[differ[0]]["generation"], "lmeval": samples[differ[0]]["filtered_resps"][0]}
                    if differ
                    else None
                ),
            },
            indent=1,
        )
    )
    print(f"wrote {args.out}")
    if differ or max(*item_diff.values(), *agg_diff.values()) >= args.tol:
        print("DISAGREEMENT")
        sys.exit(1)


if __name__ == "__main__":
    main()
