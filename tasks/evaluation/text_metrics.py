"""BLEU and ROUGE of a generation against reference answers, as lm-evaluation-harness scores them.

The scores come from sacrebleu and rouge-score, called with the harness's settings
(truthfulqa/utils.py, after T5's metrics): sentence BLEU as a one-sentence corpus BLEU with
exponential smoothing and the "intl" tokenizer; ROUGE-1, ROUGE-2 and ROUGE-Lsum F-measures
x 100, with " . " turned into sentence breaks. Each metric is the best score over the true
references (`*_max`); with false references too, `*_diff` is best-true minus best-false
and `*_acc` is 1 when the best true reference beats the best false one.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")
# Our names for the rouge-score types, as the harness reports them.
ROUGE_NAMES = {"rouge1": "rouge1", "rouge2": "rouge2", "rougeLsum": "rougeL"}
METRIC_FAMILIES = ("bleu", "rouge1", "rouge2", "rougeL")


def bleu(reference: str, generation: str) -> float:
    import sacrebleu

    return sacrebleu.corpus_bleu(
        [generation],
        [[reference]],
        smooth_method="exp",
        smooth_value=0.0,
        force=False,
        lowercase=False,
        tokenize="intl",
        use_effective_order=False,
    ).score


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES))


def rouge(reference: str, generation: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures x 100 (the harness's bootstrap aggregate of one pair is the pair's score)."""
    from rouge_score import scoring

    agg = scoring.BootstrapAggregator()
    agg.add_scores(_scorer().score(reference.replace(" . ", ".\n"), generation.replace(" . ", ".\n")))
    result = agg.aggregate()
    return {ROUGE_NAMES[t]: result[t].mid.fmeasure * 100 for t in ROUGE_TYPES}


def reference_scores(generation: str, true_refs: list[str], false_refs: list[str] | None = None) -> dict[str, float]:
    """bleu/rouge1/rouge2/rougeL _max, and with false references _acc and _diff, for one item."""
    if not true_refs:
        raise ValueError("an item needs at least one reference answer")
    refs = list(true_refs) + list(false_refs or [])
    per_ref = [{"bleu": bleu(r, generation), **rouge(r, generation)} for r in refs]
    out: dict[str, float] = {}
    n_true = len(true_refs)
    for family in METRIC_FAMILIES:
        scores = [s[family] for s in per_ref]
        best_true = float(np.nanmax(scores[:n_true]))
        out[f"{family}_max"] = best_true
        if false_refs:
            best_false = float(np.nanmax(scores[n_true:]))
            out[f"{family}_acc"] = float(best_true > best_false)
            out[f"{family}_diff"] = best_true - best_false
    return out
