"""Evaluate a run's trained model: held-out perplexity and HellaSwag."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from infra.storage import RunDir, write_json
from tasks.evaluation import hellaswag
from tasks.evaluation.config import EvaluationConfig
from tasks.evaluation.loglikelihood import loglikelihoods
from tasks.evaluation.perplexity import perplexity
from tasks.tokenization.bpe import load_tokenizer
from tasks.tokenization.reader import TokenRows, check_tokenizer_matches, read_manifest
from tasks.training.checkpoint import FINAL, load_model

log = logging.getLogger(__name__)


def evaluate_hellaswag(model, tok, eos_id: int, seq_len: int, cfg: EvaluationConfig) -> dict[str, Any]:
    path = Path(cfg.hellaswag_path) if cfg.hellaswag_path else None
    if path is None or not path.is_file():
        reason = (f"{path} not found" if path else "no file configured") + (
            "; set evaluation.hellaswag_path to a HellaSwag JSONL file in the Hugging Face schema")
        log.warning("skipping HellaSwag: %s", reason)
        return {"skipped": reason}
    docs = hellaswag.load_items(path, cfg.hellaswag_limit)
    requests = [r for d in docs for r in hellaswag.requests_for(d)]
    lls = []
    for start in tqdm(range(0, len(requests), 64 * cfg.batch_size), desc="hellaswag", unit="chunk"):
        chunk = requests[start:start + 64 * cfg.batch_size]
        lls += [ll for ll, _ in loglikelihoods(model, tok, chunk, eos_id, seq_len, cfg.batch_size)]
    return {**hellaswag.score(docs, lls), "source": str(path)}


def evaluate_run(run_dir: Path, cfg: EvaluationConfig) -> dict[str, Any]:
    run = RunDir(Path(run_dir))
    model, meta = load_model(run.checkpoints / FINAL)
    tok = load_tokenizer(run.tokenizer)
    manifest = read_manifest(run.shards)
    check_tokenizer_matches(manifest, run.tokenizer, run.shards)
    eos_id = manifest["eos_id"]
    results = {
        "step": meta["step"],
        "perplexity": perplexity(model, TokenRows.open(run.shards, "val", manifest=manifest), tok, eos_id,
                                 cfg.perplexity_max_rows, cfg.batch_size),
        "hellaswag": evaluate_hellaswag(model, tok, eos_id, meta["seq_len"], cfg),
    }
    write_json(run.eval_results, results)
    return results
