"""BLEU and ROUGE against values worked out by hand from their definitions."""

from __future__ import annotations

import math

import pytest

from tasks.evaluation.text_metrics import bleu, reference_scores, rouge

REF = "the cat sat on the mat"


def test_bleu_is_the_geometric_mean_of_ngram_precisions_times_100():
    # the cat sat on a mat: 1-grams 5/6, 2-grams 3/5, 3-grams 2/4, 4-grams 1/3; same length, no brevity penalty
    assert bleu(REF, "the cat sat on a mat") == pytest.approx(100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)
    assert bleu(REF, REF) == pytest.approx(100.0)


def test_bleu_smooths_missing_ngrams_exponentially_and_penalizes_brevity():
    # the cat ran on: 1-grams 3/4, 2-grams 1/3, then no 3- or 4-gram match: 1/(2*2) and 1/(4*1);
    # 4 words against 6: brevity penalty exp(1 - 6/4)
    expected = 100 * math.exp(1 - 6 / 4) * (3 / 4 * 1 / 3 * 1 / 4 * 1 / 4) ** 0.25
    assert bleu(REF, "the cat ran on") == pytest.approx(expected)


def test_rouge_f_measures_of_unigrams_bigrams_and_the_longest_common_subsequence():
    r = rouge(REF, "the cat sat on a mat")
    assert r["rouge1"] == pytest.approx(100 * 5 / 6)  # 5 shared words of 6 each side
    assert r["rouge2"] == pytest.approx(100 * 3 / 5)  # 3 shared bigrams of 5
    assert r["rougeL"] == pytest.approx(100 * 5 / 6)  # the cat sat on ... mat
    # precision 1 (both words are in the reference), recall 2/6: F = 2PR/(P+R) = 0.5
    assert rouge(REF, "cat mat")["rouge1"] == pytest.approx(50.0)


def test_rouge_l_sum_splits_sentences_at_spaced_periods():
    # Sentence by sentence, every word of each reference sentence is matched in order: 100.
    # As one sequence the longest common subsequence is "sat on mat": 3/5 each way, 60.
    assert rouge("the cat . sat on mat", "sat on mat . the cat")["rougeL"] == pytest.approx(100.0)
    assert rouge("the cat sat on mat", "sat on mat the cat")["rougeL"] == pytest.approx(60.0)


def test_reference_scores_take_the_best_true_and_compare_it_with_the_best_false():
    s = reference_scores("the cat sat on a mat", ["a dog barked", REF], ["the cat sat on the hat"])
    best_true, best_false = bleu(REF, "the cat sat on a mat"), bleu("the cat sat on the hat", "the cat sat on a mat")
    assert s["bleu_max"] == pytest.approx(best_true)
    assert s["bleu_diff"] == pytest.approx(best_true - best_false)
    assert s["bleu_acc"] == float(best_true > best_false)
    assert s["rouge1_max"] == pytest.approx(100 * 5 / 6) and s["rouge1_acc"] == 1.0  # 5/6 against 4/6
    assert set(reference_scores("x", ["y"])) == {"bleu_max", "rouge1_max", "rouge2_max", "rougeL_max"}
    with pytest.raises(ValueError, match="at least one reference"):
        reference_scores("x", [])
