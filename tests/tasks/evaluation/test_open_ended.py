"""Open-ended tasks: truthfulqa_gen's items and prompt, users' JSON-lines files, scoring."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tasks.evaluation.benchmarks import TRUTHFULQA_PROMPT
from tasks.evaluation.data import BenchmarkDataError
from tasks.evaluation.generation import GenerationSettings
from tasks.evaluation.open_ended import (
    NO_COMMENT,
    TRUTHFULQA_GEN_SETTINGS,
    file_docs,
    run_generation,
    truthfulqa_doc,
    truthfulqa_docs,
)
from tasks.evaluation.text_metrics import reference_scores


def test_truthfulqa_gen_formats_its_items_as_the_harness_does():
    d = truthfulqa_doc(3, "  Is it? ", ["Yes", " It is.  ", ""], ["No", "Never."])
    assert d.id == "truthfulqa_gen:3" and d.question == "Is it?"
    assert d.prompt == TRUTHFULQA_PROMPT + "\n\nQ: Is it?"  # no "\nA:": the model writes it
    assert d.references == ["Yes.", "It is.", NO_COMMENT]
    assert d.incorrect == ["No.", "Never."]
    assert truthfulqa_doc(0, "q", [NO_COMMENT], ["x"]).references == [NO_COMMENT]  # not added twice
    assert GenerationSettings(until=("\n\n",), max_gen_toks=256, do_sample=False) == TRUTHFULQA_GEN_SETTINGS


def test_truthfulqa_gen_reads_the_generation_split(eval_root):
    docs, note = truthfulqa_docs(eval_root, allow_hub=False)
    assert note is None and len(docs) == 3
    assert docs[1].question == "At what temperature does water boil at sea level?"
    assert docs[2].incorrect == ["Yes, I am a human."]  # the blank answer dropped


def test_without_the_generation_split_the_multiple_choice_answers_stand_in(eval_root, tmp_path):
    shutil.copytree(eval_root / "truthfulqa", tmp_path / "truthfulqa")
    docs, note = truthfulqa_docs(tmp_path, allow_hub=False)
    assert "mc2 targets" in note
    first = json.loads((eval_root / "truthfulqa" / "validation.jsonl").read_text().splitlines()[0])
    t = first["mc2_targets"]
    true = [c.strip() for c, y in zip(t["choices"], t["labels"]) if y]
    assert [r.rstrip(".") for r in docs[0].references[: len(true)]] == [c.rstrip(".") for c in true]
    assert len(docs[0].incorrect) == t["labels"].count(0)
    with pytest.raises(BenchmarkDataError, match=r"truthfulqa_generation/validation\.jsonl"):
        truthfulqa_docs(tmp_path / "nothing", allow_hub=False)


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"references": ["a"]}', "`prompt` must be a non-empty string"),
        ('{"prompt": "p", "references": []}', "`references` must be a non-empty list"),
        ('{"prompt": "p", "references": ["a"], "incorrect_references": "b"}', "`incorrect_references`"),
        ('{"prompt": "p", "references": "a", "id": 1}\n{"prompt": "q", "references": "b", "id": 1}', "repeats"),
        ('{"prompt": "p", "references": ["a"]', "not valid JSON"),
    ],
)
def test_a_bad_generation_file_names_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "mine.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(BenchmarkDataError, match=message) as e:
        file_docs("mine", path)
    assert str(path) in str(e.value) and "line" in str(e.value)


def test_a_generation_file_is_generated_and_scored_against_its_references(make_gpt, wrap, tok, tmp_path):
    path = tmp_path / "held_out.jsonl"
    path.write_text(
        '{"prompt": "Q: What falls from clouds?\\nA:", "references": ["Rain falls.", "Snow."]}\n'
        '{"id": "b", "prompt": "The sun", "references": "is a star", "incorrect_references": ["is cold"]}\n'
    )
    docs = file_docs("held_out", path)
    assert [d.id for d in docs] == ["held_out:1", "held_out:b"]
    model = wrap(make_gpt(tok.get_vocab_size(), 64), max_length=64)
    r = run_generation(model, "held_out", docs, GenerationSettings(max_gen_toks=6), batch_size=2)
    assert r["n"] == 2 and r["formulation"] == "generate" and sum(r["stops"].values()) == 2
    assert r["max_gen_toks_used"] == 6
    for item, doc in zip(r["items"], docs):
        scores = reference_scores(item["generation"], doc.references, doc.incorrect or None)
        assert {k: item[k] for k in scores} == scores
    assert r["bleu_max"] == pytest.approx(np.mean([i["bleu_max"] for i in r["items"]]))
    assert "bleu_acc" not in r["items"][0] and "bleu_acc" in r["items"][1]
    assert r["bleu_acc"] == r["items"][1]["bleu_acc"] and r["bleu_acc_n"] == 1 and "bleu_max_n" not in r
