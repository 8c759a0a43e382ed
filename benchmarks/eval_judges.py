"""A real judge run: a pretrained causal LM rating truthfulqa_gen generations, and how far to trust it.

The model under test generates greedy answers to the first --limit TruthfulQA questions
(`run_generation`, the harness's truthfulqa_gen settings; items staged as in
benchmarks/eval_generation.py). A judge (`evaluation.judges`, kind causal_lm, the built-in
truthful and informative templates; by default the same model) then rates:
- the generations, giving the figures a run reports (`judge_<name>_truthful` and so on);
- the items' own reference answers, true and false, as a check of the judge itself: its
  accuracy at telling a true reference from a false one (threshold 0.5), and the AUC of its
  probability (the chance that a true answer outranks a false one; 0.5 = no signal).
Also: Cohen's kappa between the judge's truthful verdicts and the harness's `bleu_acc`, and
the judge's time per rating.

Usage: .venv/bin/python benchmarks/eval_judges.py --model HF_DIR [--judge HF_DIR] [--limit 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from eval_agreement import DEFAULT_BENCH, REPO
from eval_generation import stage_items

from tasks.evaluation.config import JudgeConfig
from tasks.evaluation.judges import judge_items
from tasks.evaluation.models import load_eval_model
from tasks.evaluation.open_ended import TRUTHFULQA_GEN_SETTINGS, run_generation, truthfulqa_docs
from tasks.evaluation.review import cohen_kappa


def auc(pos: list[float], neg: list[float]) -> float:
    """P(a random true answer's probability > a random false one's), ties counting half."""
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the Hugging Face causal LM that generates")
    ap.add_argument("--judge", help="the Hugging Face causal LM that judges (default: --model)")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--benchmarks", type=Path, default=DEFAULT_BENCH)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "eval_judges.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    judge_path = args.judge or args.model
    truthful = JudgeConfig(name="lm", kind="causal_lm", model=judge_path, aspect="truthful")
    informative = JudgeConfig(name="lm", kind="causal_lm", model=judge_path, aspect="informative")
    with tempfile.TemporaryDirectory(prefix="eval_judges_") as tmp:
        root, source = stage_items(args.benchmarks, Path(tmp) / "data")
        docs, _ = truthfulqa_docs(root, allow_hub=False)
        start = time.perf_counter()
        gen = run_generation(
            load_eval_model(args.model), "truthfulqa_gen", docs[: args.limit], TRUTHFULQA_GEN_SETTINGS, args.batch_size
        )
        gen_s = time.perf_counter() - start
    items = gen["items"]
    if not items:
        sys.exit(
            f"error: no TruthfulQA items under {args.benchmarks}; give --limit >= 1 and a --benchmarks folder "
            f"with truthfulqa/validation.jsonl"
        )
    start = time.perf_counter()
    p_true = judge_items(truthful, items)
    p_info = judge_items(informative, items)
    judge_s = time.perf_counter() - start
    # The judge on known answers: each item's first true reference and first false one as the "generation".
    known = [
        (dict(i, generation=i["references"][0]), dict(i, generation=i["incorrect_references"][0]))
        for i in items
        if i["incorrect_references"]
    ]
    if not known:  # the check of the judge needs false answers to compare with
        sys.exit(
            "error: none of these items has false reference answers (incorrect_answers), so the judge "
            "cannot be checked on them; use TruthfulQA's files, which hold them"
        )
    on_true = judge_items(truthful, [t for t, _ in known])
    on_false = judge_items(truthful, [f for _, f in known])
    accuracy = (sum(p > 0.5 for p in on_true) + sum(p <= 0.5 for p in on_false)) / (2 * len(known))
    verdicts = [float(p > 0.5) for p in p_true]
    kappa = cohen_kappa(verdicts, [float(i["bleu_acc"]) for i in items])
    ratings = 2 * len(items) + 2 * len(known)
    out = {
        "model": args.model,
        "judge": judge_path,
        "items": len(items),
        "source": source,
        "generation_s": gen_s,
        "judge_s_per_rating": judge_s / (2 * len(items)),
        "judge_truthful": sum(verdicts) / len(items),
        "judge_truthful_probability": sum(p_true) / len(p_true),
        "judge_informative": sum(p > 0.5 for p in p_info) / len(items),
        "judge_informative_probability": sum(p_info) / len(p_info),
        "bleu_acc": gen["bleu_acc"],
        "kappa_judge_vs_bleu_acc": kappa,
        "known_answers": len(known),
        "accuracy_true_vs_false_references": accuracy,
        "auc_true_vs_false_references": auc(on_true, on_false),
        "mean_probability_true_references": sum(on_true) / len(on_true),
        "mean_probability_false_references": sum(on_false) / len(on_false),
    }
    print(f"\nmodel {args.model} | judge {judge_path} | {len(items)} items from {source} | {ratings} ratings")
    for k, v in out.items():
        if isinstance(v, float):
            print(f"  {k:<36} {v:.4f}")
    if kappa is None:
        print("  kappa_judge_vs_bleu_acc              undefined (one side rated every item alike)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                **out,
                "per_item": [
                    {
                        "question": i["question"],
                        "generation": i["generation"],
                        "p_truthful": t,
                        "p_informative": f,
                        "bleu_acc": i["bleu_acc"],
                    }
                    for i, t, f in zip(items, p_true, p_info)
                ],
            },
            indent=1,
        )
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
