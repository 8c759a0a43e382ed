"""End to end: `crucible curate` (the curation stage of `crucible run`) on the ordinary damage
of real input, through a real Prefect server and real Ray: a lone surrogate escape and JSON
nested too deep in a JSONL file, a `.jsonl.zst` cut in half. The run finishes, and every
document is kept or counted in removed/ with its file and line."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import zstandard

from infra.core.storage import RunDir, read_json
from tests.flows.e2e_env import curate
from tests.tasks.curation.web.warc_fixtures import ENGLISH_PARAGRAPHS

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _doc(i: int) -> bytes:
    # Prose that passes the quality rules, one report number apart: no two are duplicates.
    k = i % len(ENGLISH_PARAGRAPHS)
    text = f"Report {i} from the county archive. " + " ".join(ENGLISH_PARAGRAPHS[k:] + ENGLISH_PARAGRAPHS[:k])
    return json.dumps({"id": f"d{i}", "text": text}).encode() + b"\n"


def test_bad_records_and_a_cut_archive_end_in_a_balanced_count(e2e, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = [_doc(i) for i in range(300)]
    lines.insert(150, b'{"id": "bad", "text": "\\ud800 scraped"}\n')
    lines.insert(200, b"[" * 100_000 + b"\n")
    (corpus / "a.jsonl").write_bytes(b"".join(lines))
    packed = zstandard.ZstdCompressor().compress(b"".join(_doc(i) for i in range(1000, 3000)))
    (corpus / "b.jsonl.zst").write_bytes(packed[: len(packed) // 2])
    runs = tmp_path / "runs"
    result = curate(e2e, runs, "bad", corpus)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    run = RunDir(runs / "bad")
    total = read_json(run.curation_stats)["totals"]
    reasons = {r: v["docs"] for r, v in total["removed_by_reason"].items()}
    assert reasons["malformed"] == 2 and reasons["damaged_file"] == 1
    removed = [r for f in sorted(run.removed.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    (surrogate,) = [r for r in removed if r["reason"] == "malformed" and r["line"] == 151]
    (deep,) = [r for r in removed if r["reason"] == "malformed" and r["line"] == 201]
    (cut,) = [r for r in removed if r["reason"] == "damaged_file"]
    assert surrogate["file"].endswith("a.jsonl") and "lone surrogate" in surrogate["detail"]
    assert deep["file"].endswith("a.jsonl") and "nested deeper" in deep["detail"]
    assert cut["file"].endswith("b.jsonl.zst") and "re-download" in cut["detail"]
    read_from_zst = cut["line"] - 1
    assert 0 < read_from_zst < 2000  # what precedes the cut is read, the cut itself counted
    assert total["docs_in"] == 302 + read_from_zst + 1
    kept = [row for f in sorted(run.curated.glob("part-*.parquet")) for row in pq.read_table(f).to_pylist()]
    assert len(kept) == total["docs_kept"] == total["docs_in"] - sum(reasons.values())
    assert len(removed) == sum(reasons.values())
    assert sum(int(r["id"][1:]) >= 1000 for r in kept) > 0.9 * read_from_zst  # b.jsonl.zst: ids d1000 on
