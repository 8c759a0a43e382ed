import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from tasks.curation.config import CurationConfig, QualityRules
from tasks.curation.shard import (ShardPaths, combine_steps, filter_shard, finalize_shard,
                                  find_exact_duplicates)
from tasks.curation.stats import StageStats

CFG = CurationConfig(quality=QualityRules(min_words=5))
TEXT = "A perfectly ordinary sentence about rivers, mountains and the people living there."


def _write(path, records, extra_lines=()):
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def _curate(tmp_path, files):
    out = tmp_path / "curated"
    first = [filter_shard(f, i, CFG, out) for i, f in enumerate(files)]
    drops = find_exact_duplicates([r["hashes"] for r in first])
    second = [finalize_shard(i, d, CFG, out) for i, d in enumerate(drops)]
    return out, combine_steps({"filter": StageStats.total(r["stats"] for r in first),
                               "exact_dedup": StageStats.total(r["stats"] for r in second)})



def test_every_document_is_kept_or_removed_with_a_reason(tmp_path):
    a = _write(tmp_path / "a.jsonl", [
        {"id": "1", "text": TEXT + " Mail me at bob@example.com."},
        {"id": "2", "text": "short"},
    ], extra_lines=['{"id": "3", "text": broken'])
    b = _write(tmp_path / "b.jsonl", [
        {"id": "4", "text": "  " + TEXT.upper() + " MAIL ME AT BOB@EXAMPLE.COM.  "},  # duplicate of 1
        {"id": "5", "text": TEXT + " From 10.1.2.3 too."},
    ])
    out, stats = _curate(tmp_path, [a, b])
    assert stats.docs_in == 5 and stats.docs_kept == 2
    assert dict(stats.removed_docs) == {"too_few_words": 1, "malformed": 1, "exact_duplicate": 1}
    assert stats.bytes_in == stats.bytes_kept + sum(stats.removed_bytes.values())
    assert dict(stats.redactions) == {"email": 1, "ipv4": 1}

    kept = [r for i in range(2) for r in pq.read_table(ShardPaths.for_shard(out, i).curated).to_pylist()]
    assert [r["id"] for r in kept] == ["1", "5"]
    assert "<EMAIL>" in kept[0]["text"] and "bob@example.com" not in kept[0]["text"]
    removed = [r for f in sorted((out / "removed").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert sorted(r["reason"] for r in removed) == ["exact_duplicate", "malformed", "too_few_words"]
    malformed = next(r for r in removed if r["reason"] == "malformed")
    assert malformed["line"] == 3 and malformed["file"].endswith("a.jsonl")
    # Removed documents are redacted too: no raw address in any artifact.
    assert not any("@example.com" in (r["text"] or "").lower() for r in removed)
    assert not any((out / "_work").iterdir())  # scratch files are removed


def test_duplicates_keep_the_first_occurrence_in_shard_order():
    drops = find_exact_duplicates([np.array([1, 2, 1], dtype=np.uint64), np.array([2, 3], dtype=np.uint64)])
    assert drops == [[2], [0]]


def test_chained_steps_must_hand_over_every_document():
    a = StageStats(docs_in=3, docs_kept=2)
    a.remove("x", 0)
    b = StageStats(docs_in=1, docs_kept=1)
    with pytest.raises(RuntimeError, match="received 1 documents but 'filter' kept 2"):
        combine_steps({"filter": a, "exact_dedup": b})


def test_unbalanced_stats_are_caught():
    s = StageStats(docs_in=2, docs_kept=1)
    with pytest.raises(RuntimeError, match="accounting mismatch"):
        s.check_balanced("test")
