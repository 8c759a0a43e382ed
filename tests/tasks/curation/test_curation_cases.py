"""The case builder of benchmarks/curation_classes.py, on a corpora folder made from the
WikiText fixture documents (no Debian manuals: the language class is left out)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
N = 8


@pytest.fixture
def cases_module(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the benchmarks import each other by name
    import curation_cases

    return curation_cases


@pytest.fixture
def corpora(tmp_path: Path) -> Path:
    """WikiText's raw layout (` = Title = ` then one paragraph a line), four of the fixture's
    WikiText sections an article; no Shakespeare."""
    folder = tmp_path / "corpora"
    folder.mkdir()
    lines = []
    for path in sorted((ROOT / "tests" / "fixtures" / "corpus").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith('{"id": "wiki-'):  # not the fixture's planted cases (one line is malformed)
                doc = json.loads(line)
                if len(lines) % 5 == 0:
                    lines.append(f" = Article {doc['id']} = ")
                lines.append(f" {doc['text']} ")
    (folder / "wikitext2_test.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "wikitext2_valid.txt").write_text("", encoding="utf-8")
    (folder / "tinyshakespeare_input.txt").write_text("", encoding="utf-8")
    return folder


def test_cases_are_seeded_counted_and_planted_as_labelled(cases_module, corpora: Path, tmp_path: Path) -> None:
    from curation_damage import jaccard

    cases = cases_module.build_cases(N, seed=3, corpora=corpora, languages=())
    again = cases_module.build_cases(N, seed=3, corpora=corpora, languages=())
    other = cases_module.build_cases(N, seed=4, corpora=corpora, languages=())
    assert cases.docs == again.docs and cases.labels == again.labels
    assert cases.docs != other.docs

    counts = Counter(lab["class"] for lab in cases.labels)
    assert counts == {
        "duplicates": 2 * N,
        "secrets": N,
        "lookalikes": N,
        "junk": N,
        "repeated_spans": N,
        "control": N // 2,
    }
    ids = [d["id"] for d in cases.docs]
    assert ids == [lab["id"] for lab in cases.labels] and len(set(ids)) == len(ids)
    text = {d["id"]: d["text"] for d in cases.docs}

    for lab in cases.labels:
        if lab["class"] in ("secrets", "lookalikes"):
            assert len(lab["plants"]) == cases_module.PLANTS_PER_DOC
            for plant in lab["plants"]:
                assert plant["value"] in text[lab["id"]]
                assert all(needle and needle in text[lab["id"]] for needle in plant["needles"])

    pairs: dict[int, dict[str, str]] = {}
    for lab in cases.labels:
        if lab["class"] == "duplicates":
            pairs.setdefault(lab["pair"], {})[lab["copy"]] = text[lab["id"]]
            assert lab["jaccard"] < 0.75  # the damage hides the copy from MinHash's 0.8
    assert len(pairs) == N
    for pair in pairs.values():
        assert pair["clean"] != pair["damaged"]
        assert jaccard(pair["clean"], pair["damaged"]) < 0.75

    firsts: dict[int, str] = {}
    for lab in cases.labels:  # in input order: the first document holding a block is marked first
        if lab["class"] == "repeated_spans":
            assert lab["block_text"] in text[lab["id"]] and len(lab["block_text"].split()) >= 50
            assert lab["first"] == (lab["block"] not in firsts)
            firsts.setdefault(lab["block"], lab["id"])

    cases_module.write_cases(cases, tmp_path / "input", tmp_path / "labels.jsonl")
    written = [json.loads(x) for f in sorted((tmp_path / "input").glob("*.jsonl")) for x in f.open(encoding="utf-8")]
    assert written == cases.docs
    assert sum(1 for _ in (tmp_path / "labels.jsonl").open()) == len(cases.labels)
