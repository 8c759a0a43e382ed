"""Exact-substring dedup: spans that occurred earlier are cut from later documents only."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.curation.substring_dedup import _TOKEN, cut, find_spans, groups, load_spans, repeated_token_mask


def naive_mask(docs: list[list[int]], k: int) -> list[bool]:
    """Token by token, by definition: inside a run of >= k tokens of its own document that
    occurs, within one document, starting at an earlier position of the corpus."""
    flat: list[int] = []
    bounds = []
    for d in docs:
        bounds.append((len(flat), len(flat) + len(d)))
        flat += d
        flat.append(-1)
    seen_before = set()
    marked = [False] * len(flat)
    windows: dict[tuple[int, ...], int] = {}  # every in-document window -> its first start
    for lo, hi in bounds:
        for s in range(lo, hi):
            for e in range(s + 1, hi + 1):
                windows.setdefault(tuple(flat[s:e]), s)
    for lo, hi in bounds:
        for s in range(lo, hi):
            for e in range(s + k, hi + 1):
                if windows[tuple(flat[s:e])] < s:
                    seen_before.add((s, e))
                    for i in range(s, e):
                        marked[i] = True
    return [m for m, t in zip(marked, flat, strict=True) if t != -1]


def fast_mask(docs: list[list[int]], k: int) -> list[bool]:
    flat: list[int] = []
    ends = []
    for d in docs:
        flat += d
        ends.append(len(flat))
        flat.append(-1)
    tokens = np.array(flat, dtype=np.int32)
    tokens[tokens == -1] = max(flat) + 1
    mask = repeated_token_mask(tokens, np.array(ends, dtype=np.int64), k)
    return [bool(m) for m, t in zip(mask, flat, strict=True) if t != -1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 2), min_size=0, max_size=12), min_size=1, max_size=5),
    st.integers(2, 4),
)
def test_the_mask_matches_the_definition(docs, k):
    assert fast_mask(docs, k) == naive_mask(docs, k)


def test_a_match_never_crosses_a_document_boundary():
    # "1 2 3" ends doc 0 and "4 5" starts doc 1; doc 2 holds "1 2 3 4 5" inside it: no run of
    # 5 occurred before within one document.
    docs = [[9, 1, 2, 3], [4, 5, 8], [7, 1, 2, 3, 4, 5, 6]]
    assert not any(fast_mask(docs, 5))
    assert fast_mask(docs, 3) == [False] * 7 + [False, True, True, True, False, False, False]


def test_whitespace_tokens_match_str_split():
    text = "a\u00a0b\tc\u2003d\x1ce\u3000f  g\n\nh"
    assert [m.group() for m in _TOKEN.finditer(text)] == text.split()


def test_cut_removes_the_tokens_and_the_space_after_them():
    text = "Intro words here.\n\nRelated articles: one two three.\n\nClosing line."
    tokens = text.split()
    first = tokens.index("Related")
    assert cut(text, [(first, first + 5)]) == "Intro words here.\n\nClosing line."
    assert cut(text, [(0, 3)]) == "Related articles: one two three.\n\nClosing line."
    assert cut(text, [(len(tokens) - 2, len(tokens))]) == "Intro words here.\n\nRelated articles: one two three."
    assert cut(text, [(0, 1), (3, 5)]) == "words here.\n\none two three.\n\nClosing line."


def test_groups_are_consecutive_and_bounded():
    assert groups([5, 5, 5, 20, 1], 10) == [[0, 1], [2], [3], [4]]
    assert groups([], 10) == []


def prose(rnd: random.Random, words: int) -> str:
    vocab = [f"w{i}" for i in range(5000)]
    return " ".join(rnd.choice(vocab) for _ in range(words)) + "."


def test_a_footer_repeated_across_shards_stays_only_in_its_first_document(tmp_path):
    rnd = random.Random(3)
    footer = "\n\n" + prose(rnd, 60)
    shards = [[prose(rnd, 100) + footer for _ in range(3)], [prose(rnd, 100), prose(rnd, 100) + footer]]
    paths = []
    for i, texts in enumerate(shards):
        paths.append(tmp_path / f"s{i}.parquet")
        pq.write_table(pa.table({"text": texts}), paths[-1])
    dests = [tmp_path / f"spans{i}.npy" for i in range(2)]
    # Row 1 of shard 0 was dropped by document dedup: it neither keeps nor loses the footer.
    result = find_spans(paths, [{1}, set()], 50, dests)
    assert result["documents"] == 4 and result["spans"] == 2
    assert result["tokens_cut"] == 2 * len(footer.split())
    first, second = load_spans(dests[0]), load_spans(dests[1])
    assert set(first) == {2} and set(second) == {1}
    assert first[2] == [(100, 160)]  # 100 words of its own, then the 60 of the footer
    assert cut(shards[0][2], first[2]) == shards[0][2].removesuffix(footer)
    assert cut(shards[1][1], second[1]) == shards[1][1].removesuffix(footer)


def test_a_span_shorter_than_min_tokens_stays(tmp_path):
    rnd = random.Random(4)
    tail = " " + prose(rnd, 49)
    pq.write_table(pa.table({"text": [prose(rnd, 80) + tail, prose(rnd, 80) + tail]}), tmp_path / "s.parquet")
    assert len(tail.split()) == 49
    result = find_spans([tmp_path / "s.parquet"], [set()], 50, [tmp_path / "spans.npy"])
    assert result["spans"] == 0 and load_spans(tmp_path / "spans.npy") == {}
    result = find_spans([tmp_path / "s.parquet"], [set()], 49, [tmp_path / "spans.npy"])
    assert result["spans"] == 1 and load_spans(tmp_path / "spans.npy") == {1: [(80, 129)]}


def test_min_tokens_left_above_min_tokens_is_refused():
    import pytest
    from pydantic import ValidationError

    from tasks.curation.substring_dedup import SubstringDedupConfig

    with pytest.raises(ValidationError, match="first copy"):
        SubstringDedupConfig(min_tokens=20, min_tokens_left=50)
