"""Text perplexity against lm-evaluation-harness 0.4.13's `wikitext` task: equality and speed.

Both sides score the same text as one document on the same Hugging Face causal LM (float32,
CPU, the same threads): lm-eval's own wikitext YAML (loglikelihood_rolling, its
word_perplexity / byte_perplexity / bits_per_byte) with only the data source changed to
that one document and its detokenizer replaced by the identity (the text is already plain),
and ours, `text_perplexity`, whose output head runs a slice of positions at a time
(`--logits-mb`). Prints both sides' figures, their relative differences and wall times.
Exits 1 when a figure differs by --rtol (1e-6) or more.

Usage: .venv/bin/python benchmarks/eval_perplexity.py --model HF_DIR [--text FILE] [--bytes 40000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from eval_agreement import REPO, load_hflm, quiet_lmeval

from tasks.evaluation.models import load_eval_model
from tasks.evaluation.perplexity import text_perplexity

FIGURES = ("word_perplexity", "byte_perplexity", "bits_per_byte")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a Hugging Face causal-LM folder")
    ap.add_argument("--text", type=Path, default=REPO.parent / "shared" / "corpora" / "wikitext2_valid.txt")
    ap.add_argument("--bytes", type=int, default=40_000, help="score the first N bytes (whole lines) of the text")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--logits-mb", type=int, default=256)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "eval_perplexity.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    quiet_lmeval()
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager, get_task_dict
    from lm_eval.tasks._yaml_loader import load_yaml

    text, size = "", 0
    for line in args.text.read_text(encoding="utf-8").splitlines(keepends=True):
        if size + len(line.encode("utf-8")) > args.bytes:
            break
        text, size = text + line, size + len(line.encode("utf-8"))
    with tempfile.TemporaryDirectory(prefix="eval_perplexity_") as tmp:
        doc = Path(tmp) / "text.txt"
        doc.write_text(text, encoding="utf-8")
        data = Path(tmp) / "test.jsonl"
        data.write_text(json.dumps({"page": text}) + "\n", encoding="utf-8")
        tm = TaskManager()
        cfg = load_yaml(tm.task_index["wikitext"].yaml_path, resolve_func=True)
        cfg.update(
            dataset_path="json",
            dataset_name=None,
            training_split=None,
            validation_split=None,
            dataset_kwargs={"data_files": {"test": str(data)}},
            doc_to_target=lambda d: d["page"],
        )
        task_dict = get_task_dict([cfg], tm)
        lm = load_hflm(Path(args.model), 1)
        model = load_eval_model(args.model)
        start = time.perf_counter()
        theirs = evaluate(lm=lm, task_dict=task_dict)["results"]["wikitext"]
        theirs_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = text_perplexity(model, doc, batch_size=16, logits_mb=args.logits_mb)
        ours_s = time.perf_counter() - start
    rel = {f: abs(ours[f] - theirs[f"{f},none"]) / abs(theirs[f"{f},none"]) for f in FIGURES}
    print(
        f"\nmodel {args.model} | {size:,} bytes of {args.text.name}, {ours['tokens']:,} tokens, window "
        f"{model.max_length:,} | threads {args.threads}"
    )
    for f in FIGURES:
        print(f"{f:<16} lm-eval {theirs[f'{f},none']:.9f}  ours {ours[f]:.9f}  rel diff {rel[f]:.1e}")
    print(f"wall: lm-eval {theirs_s:.1f} s, ours {ours_s:.1f} s: {theirs_s / ours_s:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "model": args.model,
                "bytes": size,
                "tokens": ours["tokens"],
                "ours": ours,
                "lmeval": {f: theirs[f"{f},none"] for f in FIGURES},
                "rel_diff": rel,
                "lmeval_s": theirs_s,
                "ours_s": ours_s,
            },
            indent=1,
            default=str,
        )
    )
    if max(rel.values()) >= args.rtol:
        print("DISAGREEMENT")
        sys.exit(1)


if __name__ == "__main__":
    main()
