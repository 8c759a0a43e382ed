"""The batched MinHash path of DedupKeys writes the same files, byte for byte, as computing
each document's shingle set, signature and band keys on its own (the reference)."""

import random

import numpy as np
import pytest

import tasks.curation.minhash as minhash
from tasks.curation.config import CurationConfig
from tasks.curation.filter_pass import DedupKeys
from tasks.curation.keyed_files import doc_id
from tasks.curation.output_files import CurationPaths


class _PerDocument(DedupKeys):
    """The reference: MinHasher.shingle_hashes, signature_of and band_keys one document at a time."""

    def _flush(self) -> None:
        for words in self._pending:
            sh = self.hasher.shingle_hashes(words)
            self.shingle_sets.append(sh)
            self.bands.append(self.hasher.band_keys(self.hasher.signature_of(sh))[None, :])
        self._pending = []


def _corpus(count: int = 300) -> list[str]:
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(400)] + ["Über", "naïve", "東京", "данные", "😀x", "ÆSIR", "ǅemal", "İstanbul"]
    fixed = ["", "   ", "!!! ... ???", "one", "two words", "three small words", "a b c d", "a b c d e"]
    fixed += ["a b c d e f", "same same same same same same same", "Привет, мир! Как дела?", "日本語の文章です。"]
    fixed += [" ".join(rng.choice(vocab) for _ in range(20_000))]  # more shingles than a signature chunk
    docs = list(fixed)
    while len(docs) < count:
        n = rng.choice([0, 1, 2, 3, 4, 5, 6, 9, 40, 300, 1500])
        words = [rng.choice(vocab[:30] if rng.random() < 0.3 else vocab) for _ in range(n)]
        seps = [rng.choice([" ", "  ", ", ", ".\n", " - "]) for _ in range(n)]
        docs.append("".join(w + s for w, s in zip(words, seps)))
        if rng.random() < 0.1:
            docs.append(docs[rng.randrange(len(docs))].upper())  # a near-exact copy
    return docs


def _written(keys: DedupKeys, texts: list[str], root) -> dict[str, bytes]:
    for i, text in enumerate(texts):
        keys.add(doc_id(3, i), text, f"id-{i}")
    curated = root / "curated"
    curated.mkdir(parents=True)
    keys.write(CurationPaths(curated), 3)
    files = sorted(p for p in curated.rglob("*") if p.is_file())
    return {str(p.relative_to(curated)): p.read_bytes() for p in files}


def _config(shingle_size: int = 5, minhash_on: bool = True, near_exact: bool = True) -> CurationConfig:
    return CurationConfig.model_validate(
        {
            "minhash": {"enabled": minhash_on, "shingle_size": shingle_size},
            "exact_dedup": {"near_exact": near_exact},
        }
    )


@pytest.mark.parametrize(
    ("cfg", "batch"),
    [
        (_config(), 512),  # one batch larger than the corpus: flushed by write()
        (_config(), 7),  # 7 does not divide the corpus size: a short last batch
        (_config(), 1),
        (_config(shingle_size=1), 64),
        (_config(shingle_size=3, near_exact=False), 50),
        (_config(shingle_size=10), 33),
        (_config(minhash_on=False), 16),
    ],
)
def test_batched_keys_equal_the_per_document_reference(tmp_path, cfg, batch):
    texts = _corpus()
    assert len(texts) % 7 != 0
    want = _written(_PerDocument(cfg, batch=5), texts, tmp_path / "ref")
    got = _written(DedupKeys(cfg, batch=batch), texts, tmp_path / "batched")
    assert set(got) == set(want) and len(want) == (5 if cfg.minhash.enabled else 3)
    for name in want:
        assert got[name] == want[name], name


def test_signature_chunks_that_cut_documents_give_the_same_keys(tmp_path, monkeypatch):
    """Chunk boundaries inside a document (and many documents in one chunk) change nothing."""
    texts = _corpus(120)
    want = _written(_PerDocument(_config(), batch=5), texts, tmp_path / "ref")
    monkeypatch.setattr(minhash, "_SIGNATURE_CHUNK", 37)
    assert _written(DedupKeys(_config(), batch=40), texts, tmp_path / "batched") == want


def test_batch_of_empty_and_short_documents_only():
    hasher = minhash.MinHasher()
    docs = [[], ["a"], [], ["a", "b"], ["a", "b", "c", "d"], []]
    flat, offsets = hasher.shingle_hashes_batch(docs)
    each = [hasher.shingle_hashes(w) for w in docs]
    assert offsets.tolist() == [0, *np.cumsum([len(s) for s in each]).tolist()]
    assert np.array_equal(flat, np.concatenate(each)) and flat.dtype == np.uint64
    sigs = hasher.signatures_of(flat, offsets)
    assert np.array_equal(sigs, np.stack([hasher.signature_of(s) for s in each]))
    assert np.array_equal(hasher.band_keys_batch(sigs), np.stack([hasher.band_keys(s) for s in sigs]))
