"""The human review sheet: written, filled in, folded back; bad sheets name their row."""

from __future__ import annotations

import csv
import json

import pytest

from infra.core.storage import write_json
from tasks.evaluation.review import COLUMNS, SheetError, cohen_kappa, fold_ratings, write_sheet

GENERATIONS = ['I think, "maybe" yes', "No.\nSecond line", "It is 100 degrees.", "I have no comment."]
JUDGE = [0.9, 0.2, 0.7, 0.4]  # > 0.5: judged truthful


@pytest.fixture()
def results(tmp_path):
    """A results file with one generation task of four items, one judge, and its samples."""
    items = [
        {
            "id": f"t:{i}",
            "question": f"question {i}, with a comma",
            "references": ["a", "b"],
            "incorrect_references": ["c"],
            "generation": g,
            "judges": {"j": {"aspect": "truthful", "probability": p}},
        }
        for i, (g, p) in enumerate(zip(GENERATIONS, JUDGE))
    ]
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "t.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (tmp_path / "samples" / "arc_easy.jsonl").write_text("{}\n")
    write_json(
        tmp_path / "results.json",
        {
            "model": "m",
            "tasks": {
                "arc_easy": {"formulation": "cloze", "acc": 0.5, "n": 1},
                "t": {
                    "formulation": "generate",
                    "n": 4,
                    "bleu_max": 1.0,
                    "judges": {"j": {"aspect": "truthful", "kind": "causal_lm"}},
                },
            },
        },
    )
    return tmp_path / "results.json"


def fill(sheet, out, truthful, informative=("yes",) * 4, edit=None):
    with sheet.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r, t, i in zip(rows, truthful, informative):
        r["truthful"], r["informative"] = t, i
    if edit:
        edit(rows)
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return out


def test_the_sheet_round_trips_into_human_figures_and_kappa(results, tmp_path):
    csv_path, html_path, n = write_sheet(results)
    assert n == 4 and csv_path.parent == results.parent / "review"
    page = html_path.read_text()
    assert "http" not in page.replace("http-equiv", "") and "&quot;maybe&quot;" in page and "<select" in page
    humans = ["yes", "no", "no", "yes"]
    summary = fold_ratings(results, fill(csv_path, tmp_path / "filled.csv", humans, ["1", "0", "yes", "n"]))
    out = json.loads(results.read_text())["tasks"]["t"]
    assert out["human_truthful"] == 0.5 and out["human_informative"] == 0.5 and out["human_truthful_rated"] == 4
    # judge: 1 0 1 0, people: 1 0 0 1 -> observed 2/4, chance 0.5 -> kappa 0
    assert out["kappa_j"] == pytest.approx(0.0) and summary["tasks"]["t"]["agreement_j"] == 0.5
    item = json.loads((results.parent / "samples" / "t.jsonl").read_text().splitlines()[1])
    assert item["human"] == {"truthful": 0.0, "informative": 0.0} and item["generation"] == GENERATIONS[1]
    assert json.loads((results.parent / "human.json").read_text())["tasks"]["t"]["truthful_rated"] == 4


def test_cohen_kappa_by_hand():
    assert cohen_kappa([1, 1, 0, 0], [1, 1, 0, 0]) == 1.0
    # observed 3/4; chance 0.75*0.5 + 0.25*0.5 = 0.5 -> (0.75 - 0.5) / 0.5
    assert cohen_kappa([1, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(0.5)
    assert cohen_kappa([1, 1], [1, 1]) is None  # chance agreement is total: undefined


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda rows: rows[2].update(truthful="maybe"), r"row 3 \(ending on line \d+\): truthful is 'maybe'"),
        (lambda rows: rows[1].update(id="t:99"), "row 2.*'t:99' is not an item"),
        (lambda rows: rows.append(dict(rows[0])), "row 5.*appears twice"),
        (lambda rows: rows[0].update(generation="something else"), "row 1.*differs"),
    ],
)
def test_a_bad_sheet_names_the_row(results, tmp_path, edit, message):
    csv_path, _, _ = write_sheet(results)
    with pytest.raises(SheetError, match=message):
        fold_ratings(results, fill(csv_path, tmp_path / "bad.csv", ["yes"] * 4, edit=edit))
    assert "human_truthful" not in json.loads(results.read_text())["tasks"]["t"]  # nothing half-written


def test_a_partial_sheet_is_refused_unless_asked_and_then_counts_the_unrated(results, tmp_path):
    csv_path, _, _ = write_sheet(results)
    partial = fill(csv_path, tmp_path / "partial.csv", ["yes", "", "no"], edit=lambda rows: rows.pop())
    with pytest.raises(SheetError, match=r"row 2 \(t:1: truthful\); 1 item\(s\) have no row: t:3\. .*--partial"):
        fold_ratings(results, partial)
    summary = fold_ratings(results, partial, partial=True)
    t = summary["tasks"]["t"]
    assert (t["truthful_rated"], t["truthful_unrated"]) == (2, 2) and t["informative_rated"] == 3
    assert json.loads(results.read_text())["tasks"]["t"]["human_truthful"] == 0.5


def test_a_sheet_without_the_rating_columns_is_refused(results, tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("id,generation\nt:0,x\n")
    with pytest.raises(SheetError, match=r"no column\(s\) \['truthful', 'informative'\]"):
        fold_ratings(results, bad)
