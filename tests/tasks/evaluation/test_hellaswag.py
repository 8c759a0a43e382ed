import json

import pytest

from tasks.evaluation import hellaswag

DOC = {
    "activity_label": "Roof shingle removal",
    "ctx_a": "A man is sitting on a roof.",
    "ctx_b": "he",
    "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                "is holding a rubik's cube.", "starts pulling up roofing on a roof."],
    "label": "3",
}
WIKIHOW = {
    "activity_label": "Home and Garden",
    "ctx_a": "[header] How to clean a grill [title] Heat the grill.",
    "ctx_b": "",
    "endings": ["[step] Scrub  it.", "b", "c", "d"],
    "label": "0",
}


def test_prompt_and_endings_are_rendered_as_the_harness_does():
    query, endings, gold = hellaswag.render(DOC)
    assert query == "Roof shingle removal: A man is sitting on a roof. He"
    assert endings[3] == "starts pulling up roofing on a roof." and gold == 3
    assert [r.continuation for r in hellaswag.requests_for(DOC)][0] == " is using wrap to wrap a pair of skis."


def test_wikihow_markup_is_removed():
    query, endings, _ = hellaswag.render(WIKIHOW)
    assert query == "Home and Garden: How to clean a grill. Heat the grill."
    # The harness strips before removing markup, so a leading space survives; we match it.
    assert endings[0] == " Scrub it."


def test_acc_and_acc_norm_from_loglikelihoods():
    # Item 1: raw argmax is the 2-character ending 0; per character, gold ending 3 wins
    # (-5/2 = -2.5 per char against -10/25 = -0.4).
    short = {**DOC, "endings": ["ab", "abcdefghij klmnop", "x y", "a much longer ending here"]}
    lls = [-5.0, -30.0, -30.0, -10.0]
    # Item 2: gold 0 wins both ways.
    lls2 = [-1.0, -9.0, -9.0, -9.0]
    result = hellaswag.score([short, WIKIHOW], lls + lls2)
    assert result["acc"] == 0.5 and result["acc_norm"] == 1.0
    assert result["acc_stderr"] == pytest.approx(0.5)  # sample std 0.7071 / sqrt(2)
    assert result["random_chance"] == 0.25


def test_bad_files_name_the_line(tmp_path):
    p = tmp_path / "hs.jsonl"
    p.write_text(json.dumps(DOC) + "\n" + json.dumps({"ctx_a": "x"}) + "\n")
    assert len(hellaswag.load_items(p, limit=1)) == 1
    with pytest.raises(ValueError, match=r"hs.jsonl:2: missing field\(s\) activity_label"):
        hellaswag.load_items(p, limit=5)
    p.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"hs.jsonl:1: invalid JSON"):
        hellaswag.load_items(p, limit=5)
