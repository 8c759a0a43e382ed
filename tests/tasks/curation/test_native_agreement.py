"""The faster per-document code agrees with what it replaced, on the fixture corpus and on
generated text that stresses it: the same filter decisions, the same redacted text, and the
same exact / near-exact / MinHash duplicate groups.

The replaced code is kept here, short, as the reference: blake2b word and document hashes
(now XXH3, so hash values differ and the groups, not the values, are compared), the Gopher
n-gram rules with one full sort per n, the word, line and paragraph splits written as Python
loops, the regex word split of MinHash, and redaction that scans every type whenever a digit
is present.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tasks.curation import redact as redact_module
from tasks.curation.config import CurationConfig
from tasks.curation.minhash import MinHasher, stable_hash64
from tasks.curation.normalize import dedup_key, normalize_text
from tasks.curation.pii_samples import NEGATIVE_GENERATORS, PII_GENERATORS
from tasks.curation.redact import RedactionConfig, _TriggerIndex, redact
from tasks.curation.rules import HeuristicsConfig, apply_heuristics, gopher
from tasks.curation.rules import text as rules_text
from tasks.curation.rules.gopher import GopherRepetitionConfig, _covered_chars, _ngram_failure
from tasks.curation.shingles import normalized_words
from tasks.curation.similarity import jaccard_sorted

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "corpus"


def _fixture_texts() -> list[str]:
    texts = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                texts.append(json.loads(line)["text"])
            except json.JSONDecodeError:
                continue  # the corpus's planted broken line
    return texts


# --- the reference: the code as it was ------------------------------------------------------


def _blake64(data: str) -> int:
    return int.from_bytes(hashlib.blake2b(data.encode("utf-8"), digest_size=8).digest(), "little")


class _BlakeMinHasher(MinHasher):
    """MinHash with blake2b word hashes and the shift taken before the minimum."""

    def _word_hashes(self, words: list[str]) -> np.ndarray:
        return np.fromiter(map(_blake64, words), dtype=np.uint64, count=len(words))

    def signature_of(self, sh: np.ndarray) -> np.ndarray:
        if len(sh) == 0:
            return np.full(self.bands * self.rows, np.iinfo(np.uint32).max, dtype=np.uint32)
        hashed = (sh[:, None] * self._a[None, :] + self._b[None, :]) >> np.uint64(32)
        return hashed.min(axis=0).astype(np.uint32)


_WORD = re.compile(r"\w+")


def _old_words(text: str) -> list[str]:
    return [w for w in (t.strip(rules_text.PUNCTUATION) for t in text.split()) if w]


def _old_ngram_failure(words: list[str], cfg: GopherRepetitionConfig) -> tuple[str, str] | None:
    top, dup = cfg.top_ngram_max_char_fraction, cfg.dup_ngram_max_char_fraction
    count = len(words)
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.int64, count=count)
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=count)
    total = int(lengths.sum())
    grams = np.zeros(count, dtype=np.int64)
    for n in range(1, min(max([*top, *dup]), count) + 1):
        keys = grams[: count - n + 1] * len(vocab) + ids[n - 1 :]
        _, first, grams, freq = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
        if n in top:
            best = int(freq.argmax())
            if freq[best] > 1:
                frac = _covered_chars(np.flatnonzero(grams == best), n, lengths) / total
                if frac > top[n]:
                    return (
                        f"gopher_repetition.top_{n}_gram",
                        f"most frequent {n}-gram covers {frac:.3f} of characters > {top[n]:g}",
                    )
        if n in dup:
            repeated = np.ones(len(keys), dtype=bool)
            repeated[first] = False
            frac = _covered_chars(np.flatnonzero(repeated), n, lengths) / total
            if frac > dup[n]:
                return (
                    f"gopher_repetition.dup_{n}_gram",
                    f"repeated {n}-grams cover {frac:.3f} of characters > {dup[n]:g}",
                )
    return None


def _old_scanned_types(text: str, cfg: RedactionConfig) -> list[str]:
    has_digit = redact_module._ANY_DIGIT.search(text) is not None
    return [t for t in cfg.types if has_digit or t not in redact_module._NEEDS_DIGIT]


# --- generated text ---------------------------------------------------------------------------


def _repetitive(rng: random.Random, vocab: int, n: int) -> list[str]:
    """Words from a small vocabulary with copied runs: many ties and repeated n-grams."""
    out: list[str] = []
    while len(out) < n:
        if out and rng.random() < 0.3:
            start = rng.randrange(len(out))
            out += out[start : start + rng.randint(2, 14)]
        else:
            out.append(f"w{rng.randrange(vocab)}" * rng.randint(1, 3))
    return out[:n]


def _near_copies(texts: list[str], rng: random.Random) -> list[str]:
    """Copies of some texts with a few words replaced (near duplicates), many replaced (not),
    or only case and punctuation changed (near-exact)."""
    out = []
    for i, text in enumerate(texts[20:80]):
        words = text.split()
        if i % 3 == 2:
            out.append(text.upper().replace(" , ", ", ").replace(" . ", ". "))
            continue
        edits = 3 if i % 3 == 0 else len(words) // 2
        for _ in range(edits):
            words[rng.randrange(len(words))] = f"edit{rng.randrange(10**6)}"
        out.append(" ".join(words))
    return out


# --- dedup ----------------------------------------------------------------------------------


def _partition(keys: list[int]) -> set[frozenset[int]]:
    by_key: dict[int, set[int]] = defaultdict(set)
    for doc, key in enumerate(keys):
        by_key[key].add(doc)
    return {frozenset(g) for g in by_key.values() if len(g) > 1}


def _minhash_groups(hasher: MinHasher, texts: list[str], threshold: float) -> set[frozenset[int]]:
    """Components of the pairs that share a band and whose shingle sets reach `threshold`."""
    sets = [hasher.shingle_hashes(normalized_words(t)) for t in texts]
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for doc, sh in enumerate(sets):
        for band, key in enumerate(hasher.band_keys(hasher.signature_of(sh)).tolist()):
            buckets[(band, key)].append(doc)
    parent = list(range(len(texts)))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for docs in buckets.values():
        for other in docs[1:]:
            if jaccard_sorted(sets[docs[0]], sets[other]) >= threshold:
                parent[root(other)] = root(docs[0])
    groups: dict[int, set[int]] = defaultdict(set)
    for doc in range(len(texts)):
        groups[root(doc)].add(doc)
    return {frozenset(g) for g in groups.values() if len(g) > 1}


@pytest.fixture(scope="module")
def dedup_texts() -> list[str]:
    texts = _fixture_texts()
    return texts + _near_copies(texts, random.Random(3))


def test_exact_and_near_exact_groups_are_those_of_blake2b(dedup_texts):
    exact = [dedup_key(t) for t in dedup_texts]
    near = [" ".join(normalized_words(t)) for t in dedup_texts]
    assert _partition([stable_hash64(k) for k in exact]) == _partition([_blake64(k) for k in exact])
    assert _partition([stable_hash64(k) for k in near]) == _partition([_blake64(k) for k in near])
    assert len(_partition([stable_hash64(k) for k in exact])) >= 5  # the corpus's planted dup-0..4
    assert len(_partition([stable_hash64(k) for k in near])) >= 25  # ... and the case/punctuation copies


def test_minhash_groups_are_those_of_blake2b(dedup_texts):
    m = CurationConfig().minhash
    new = MinHasher(m.shingle_size, m.bands, m.rows, m.seed)
    old = _BlakeMinHasher(m.shingle_size, m.bands, m.rows, m.seed)
    groups = _minhash_groups(new, dedup_texts, m.min_similarity)
    assert groups == _minhash_groups(old, dedup_texts, m.min_similarity)
    assert len(groups) >= 30  # the exact, near-exact and lightly edited copies, not the heavily edited


def test_shingle_similarity_is_that_of_blake2b(dedup_texts):
    new, old = MinHasher(), _BlakeMinHasher()
    pairs = [(i, len(dedup_texts) - 60 + (i - 20)) for i in range(20, 80)]  # each text and its copy
    for a, b in pairs:
        wa, wb = normalized_words(dedup_texts[a]), normalized_words(dedup_texts[b])
        assert jaccard_sorted(new.shingle_hashes(wa), new.shingle_hashes(wb)) == jaccard_sorted(
            old.shingle_hashes(wa), old.shingle_hashes(wb)
        )


def test_signature_of_is_unchanged_for_the_same_shingles():
    rng = np.random.default_rng(0)
    new, old = MinHasher(seed=5), _BlakeMinHasher(seed=5)
    for size in (0, 1, 7, 500):
        sh = rng.integers(0, 2**64, size=size, dtype=np.uint64)
        assert (new.signature_of(sh) == old.signature_of(sh)).all()


def test_normalized_words_match_the_regex_on_any_text():
    rng = random.Random(0)
    pieces = [*string.printable, "é", "ß", "İ", "K", "٣", "½", "漢字", "—", "’", "🙂", "_"]
    texts = _fixture_texts() + ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    for text in texts:
        assert normalized_words(text) == _WORD.findall(text.lower()), text


# --- filter decisions -----------------------------------------------------------------------


def _old_lines(text: str) -> list[str]:
    return [s for s in (line.strip() for line in text.splitlines()) if s]


def _old_paragraphs(text: str) -> list[str]:
    return [s for s in (p.strip() for p in rules_text._PARAGRAPH_BREAK.split(text)) if s]


def test_rule_splits_match_the_old_ones():
    rng = random.Random(1)
    pieces = [*string.printable, "“", "”", "…", "—", "é", "¿", "·", "٣", "\u2028", "\x85", "\n\n", " \n \n"]
    texts = _fixture_texts() + ["".join(rng.choice(pieces) for _ in range(40)) for _ in range(3000)]
    for text in texts:
        assert rules_text.words(text) == _old_words(text)
        assert rules_text.lines(text) == _old_lines(text)
        assert rules_text.paragraphs(text) == _old_paragraphs(text)
        words = text.split()
        assert gopher.letter_words(words) == sum(1 for w in words if w.isalpha() or re.search(r"[^\W\d_]", w))


@pytest.mark.parametrize(
    "top,dup,fires",
    [
        ({2: 0.20, 3: 0.18, 4: 0.16}, {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}, True),
        ({1: 0.5, 3: 0.3}, {1: 0.6, 4: 0.4, 12: 0.2}, True),  # 1-grams, gaps, a dup limit that grows
        ({2: 1.0, 9: 0.5}, {3: 0.9, 5: 0.05}, True),  # a top rule after the dup rules
        ({}, {6: 0.3}, True),
        ({2: 0.3}, {}, True),
        ({2: 1.0, 3: 1.0}, {5: 1.0, 7: 1.0, 10: 1.0}, False),  # nothing fails: every n is looked at
    ],
)
def test_ngram_rules_match_the_full_sort(top, dup, fires):
    cfg = GopherRepetitionConfig(top_ngram_max_char_fraction=top, dup_ngram_max_char_fraction=dup)
    rng = random.Random(2)
    cases = [_repetitive(rng, rng.choice([2, 5, 30, 400]), rng.randint(1, 300)) for _ in range(600)]
    cases += [rules_text.words(t) for t in _fixture_texts()]
    verdicts = [_ngram_failure(words, cfg) for words in cases]
    assert verdicts == [_old_ngram_failure(words, cfg) for words in cases]
    assert any(verdicts) == fires


def test_heuristic_verdicts_match_the_old_rules(monkeypatch):
    rng = random.Random(4)
    texts = _fixture_texts()
    # Repetitive pages, laid out in lines and paragraphs, so every rule has documents on both sides.
    for _ in range(300):
        words = _repetitive(rng, rng.choice([20, 200, 2000]), rng.randint(30, 600))
        lines = [" ".join(words[i : i + rng.randint(3, 15)]) for i in range(0, len(words), 10)]
        texts.append("\n\n".join("\n".join(lines[i : i + 4]) for i in range(0, len(lines), 4)))
    texts = [normalize_text(t) for t in texts]
    cfg = HeuristicsConfig()
    new = [apply_heuristics(t, cfg) for t in texts]
    monkeypatch.setattr(gopher, "_ngram_failure", _old_ngram_failure)
    monkeypatch.setattr(rules_text, "words", _old_words)
    monkeypatch.setattr(rules_text, "lines", _old_lines)
    monkeypatch.setattr(rules_text, "paragraphs", _old_paragraphs)
    old = [apply_heuristics(t, cfg) for t in texts]
    assert [(o.reason, o.detail, o.text, o.changes) for o in new] == [
        (o.reason, o.detail, o.text, o.changes) for o in old
    ]
    reasons = {o.reason for o in new}
    assert None in reasons and len(reasons) >= 4


# --- redaction ------------------------------------------------------------------------------


def _pii_texts() -> list[str]:
    rng = random.Random(5)
    generators = [*PII_GENERATORS.values(), *NEGATIVE_GENERATORS.values()]
    prose = _fixture_texts()
    texts = list(prose)
    for _ in range(1500):
        base = rng.choice(prose).split(" ")
        for _ in range(rng.randint(1, 4)):
            base.insert(rng.randrange(len(base) + 1), rng.choice(generators)(rng))
        texts.append(" ".join(base))
    # Fragments of every shape the digit finders look for, run together at random.
    pieces = [*"0123456789", "12", "415", "555", "0123", "4111", " ", "-", ".", ")", "(", "+", "/", "GB", "DE"]
    pieces += ["82", "WEST", "1234", "ssn ", "exp ", "IP ", "version ", ":", "::", "x", "a", "\n"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 60))) for _ in range(6000)]
    return texts


def test_redaction_matches_scanning_every_type(monkeypatch):
    cfg = RedactionConfig()
    texts = _pii_texts()
    new = [redact(t, cfg) for t in texts]
    monkeypatch.setattr(redact_module, "_scanned_types", _old_scanned_types)
    old = [redact(t, cfg) for t in texts]
    assert new == old
    found = {k for _, counts in new for k in counts}
    assert found >= {"email", "phone", "ipv4", "ipv6", "credit_card", "us_ssn", "iban", "secret"}


def test_trigger_index_finds_triggers_among_any_characters():
    triggers = ["AKIA", "ghp_", "://", "=", "eyJ", "bearer", "--"]
    index = _TriggerIndex(triggers)
    rng = random.Random(6)
    pieces = [*triggers, "🙂", "漢", "é", "a", "_", "-", " ", "\n", "K", "AK"]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert index.present(text) == {t for t in triggers if t in text}, text
    assert _TriggerIndex([]).present("anything") == set()
