import numpy as np

from tasks.curation.dedup import BAND_DTYPE, EXACT_DTYPE, band_edges, decide_exact
from tasks.curation.keyed_files import doc_id, key_range, read_range, write_sorted


def _exact_file(path, recs):
    write_sorted(np.array(recs, dtype=EXACT_DTYPE), "key", path)
    return path


def test_first_occurrence_is_kept_and_reasons_distinguish_exact_from_near_exact(tmp_path):
    # (near-exact key, exact key, doc): docs 0:1 and 1:0 are exact copies of 0:0; 1:1 differs
    # only in punctuation (same near-exact key, other exact key); 1:2 is unique.
    a = _exact_file(tmp_path / "a.npy", [(5, 50, doc_id(0, 0)), (9, 90, doc_id(0, 1))])
    b = _exact_file(
        tmp_path / "b.npy", [(5, 50, doc_id(1, 0)), (5, 51, doc_id(1, 1)), (7, 70, doc_id(1, 2)), (9, 90, doc_id(0, 2))]
    )
    stats = decide_exact([a, b], 0, 1, tmp_path / "drops.npy")
    drops = {int(r["doc"]): (int(r["kept"]), int(r["reason"])) for r in np.load(tmp_path / "drops.npy")}
    assert drops == {doc_id(1, 0): (doc_id(0, 0), 0), doc_id(1, 1): (doc_id(0, 0), 1), doc_id(0, 2): (doc_id(0, 1), 0)}
    assert stats == {"records": 6, "exact": 2, "near_exact": 1}


def test_partitions_split_the_key_space_without_losing_records(tmp_path):
    rng = np.random.default_rng(0)
    recs = np.empty(1000, dtype=EXACT_DTYPE)
    recs["key"] = rng.integers(0, 2**64, size=1000, dtype=np.uint64)
    recs["exact"], recs["doc"] = recs["key"], np.arange(1000, dtype=np.uint64)
    write_sorted(recs, "key", tmp_path / "k.npy")
    got = np.concatenate([read_range(tmp_path / "k.npy", "key", *key_range(p, 7)) for p in range(7)])
    assert sorted(got["doc"].tolist()) == list(range(1000))


def test_band_edges_join_each_bucket_to_its_smallest_document(tmp_path):
    recs = np.array([(1, doc_id(2, 0)), (1, doc_id(0, 3)), (1, doc_id(1, 1)), (4, doc_id(0, 0))], dtype=BAND_DTYPE)
    write_sorted(recs, "key", tmp_path / "band.npy")
    edges = band_edges([tmp_path / "band.npy"], 0, 1)
    assert sorted(zip(edges["src"].tolist(), edges["dst"].tolist())) == [
        (doc_id(0, 3), doc_id(1, 1)),
        (doc_id(0, 3), doc_id(2, 0)),
    ]
