"""The per-document filters run in the order `curation.filters` lists them: the first that
removes a document names its reason, a name the registry does not know is refused, and a
filter added to the registry runs from the list alone."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from tasks.curation.config import CurationConfig
from tasks.curation.decontam import benchmark_ngram_hashes, benchmark_test_texts, save_index
from tasks.curation.filter_pass import filter_shard
from tasks.curation.filters.chain import DocumentFilter
from tasks.curation.filters.registry import DEFAULT_FILTERS, FILTERS
from tasks.curation.filters.step import DocumentStep, FilterDoc, Removal
from tasks.curation.output_files import CurationPaths

ARC = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks" / "arc.jsonl"

PROSE = (
    "The old mill stood beside the river for two hundred years, and the town grew up around it. "
    "Farmers brought their grain from the valley each autumn, and the miller kept a ledger of every sack. "
    "The ledger survives in the municipal archive, where historians of the region still read it today. "
    "During the long winter the mill fed the families of the flooded valley, and the mayor wrote to thank it. "
    "Today the building holds a small museum of bread, with its stones, its scales and its wooden wheel. "
    "Visitors who come in spring can watch the old recipes baked again in the restored brick oven."
)


def _bench_text() -> str:
    """A benchmark item's text long enough to hold a 13-gram the index has."""
    return next(t for t in benchmark_test_texts(ARC) if len(t.split()) >= 20)


def _write(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def _config(**kwargs) -> CurationConfig:
    return CurationConfig(input_path="unused", quality_classifier={"enabled": False}, **kwargs)


def _removed(curated: Path) -> dict[str, str]:
    """removed/ of shard 0: document id -> reason."""
    return {r["id"]: r["reason"] for r in pq.read_table(CurationPaths(curated).removed_filter(0)).to_pylist()}


@pytest.fixture
def index(tmp_path) -> Path:
    path = tmp_path / "decontam_index.npz"
    save_index(benchmark_ngram_hashes([ARC], 13), path, n=13)
    return path


def test_the_default_order_is_the_documented_one_and_a_reordered_list_changes_the_reason(tmp_path, index):
    assert CurationConfig().filters == ["heuristics", "quality_classifier", "decontamination"]
    assert list(DEFAULT_FILTERS) == CurationConfig().filters
    # Both the rules (one line five times: repetition) and decontamination would remove doc 1.
    src = _write(tmp_path / "in.jsonl", [PROSE, "\n".join([_bench_text()] * 5)])
    reasons = {}
    for order in (list(DEFAULT_FILTERS), ["decontamination", "heuristics", "quality_classifier"]):
        curated = tmp_path / "-".join(order)
        result = filter_shard(src, 0, _config(filters=order), curated, None, index)
        assert result["kept"] == 1
        removed = result["stats"]["removed_by_reason"]
        assert sum(v["docs"] for v in removed.values()) == 1
        reasons[order[0]] = _removed(curated)
        assert set(removed) == set(reasons[order[0]].values())
    assert reasons["heuristics"] == {"1": "gopher_repetition.dup_line_fraction"}
    assert reasons["decontamination"] == {"1": "decontaminated"}


def test_a_filter_left_out_or_switched_off_does_not_run(tmp_path, index):
    contaminated = f"{PROSE}\n{_bench_text()}"
    src = _write(tmp_path / "in.jsonl", [PROSE, contaminated])
    listed = filter_shard(src, 0, _config(), tmp_path / "listed", None, index)
    assert _removed(tmp_path / "listed") == {"1": "decontaminated"}
    left_out = filter_shard(src, 0, _config(filters=["heuristics"]), tmp_path / "left-out", None, index)
    assert (listed["kept"], left_out["kept"]) == (1, 2)
    # Listed but off in its own section (no model: quality_classifier.enabled is false): skipped.
    assert [s.name for s in DocumentFilter(_config(), None, index).steps] == ["heuristics", "decontamination"]


def test_an_unknown_filter_is_refused_with_the_known_names():
    with pytest.raises(ValidationError) as refused:
        CurationConfig.model_validate({"filters": ["heuristics", "profanity"]})
    message = str(refused.value)
    assert "profanity" in message
    assert "known filters: decontamination, heuristics, quality_classifier" in message
    with pytest.raises(ValidationError, match="more than once"):
        CurationConfig(filters=["heuristics", "heuristics"])


class NoZebras(DocumentStep):
    """A filter as a project would add one: removes documents that mention zebras."""

    name = "no_zebras"

    def check(self, doc: FilterDoc) -> Removal | None:
        self.changes["no_zebras.checked"] += 1
        if "zebra" in doc.text.lower():
            return Removal("zebra", "mentions a zebra")
        return None


def test_a_registered_filter_runs_from_the_config_list_alone(tmp_path, monkeypatch):
    src = _write(tmp_path / "in.jsonl", [PROSE, PROSE.replace("wooden wheel", "painted zebra"), "Zebra!"])
    with pytest.raises(ValidationError, match="no_zebras"):
        _config(filters=[*DEFAULT_FILTERS, "no_zebras"])  # not registered yet
    monkeypatch.setitem(FILTERS, NoZebras.name, NoZebras)
    without = filter_shard(src, 0, _config(), tmp_path / "without")
    assert without["kept"] == 2 and "no_zebras.checked" not in without["stats"]["changes"]
    result = filter_shard(src, 0, _config(filters=[*DEFAULT_FILTERS, "no_zebras"]), tmp_path / "with")
    assert result["kept"] == 1
    assert result["stats"]["removed_by_reason"]["zebra"]["docs"] == 1
    # Doc 2 goes to the rules first (too short); only what they keep reaches the new filter.
    assert _removed(tmp_path / "with") == {"1": "zebra", "2": "c4.too_few_sentences"}
    assert result["stats"]["changes"]["no_zebras.checked"] == 2
