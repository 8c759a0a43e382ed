import hashlib
import json
import pickle
import random
import shutil

import pytest

from tasks.curation.quality_model import (
    MAX_CHARS,
    QualityClassifierConfig,
    QualityScorer,
    balanced_split,
    fasttext_line,
    train_quality_model,
)

# ------------------------------------------------------------------ generated documents
# Good and bad documents share one vocabulary, so word salad can only be told apart by word
# order (the bigrams), not by which words appear.
ADJ = [
    "quiet",
    "old",
    "small",
    "bright",
    "careful",
    "young",
    "heavy",
    "narrow",
    "warm",
    "patient",
    "ancient",
    "busy",
    "gentle",
]
NOUN = [
    "farmer",
    "river",
    "village",
    "teacher",
    "garden",
    "bridge",
    "market",
    "child",
    "engineer",
    "forest",
    "letter",
    "storm",
    "harbour",
    "doctor",
    "kitchen",
    "mountain",
    "student",
    "library",
    "road",
    "window",
]
VERB_T = ["repaired", "visited", "crossed", "watched", "painted", "carried", "followed", "described", "built", "opened"]
VERB_I = ["waited", "arrived", "smiled", "worked", "rested", "listened", "travelled", "returned"]
ADV = ["slowly", "carefully", "early", "quietly", "often", "happily", "later", "again"]
PREP = ["near", "behind", "beside", "across", "above", "beyond"]
TEMPLATES = [
    "The {a} {n} {vt} the {n} {p} the {n}.",
    "A {a} {n} {vi} {d} because the {n} was {a}.",
    "After the {n} {vi}, the {a} {n} {vt} a {n}.",
    "Every morning the {n} {vt} the {a} {n} and then {vi} {d}.",
    "When the {n} {vi} {p} the {n}, nobody {vt} the {a} {n}.",
    "She {vt} the {n} {d}, and the {n} {vi} {p} the {a} {n}.",
]


def good_doc(rng: random.Random) -> str:
    def sentence() -> str:
        s = rng.choice(TEMPLATES)
        for key, words in (
            ("{a}", ADJ),
            ("{n}", NOUN),
            ("{vt}", VERB_T),
            ("{vi}", VERB_I),
            ("{d}", ADV),
            ("{p}", PREP),
        ):
            while key in s:
                s = s.replace(key, rng.choice(words), 1)
        return s

    return "\n\n".join(" ".join(sentence() for _ in range(rng.randint(3, 6))) for _ in range(rng.randint(1, 3)))


def keyword_stuffing(rng: random.Random) -> str:
    kws = rng.sample(NOUN, 2)
    parts = [
        rng.choice(["best", "cheap", "buy", "top", "free"]) + f" {rng.choice(kws)} {rng.choice(kws)}"
        for _ in range(rng.randint(15, 40))
    ]
    return " ".join(parts) + f" {kws[0]} deals online now"


def word_salad(rng: random.Random) -> str:
    vocab = ADJ + NOUN + VERB_T + VERB_I + ADV + PREP + ["the", "a", "and", "because", "when", "the"]
    words = [rng.choice(vocab) for _ in range(rng.randint(30, 80))]
    return " ".join(w + ("." if rng.random() < 0.1 else "") for w in words)


def boilerplate(rng: random.Random) -> str:
    menu = [
        "Home",
        "About us",
        "Contact",
        "Login",
        "Sign up",
        "Cart (0)",
        "Privacy policy",
        "Terms of use",
        *(n.capitalize() + "s" for n in rng.sample(NOUN, 4)),
    ]
    lines = [" | ".join(rng.sample(menu, rng.randint(5, len(menu)))) for _ in range(rng.randint(2, 6))]
    lines.append(f"Copyright {rng.randint(1998, 2025)} {rng.choice(NOUN).capitalize()} Ltd. All rights reserved.")
    return "\n".join(lines)


SPAM = (keyword_stuffing, word_salad, boilerplate)


def make_sets(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    return [good_doc(rng) for _ in range(n)], [SPAM[i % 3](rng) for i in range(n)]


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    good, bad = make_sets(300, seed=0)
    path = tmp_path_factory.mktemp("qm") / "quality.bin"
    metrics = train_quality_model(good, bad, path, QualityClassifierConfig())
    print("held-out metrics:", json.dumps(metrics))
    return path, metrics


# ------------------------------------------------------------------ training


def test_held_out_precision_and_recall(trained):
    path, metrics = trained
    assert metrics["precision"] > 0.9 and metrics["recall"] > 0.9
    assert metrics["n_holdout"] == {"hq": 30, "lq": 30}
    assert metrics["n_train"] == {"hq": 270, "lq": 270}
    assert metrics["model_bytes"] == path.stat().st_size
    assert json.loads(path.with_suffix(".json").read_text()) == metrics
    assert sorted(p.name for p in path.parent.iterdir()) == ["quality.bin", "quality.json"]  # no temp files


def test_unseen_good_documents_score_above_spam(trained):
    good, bad = make_sets(60, seed=1)  # another seed: none of these were trained on
    scorer = QualityScorer(trained[0])
    g, b = scorer.score_many(good), scorer.score_many(bad)
    assert ((g >= 0) & (g <= 1)).all() and ((b >= 0) & (b <= 1)).all()
    assert (g >= 0.5).mean() > 0.9 and (b < 0.5).mean() > 0.9
    for style in range(3):  # each kind of spam, not just the easy ones
        assert g.mean() > b[style::3].mean() + 0.5, SPAM[style].__name__
    assert scorer.score(good[0]) > scorer.score(keyword_stuffing(random.Random(2)))


def test_saved_model_reloads_with_same_scores(trained, tmp_path):
    good, bad = make_sets(10, seed=3)
    first = QualityScorer(trained[0]).score_many(good + bad)
    copy = tmp_path / "copy.bin"
    shutil.copy(trained[0], copy)
    assert (QualityScorer(copy).score_many(good + bad) == first).all()
    revived = pickle.loads(pickle.dumps(QualityScorer(trained[0])))  # as sent to a Ray worker, after use
    assert (revived.score_many(good + bad) == first).all()
    assert QualityScorer(copy).score(good[0]) == first[0]


def test_split_is_deterministic_balanced_and_disjoint():
    good, bad = make_sets(100, seed=4)
    cfg = QualityClassifierConfig(max_docs_per_class=80)
    split = balanced_split(good, bad + bad[:40], cfg)  # lq has duplicates: they do not count
    assert split == balanced_split(good, bad + bad[:40], cfg)
    assert split != balanced_split(good, bad, cfg.model_copy(update={"seed": 1}))
    for label in ("hq", "lq"):
        train, hold = split["train"][label], split["holdout"][label]
        assert (len(train), len(hold)) == (72, 8)
        assert not set(train) & set(hold) and len(set(train)) == len(train)


def test_training_is_deterministic(trained, tmp_path):
    good, bad = make_sets(300, seed=0)
    path = tmp_path / "again.bin"
    metrics = train_quality_model(good, bad, path, QualityClassifierConfig())
    assert sha(path) == sha(trained[0])
    assert metrics == trained[1]


@pytest.mark.parametrize(
    "n_hq, n_lq, message",
    [
        (0, 50, r"high-quality \(hq\) set has 0 usable documents \(0 given"),
        (50, 5, r"low-quality \(lq\) set has 5 usable documents \(5 given"),
    ],
)
def test_too_few_documents_named(tmp_path, n_hq, n_lq, message):
    good, bad = make_sets(50, seed=5)
    with pytest.raises(ValueError, match=message):
        train_quality_model(good[:n_hq], bad[:n_lq], tmp_path / "m.bin", QualityClassifierConfig())
    assert not (tmp_path / "m.bin").exists()


def test_empty_and_duplicate_documents_do_not_count(tmp_path):
    good, _ = make_sets(50, seed=6)
    with pytest.raises(ValueError, match=r"low-quality \(lq\) set has 1 usable documents \(40 given"):
        train_quality_model(good, ["spam spam"] * 30 + ["", " \n "] * 5, tmp_path / "m.bin", QualityClassifierConfig())


# ------------------------------------------------------------------ loading


def test_scorer_is_lazy_and_names_a_missing_model(tmp_path):
    scorer = QualityScorer(tmp_path / "nope.bin")  # no error until first use
    with pytest.raises(FileNotFoundError, match=r"nope\.bin not found"):
        scorer.score("text")
    with pytest.raises(FileNotFoundError, match="not found"):
        QualityScorer(tmp_path).score("text")  # a folder is not a model


def test_corrupt_or_truncated_model_named(tmp_path, trained):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"garbage\.bin is not a fastText model"):
        QualityScorer(garbage).score("text")
    # fastText itself loads a truncated file silently and then scores everything 0.5.
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(trained[0].read_bytes()[:-1000])
    with pytest.raises(ValueError, match=r"truncated\.bin is truncated or corrupt"):
        QualityScorer(truncated).score("text")


CUT_SCORER = """
import sys
from tasks.curation.quality_model import QualityScorer
try:
    QualityScorer(sys.argv[1]).score("text")
except ValueError as exc:
    print(exc)
"""


def test_a_model_cut_inside_its_dictionary_is_named_not_loaded_forever(tmp_path, trained):
    import struct
    import subprocess
    import sys

    data = trained[0].read_bytes()
    entries = struct.unpack_from("<i", data, 64)[0]
    assert entries > 10
    end = 64 + 28  # the dictionary's end: each entry is a NUL-ended word, an int64 and an int8
    for _ in range(entries):
        end = data.index(b"\0", end) + 10
    # Within the dictionary: its middle, and one byte short of its end.
    for cut in ((64 + 28 + end) // 2, end - 1):
        short = tmp_path / f"cut{cut}.bin"
        short.write_bytes(data[:cut])
        # In a child with a time limit: fastText itself never returns on such a file.
        done = subprocess.run(
            [sys.executable, "-c", CUT_SCORER, str(short)], capture_output=True, text=True, timeout=60
        )
        assert f"cut{cut}.bin is not a whole fastText model" in done.stdout, done.stderr[-2000:]
        assert "dictionary" in done.stdout and "crucible quality-model" in done.stdout
    header = tmp_path / "header.bin"
    header.write_bytes(data[:40])
    with pytest.raises(ValueError, match="cut inside its header"):
        QualityScorer(header).score("text")


def test_model_without_hq_label_rejected(tmp_path, trained):
    other = tmp_path / "other.bin"  # a same-sized model whose labels are a and b, as some public ones
    other.write_bytes(trained[0].read_bytes().replace(b"__label__hq", b"__label__aa"))
    with pytest.raises(ValueError, match=r"other.bin has labels .*not __label__hq"):
        QualityScorer(other).score("the farmer")


def test_loading_and_scoring_print_nothing(trained, capfd):
    QualityScorer(trained[0]).score("the farmer crossed the river")
    assert capfd.readouterr() == ("", "")


# ------------------------------------------------------------------ preprocessing


def test_preprocessing_is_one_bounded_line():
    line = fasttext_line("Hello\n\nWORLD\t\x00 __label__hq " + "x" * 50_000)
    assert line.startswith("hello world hq ") and "\n" not in line and "__label__" not in line
    assert len(line) <= MAX_CHARS
    assert fasttext_line(line) == line  # idempotent: held-out lines are scored as preprocessed


def test_empty_document_scores_zero(trained):
    assert list(QualityScorer(trained[0]).score_many(["", " \n\t", "the farmer"])[:2]) == [0.0, 0.0]
