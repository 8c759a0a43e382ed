import pytest

from tasks.curation.config import QualityRules
from tasks.curation.quality import quality_reason

RULES = QualityRules(min_words=5, max_words=50)
GOOD = "The quick brown fox jumps over the lazy dog near the river bank."


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("too short text", "too_few_words"),
    (" ".join(["word"] * 51), "too_many_words"),
    ("a b c d e f g h", "mean_word_length"),
    ("supercalifragilistic " * 6, "mean_word_length"),
    ("# heading # more # tags # here # now", "symbol_ratio"),
    ("123 456 789 012 345 678 910 and", "few_alpha_words"),
    ("same line here ok\n" * 4 + "other line is different", "repeated_lines"),
])
def test_each_rule_names_its_reason(text, reason):
    assert quality_reason(text, RULES) == reason


def test_good_text_passes():
    assert quality_reason(GOOD, RULES) is None


def test_thresholds_are_configurable():
    assert quality_reason("too short text", QualityRules(min_words=3)) is None


def test_inconsistent_thresholds_rejected():
    with pytest.raises(ValueError, match="min_words"):
        QualityRules(min_words=10, max_words=5)
