import random

import numpy as np
import pytest

from tasks.curation.minhash import MinHasher, stable_hash64
from tasks.curation.shingles import jaccard, normalized_words, shingles


def _band_keys(hasher: MinHasher, text: str) -> np.ndarray:
    """A document's band keys, as the filter pass derives them from its words."""
    return hasher.band_keys(hasher.signature(normalized_words(text)))


def _doc(rng: random.Random, n: int = 300) -> list[str]:
    return [f"w{rng.randrange(3000)}" for _ in range(n)]


def test_signature_agreement_estimates_jaccard():
    rng = random.Random(0)
    hasher = MinHasher(bands=32, rows=8)  # 256 hash functions: standard error ~0.03
    base = _doc(rng)
    for edits in (3, 15, 40, 120):
        other = list(base)
        for _ in range(edits):
            other[rng.randrange(len(other))] = f"x{rng.randrange(10**6)}"
        true = jaccard(shingles(" ".join(base)), shingles(" ".join(other)))
        est = float((hasher.signature(base) == hasher.signature(other)).mean())
        assert abs(est - true) < 0.1, (edits, true, est)


def test_near_exact_copies_share_every_band_and_unrelated_docs_none():
    hasher = MinHasher()
    rng = random.Random(1)
    text = " ".join(_doc(rng))
    variant = text.upper().replace(" ", "  ,")  # case, punctuation and spacing only
    assert (_band_keys(hasher, text) == _band_keys(hasher, variant)).all()
    assert not (_band_keys(hasher, text) == _band_keys(hasher, " ".join(_doc(rng)))).any()


def test_keys_are_stable_across_instances_and_depend_on_the_seed():
    text = "the quick brown fox jumps over the lazy dog again and again"
    a, b = _band_keys(MinHasher(seed=7), text), _band_keys(MinHasher(seed=7), text)
    assert (a == b).all() and a.dtype == np.uint64 and a.shape == (14,)
    assert not (a == _band_keys(MinHasher(seed=8), text)).all()
    assert stable_hash64("abc") == stable_hash64("abc") != stable_hash64("abd")


def test_short_and_empty_documents():
    hasher = MinHasher()
    assert len(hasher.shingle_hashes(normalized_words("two words"))) == 1
    assert len(hasher.shingle_hashes([])) == 0
    assert hasher.signature([]).shape == (112,)


def test_shingle_size_is_bounded():
    with pytest.raises(ValueError, match="shingle_size"):
        MinHasher(shingle_size=11)
