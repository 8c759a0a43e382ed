"""End to end: `crucible curate` (the curation stage of `crucible run`) on the bad-input corpus's
damaged files (tests/fixtures/bad_inputs/make.py: JSONL, JSON in odd encodings, cut or garbage
.gz and .zst, Parquet, WARC/WET, HTML), all in one input folder, through a real Prefect server
and real Ray. The run finishes; every bad record is counted in removed/ with its file, line and
reason; the good records around it are kept; and the totals balance."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from infra.core.storage import RunDir, read_json
from tests.fixtures.bad_inputs import make
from tests.flows.e2e_env import curate

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

GOOD_AROUND = 6  # the good records make.py puts around each bad JSONL line


def test_every_kind_of_damaged_input_ends_in_a_balanced_count(e2e, tmp_path):
    files = make.make_corpus(tmp_path / "corpus")
    runs = tmp_path / "runs"
    result = curate(e2e, runs, "bad", tmp_path / "corpus" / "curate", "--set", "curation.max_record_bytes=200000")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    run = RunDir(runs / "bad")
    total = read_json(run.curation_stats)["totals"]
    reasons = {r: v["docs"] for r, v in total["removed_by_reason"].items()}
    removed = [r for f in sorted(run.removed.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    kept = [row for f in sorted(run.curated.glob("part-*.parquet")) for row in pq.read_table(f).to_pylist()]
    # Nothing lost: what came in is kept or removed, and each is a row in its folder.
    assert total["docs_in"] == total["docs_kept"] + sum(reasons.values())
    assert len(kept) == total["docs_kept"] and len(removed) == sum(reasons.values())

    by_file = defaultdict(list)
    for r in removed:
        by_file[Path(r["file"]).name].append(r)
    for case in make.QUARANTINE:
        rows = by_file.get(files[case.kind].name, [])
        if case.outcome == "quarantine":
            named = [r for r in rows if r["reason"] == case.reason]
            assert named, f"{case.kind}: nothing counted as {case.reason}: {rows}"
            assert all(r["detail"] and r["line"] >= 0 for r in named)
        else:  # an empty file, or a page read by the fallback decoder: nothing to count as removed
            assert not rows, f"{case.kind}: {rows}"
        if case.kind.startswith("jsonl_"):  # the good records around the bad line are all kept
            assert sum(k["id"].startswith(case.kind) for k in kept) == GOOD_AROUND, case.kind
    charset = [k for k in kept if "caf" in k["text"] and "county archive" in k["text"]]
    assert len(charset) == 1  # the page with the unknown charset, decoded and kept

    # The opening examples, in detail: line numbers, and what the message says to do.
    (surrogate,) = by_file["jsonl_lone_surrogate.jsonl"]
    assert surrogate["line"] == 4 and "lone surrogate" in surrogate["detail"]
    (deep,) = by_file["jsonl_deep_nesting.jsonl"]
    assert deep["line"] == 4 and "nested deeper" in deep["detail"]
    for cut in ("zst_truncated.jsonl.zst", "gz_truncated.jsonl.gz"):
        (damage,) = by_file[cut]
        assert damage["reason"] == "damaged_file" and "re-download" in damage["detail"]
    # A cut .gz keeps what precedes the cut: its documents before the damaged line are kept.
    gz_read = by_file["gz_truncated.jsonl.gz"][0]["line"] - 1
    assert 0 < gz_read < 400 and sum(k["id"].startswith("gz_truncated") for k in kept) == gz_read
