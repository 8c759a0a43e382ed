"""Per-item metrics, standard errors and random chance against hand-computed values."""

from __future__ import annotations

import math

import pytest

from tasks.evaluation.benchmarks import Doc
from tasks.evaluation.metrics import aggregate, item_metrics, mean_stderr, pooled_stderr, random_chance, subject_summary

ACC = ("acc", "acc_norm")


def doc(choices, gold=0, labels=None) -> Doc:
    return Doc(query="q", choices=choices, gold=gold, stem="q", labels=labels)


def test_acc_norm_divides_by_characters_without_the_leading_space():
    # Raw: choice 0 wins (-1.0 > -2.5). Per character: -1.0 against -2.5/3 = -0.83, choice 1 wins.
    # Counting the leading space it would be -0.5 against -0.625: choice 0.
    assert item_metrics(doc(["a", "abc"], gold=1), [-1.0, -2.5], ACC) == {"acc": 0.0, "acc_norm": 1.0}
    # Characters, not UTF-8 bytes: per character -1.1 against -1.0; per byte -0.55 against -1.0.
    assert item_metrics(doc(["ééé", "ab"], gold=1), [-3.3, -2.0], ACC)["acc_norm"] == 1.0


def test_ties_go_to_the_first_choice():
    assert item_metrics(doc(["x", "y"], gold=0), [-1.0, -1.0], ACC) == {"acc": 1.0, "acc_norm": 1.0}
    assert item_metrics(doc(["x", "y"], gold=1), [-1.0, -1.0], ACC) == {"acc": 0.0, "acc_norm": 0.0}


def test_mc1_is_acc_on_the_first_choice_under_its_own_name():
    assert item_metrics(doc(["t", "f", "f"]), [-2.0, -1.0, -3.0], ("mc1",)) == {"mc1": 0.0}
    assert item_metrics(doc(["t", "f"]), [-1.0, -2.0], ("mc1",)) == {"mc1": 1.0}


def test_mc2_is_the_true_choices_share_of_probability():
    d = doc(["a", "b", "c"], labels=[1, 0, 1])
    lls = [math.log(0.5), math.log(0.3), math.log(0.2)]
    assert item_metrics(d, lls, ("mc2",))["mc2"] == pytest.approx(0.7)
    # Normalised over all choices: scaling every probability changes nothing.
    assert item_metrics(d, [x - 50.0 for x in lls], ("mc2",))["mc2"] == pytest.approx(0.7)


def test_mean_stderr_uses_the_sample_variance():
    # mean 0.5, sum of squared deviations 1.0, sample variance 1/3, stderr sqrt(1/3)/2.
    assert mean_stderr([1.0, 0.0, 0.0, 1.0]) == pytest.approx(math.sqrt(1 / 3) / 2)
    assert math.isnan(mean_stderr([1.0]))


def test_aggregate_over_items_of_two_hellaswag_like_questions():
    # Item 1: raw argmax is the 2-character ending 0; per character the 25-character gold
    # ending 3 wins (-5/2 = -2.5 against -10/25 = -0.4). Item 2: gold 0 wins both ways.
    short = doc(["ab", "abcdefghij klmnop", "x y", "a much longer ending here"], gold=3)
    per_item = [
        item_metrics(short, [-5.0, -30.0, -30.0, -10.0], ACC),
        item_metrics(doc(["a", "b", "c", "d"]), [-1.0, -9.0, -9.0, -9.0], ACC),
    ]
    out = aggregate(per_item)
    assert out["n"] == 2 and out["acc"] == 0.5 and out["acc_norm"] == 1.0
    assert out["acc_stderr"] == pytest.approx(0.5)  # sample std 0.7071 / sqrt(2)
    assert out["acc_norm_stderr"] == 0.0


def test_pooled_stderr_against_the_harness_formula():
    sizes, errs = [3, 5], [0.2, 0.1]
    by_hand = math.sqrt(((2 * 0.04 * 3) + (4 * 0.01 * 5)) / (8 - 2) / 8)
    assert pooled_stderr(sizes, errs) == pytest.approx(by_hand)
    # lm-eval's figure for two subjects of 20 items at acc 0.25 and 0.20 (FINDINGS section 3).
    se = [math.sqrt(a * (1 - a) * 20 / 19) / math.sqrt(20) for a in (0.25, 0.20)]
    assert pooled_stderr([20, 20], se) == pytest.approx(0.06762, abs=5e-5)


def test_subject_summary_weights_by_size_and_also_gives_the_plain_mean():
    by_subject = {
        "a": aggregate([{"acc": 1.0}, {"acc": 1.0}]),
        "b": aggregate([{"acc": 0.0}, {"acc": 0.0}, {"acc": 0.0}, {"acc": 1.0}]),
    }
    out = subject_summary(by_subject, "acc")
    assert out["acc"] == pytest.approx(0.5)  # 3 right of 6
    assert out["acc_subject_mean"] == pytest.approx(0.625)  # (1.0 + 0.25) / 2
    # stderrs 0 and 0.25: pooled sqrt((1*0*2 + 3*0.0625*4) / (6-2) / 6); plain sqrt(0 + 0.0625) / 2.
    assert out["acc_stderr"] == pytest.approx(math.sqrt(0.75 / 4 / 6))
    assert out["acc_subject_mean_stderr"] == pytest.approx(0.125)
    one = subject_summary({"a": aggregate([{"acc": 1.0}]), "b": by_subject["b"]}, "acc")
    assert one["acc"] == pytest.approx(0.4) and math.isnan(one["acc_stderr"])


def test_random_chance_is_one_over_k_and_the_true_share_for_mc2():
    docs = [doc(["a", "b", "c", "d"], labels=[1, 1, 0, 0]), doc(["a", "b", "c"], labels=[1, 0, 0])]
    assert random_chance(docs, "acc") == pytest.approx((1 / 4 + 1 / 3) / 2)
    assert random_chance(docs, "mc2") == pytest.approx((2 / 4 + 1 / 3) / 2)
    assert math.isnan(random_chance([], "acc"))
