import numpy as np

from tasks.curation.dedup import band_edges, decide_exact
from tasks.curation.keyed_files import (
    EXACT_BAND,
    KEY_DTYPE,
    KeyFiles,
    SortedFiles,
    doc_id,
    key_range,
    write_keys,
    write_sorted,
)


def _keys_file(path, recs):
    """recs: (band, key, aux, doc) rows."""
    write_keys(np.array(recs, dtype=KEY_DTYPE), path)
    return path


def test_first_occurrence_is_kept_and_reasons_distinguish_exact_from_near_exact(tmp_path):
    # (near-exact key, exact key, doc): docs 0:1 and 1:0 are exact copies of 0:0; 1:1 differs
    # only in punctuation (same near-exact key, other exact key); 1:2 is unique.
    x = EXACT_BAND
    a = _keys_file(tmp_path / "a.npy", [(x, 5, 50, doc_id(0, 0)), (x, 9, 90, doc_id(0, 1)), (0, 5, 5, doc_id(0, 0))])
    b = _keys_file(
        tmp_path / "b.npy",
        [(x, 5, 50, doc_id(1, 0)), (x, 5, 51, doc_id(1, 1)), (x, 7, 70, doc_id(1, 2)), (x, 9, 90, doc_id(0, 2))],
    )
    stats = decide_exact(KeyFiles([a, b]), 0, 1, tmp_path / "drops.npy")
    drops = {int(r["doc"]): (int(r["kept"]), int(r["reason"])) for r in np.load(tmp_path / "drops.npy")}
    assert drops == {doc_id(1, 0): (doc_id(0, 0), 0), doc_id(1, 1): (doc_id(0, 0), 1), doc_id(0, 2): (doc_id(0, 1), 0)}
    assert stats == {"records": 6, "exact": 2, "near_exact": 1}  # the band record is not an exact one


def test_partitions_split_the_key_space_without_losing_records(tmp_path):
    rng = np.random.default_rng(0)
    recs = np.empty(1000, dtype=[("key", "<u8"), ("doc", "<u8")])
    recs["key"] = rng.integers(0, 2**64, size=1000, dtype=np.uint64)
    recs["doc"] = np.arange(1000, dtype=np.uint64)
    write_sorted(recs, "key", tmp_path / "k.npy")
    files = SortedFiles([tmp_path / "k.npy"], "key")
    got = np.concatenate([files.read(*key_range(p, 7))[0] for p in range(7)])
    assert files.files_opened == 1
    assert sorted(got["doc"].tolist()) == list(range(1000))


def test_key_files_read_each_band_and_range_apart_and_open_each_file_once(tmp_path):
    rng = np.random.default_rng(1)
    recs = np.empty(3000, dtype=KEY_DTYPE)
    recs["band"] = rng.choice([0, 1, 2, EXACT_BAND], size=3000)
    recs["key"] = rng.integers(0, 2**64, size=3000, dtype=np.uint64)
    recs["aux"], recs["doc"] = 0, np.arange(3000, dtype=np.uint64)
    files = KeyFiles([_keys_file(tmp_path / "s0.npy", recs[:1500]), _keys_file(tmp_path / "s1.npy", recs[1500:])])
    for band in (0, 1, 2, EXACT_BAND):
        got = np.concatenate([files.read_band(band, *key_range(p, 5)) for p in range(5)])
        want = recs[recs["band"] == band]
        assert sorted(got["doc"].tolist()) == sorted(want["doc"].tolist())
        assert (got["band"] == band).all()
    assert files.files_opened == 2


def _band_file(tmp_path, rows):
    """rows: (bucket, near-exact key, doc) of band 0."""
    return KeyFiles([_keys_file(tmp_path / "band.npy", [(0, k, near, d) for k, near, d in rows])])


def test_band_edges_join_each_bucket_to_its_smallest_document(tmp_path):
    keys = _band_file(tmp_path, [(1, 11, doc_id(2, 0)), (1, 12, doc_id(0, 3)), (1, 13, doc_id(1, 1)), (4, 14, 0)])
    edges = band_edges(keys, 0, 0, 1, exact_removes_copies=True)
    assert sorted(zip(edges.to_verify["src"].tolist(), edges.to_verify["dst"].tolist())) == [
        (doc_id(0, 3), doc_id(1, 1)),
        (doc_id(0, 3), doc_id(2, 0)),
    ]
    assert len(edges.identical) == 0 and edges.skipped == 0


def test_copies_of_a_text_are_never_verified(tmp_path):
    # Bucket 1 holds text 11 three times (docs 0:5, 1:0, 2:2) and text 12 twice (0:7, 3:1).
    rows = [(1, 11, doc_id(0, 5)), (1, 11, doc_id(1, 0)), (1, 11, doc_id(2, 2))]
    rows += [(1, 12, doc_id(0, 7)), (1, 12, doc_id(3, 1))]
    keys = _band_file(tmp_path, rows)
    removed = band_edges(keys, 0, 0, 1, exact_removes_copies=True)
    # Only the first of each text meets the bucket's centre: one pair to verify.
    assert removed.to_verify.tolist() == [(doc_id(0, 5), doc_id(0, 7))]
    assert len(removed.identical) == 0 and removed.skipped == 3
    # Without exact dedup the copies still join their text's first document, unverified.
    kept = band_edges(keys, 0, 0, 1, exact_removes_copies=False)
    assert kept.to_verify.tolist() == [(doc_id(0, 5), doc_id(0, 7))]
    assert sorted(kept.identical.tolist()) == [
        (doc_id(0, 5), doc_id(1, 0)),
        (doc_id(0, 5), doc_id(2, 2)),
        (doc_id(0, 7), doc_id(3, 1)),
    ]
