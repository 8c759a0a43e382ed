"""Decontamination must catch benchmark text copied into training documents, whatever its
case and punctuation, and nothing that shares fewer than n consecutive words with it."""

import json
from pathlib import Path

import numpy as np
import pytest

from tasks.curation.decontam import (
    Decontaminator,
    _NgramHasher,
    benchmark_name,
    benchmark_ngram_hashes,
    benchmark_test_texts,
    load_index,
    save_index,
)
from tasks.curation.shingles import normalized_words

BENCH = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks"
FILES = [BENCH / f"{name}.jsonl" for name in ("arc", "hellaswag", "mmlu", "truthfulqa")]
REAL = Path("/work/shared/benchmarks")


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (BENCH / f"{name}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def decon() -> Decontaminator:
    return Decontaminator(benchmark_ngram_hashes(FILES, 13), 13)


def test_every_schema_yields_context_plus_each_distinct_choice():
    arc, hs, mmlu, tqa = _rows("arc"), _rows("hellaswag"), _rows("mmlu"), _rows("truthfulqa")
    texts = {
        name: list(benchmark_test_texts(BENCH / f"{name}.jsonl")) for name in ("arc", "hellaswag", "mmlu", "truthfulqa")
    }
    assert texts["arc"][:4] == [f"{arc[0]['question']} {c}" for c in arc[0]["choices"]["text"]]
    assert texts["hellaswag"][:4] == [f"{hs[0]['ctx']} {e}" for e in hs[0]["endings"]]
    assert texts["mmlu"][:4] == [f"{mmlu[0]['question']} {c}" for c in mmlu[0]["choices"]]
    # TruthfulQA's mc2 repeats the mc1 choices: each distinct choice once, mc2-only ones included.
    first = list(dict.fromkeys(tqa[0]["mc1_targets"]["choices"] + tqa[0]["mc2_targets"]["choices"]))
    assert texts["truthfulqa"][: len(first)] == [f"{tqa[0]['question']} {c}" for c in first]
    assert len(first) == 4 and len(texts["truthfulqa"]) == 4 + 3 + 3
    assert [len(texts[k]) for k in ("arc", "hellaswag", "mmlu")] == [12, 12, 12]


def test_benchmark_names_keep_the_folder_only_for_split_named_files():
    assert benchmark_name(REAL / "hellaswag" / "validation.jsonl") == "hellaswag/validation"
    assert benchmark_name(Path("exports/mmlu/test-00000-of-00001.jsonl")) == "mmlu/test-00000-of-00001"
    assert benchmark_name(BENCH / "arc.jsonl") == "arc"
    index = benchmark_ngram_hashes(FILES, 13)
    assert list(index) == ["arc", "hellaswag", "mmlu", "truthfulqa"]
    for h in index.values():
        assert h.dtype == np.uint64 and len(h) > 0 and (np.diff(h) > 0).all()  # sorted, unique


def test_copied_context_and_answer_is_matched_despite_case_and_punctuation(decon):
    # Item 1's context (8 words) and its answer, the second ending (8 words), share no 13-gram
    # with the benchmark unless context and that ending are indexed together.
    hs = _rows("hellaswag")[0]
    assert len(normalized_words(hs["ctx"])) < 13 and len(normalized_words(hs["endings"][1])) < 13
    copied = f"{hs['ctx']} {hs['endings'][1]}".upper().replace(" ", " ,  ").replace(".", ";")
    doc = f"Notes from the weekend workshop on video captions.\n{copied}\nThat was all for today."
    assert decon.match(doc) == "hellaswag"


def test_twelve_shared_words_are_not_a_match_but_thirteen_are(decon):
    words = _rows("hellaswag")[1]["ctx"].split()
    before, after = "Our reporter wrote that", "according to several neighbours in town."
    assert decon.match(f"{before} {' '.join(words[3:15])} {after}") is None
    assert decon.match(f"{before} {' '.join(words[3:16])} {after}") == "hellaswag"


def test_clean_and_empty_documents_are_not_matched(decon):
    clean = (
        "The river town held its autumn market on Saturday, where farmers sold apples, "
        "pumpkins and honey while a brass band played near the old stone bridge."
    )
    assert decon.match(clean) is None
    assert decon.match("") is None and decon.match("  ...  ") is None


def test_short_documents_match_only_a_whole_short_item(decon):
    # "Which tool is best for measuring the mass of a rock? balance" is 12 words: one short n-gram.
    assert decon.match("WHICH tool is best for measuring the mass of a rock -- Balance!") == "arc"
    assert decon.match("Which tool is best for measuring the mass of a rock?") is None
    assert decon.match("which tool is best for measuring the mass of a rock balance " * 3) is None


def test_the_first_benchmark_in_index_order_is_named():
    shared = benchmark_ngram_hashes([BENCH / "arc.jsonl"], 13)["arc"]
    doc = _rows("arc")[0]["question"]
    assert Decontaminator({"a": shared, "b": shared}, 13).match(doc) == "a"
    assert Decontaminator({"b": shared, "a": shared}, 13).match(doc) == "b"
    assert Decontaminator({"x": np.empty(0, np.uint64), "b": shared}, 13).match(doc) == "b"
    assert Decontaminator({}, 13).match(doc) is None
    # A document with n-grams of two benchmarks is named after the one listed first.
    index = benchmark_ngram_hashes([BENCH / "hellaswag.jsonl", BENCH / "arc.jsonl"], 13)
    both = f"{_rows('hellaswag')[1]['ctx']}\n\n{doc}"
    assert Decontaminator(index, 13).match(both) == "hellaswag"
    assert Decontaminator(dict(reversed(index.items())), 13).match(both) == "arc"


def test_batched_hashes_equal_per_text_hashes_and_are_stable():
    hasher = _NgramHasher(13)
    texts = [normalized_words(t) for t in benchmark_test_texts(BENCH / "hellaswag.jsonl")] + [[], ["one"]]
    each = np.concatenate([hasher.ngram_hashes([t]) for t in texts])
    assert (hasher.ngram_hashes(texts) == each).all()
    words = texts[4]
    # A window of a long text hashes like the same 13 words on their own (document vs item).
    assert hasher.ngram_hashes([words])[2] == hasher.ngram_hashes([words[2:15]])[0]
    # Saved indexes are read by other processes: the hash must never depend on the process
    # (Python's hash() is salted) or silently change; a change needs a new _FORMAT.
    assert int(_NgramHasher(3).ngram_hashes([["the", "quick", "fox"]])[0]) == 389169851615759005


def test_index_round_trips_and_refuses_another_ngram_size(tmp_path):
    index = benchmark_ngram_hashes(FILES, 13)
    index["hellaswag/validation"] = index["hellaswag"][:5]  # names with a slash survive
    path = tmp_path / "sub" / "decontam_index.npz"
    save_index(index, path, n=13)
    back = load_index(path, n=13)
    assert list(back) == list(index)
    for name in index:
        assert back[name].dtype == np.uint64 and (back[name] == index[name]).all()
    assert [p.name for p in path.parent.iterdir()] == ["decontam_index.npz"]  # no temp file left
    with pytest.raises(ValueError, match="holds 13-grams but 8-grams"):
        load_index(path, n=8)
    save_index(index, path)  # without n: loads for any n
    assert list(load_index(path, n=8)) == list(index)


def test_unknown_schema_names_file_line_and_expected_keys(tmp_path):
    bad = tmp_path / "mystery.jsonl"
    bad.write_text(json.dumps(_rows("mmlu")[0]) + "\n\n" + json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    with pytest.raises(
        ValueError,
        match=r"mystery\.jsonl, line 3: .*'completion', 'prompt'.*"
        r"ARC \(question, choices \{text, label\}, answerKey\).*HellaSwag",
    ):
        benchmark_ngram_hashes([bad], 13)
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"mystery\.jsonl, line 1: not valid JSON"):
        list(benchmark_test_texts(bad))


@pytest.mark.skipif(not REAL.is_dir(), reason="real benchmark copies not present")
def test_index_of_the_real_benchmarks_catches_a_real_item():
    paths = sorted(REAL.glob("*/*.jsonl"))
    index = benchmark_ngram_hashes(paths, 13)
    assert {"arc_easy/test", "arc_challenge/test", "hellaswag/validation", "mmlu/test", "truthfulqa/validation"} <= set(
        index
    )
    assert sum(map(len, index.values())) > 1_000_000
    decon = Decontaminator(index, 13)
    item = json.loads((REAL / "hellaswag" / "validation.jsonl").open().readline())
    doc = f"From a video description: {item['activity_label']}. {item['ctx']} {item['endings'][int(item['label'])]}"
    assert decon.match(doc) == "hellaswag/validation"
    mmlu = json.loads((REAL / "mmlu" / "test.jsonl").open().readline())
    assert decon.match(f"Exam practice. Q: {mmlu['question']} A: {mmlu['choices'][mmlu['answer']]}") == "mmlu/test"
    assert (
        decon.match(
            "The river town held its autumn market on Saturday, where farmers sold apples, "
            "pumpkins and honey while a brass band played near the old stone bridge."
        )
        is None
    )
