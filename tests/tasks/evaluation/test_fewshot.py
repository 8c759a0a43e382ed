"""Few-shot examples as the harness picks them: random.Random(1234) advanced doc by doc,
n+1 draws without the evaluated doc for HellaSwag, the first n of the subject for MMLU."""

from __future__ import annotations

import random

import pytest

from tasks.evaluation.benchmarks import TASKS
from tasks.evaluation.harness import TaskRun, contexts, load_docs, select


def shots_in(ctx: str, doc_query: str, pool) -> list:
    """The pool items whose rendered example appears in `ctx` before the doc's own query, in order."""
    examples = ctx[: len(ctx) - len(doc_query)]
    assert ctx.endswith(doc_query)
    found = [
        (examples.index(p.query + " " + p.choices[p.gold] + "\n\n"), i)
        for i, p in enumerate(pool)
        if p.query + " " + p.choices[p.gold] + "\n\n" in examples
    ]
    return [pool[i] for _, i in sorted(found)]


def test_random_sampler_draws_from_one_rng_in_document_order(eval_root):
    spec, docs, pool = load_docs(TaskRun("arc_easy", num_fewshot=2), eval_root, allow_hub=False)
    rnd = random.Random(1234)
    expected = [rnd.sample(pool, 2) for _ in docs]
    ctxs = contexts(spec, docs, pool, 2, letters=False)
    for ctx, doc, shots in zip(ctxs, docs, expected):
        assert ctx == "".join(f"{s.query} {s.choices[s.gold]}\n\n" for s in shots) + doc.query
        assert shots_in(ctx, doc.query, pool) == shots
    # The second doc gets the RNG's second draw, not a fresh seed's first.
    assert expected[1] != random.Random(1234).sample(pool, 2)


def test_hellaswag_draws_one_more_and_drops_the_evaluated_doc(eval_root):
    spec, docs, pool = load_docs(TaskRun("hellaswag", num_fewshot=2), eval_root, allow_hub=False)
    assert spec.fewshot_excludes_doc and pool == docs[:3]  # the train fixture copies 3 validation items
    rnd = random.Random(1234)
    expected = [[x for x in rnd.sample(pool, 3) if x != d][:2] for d in docs]
    ctxs = contexts(spec, docs, pool, 2, letters=False)
    for ctx, doc, shots in zip(ctxs, docs, expected):
        assert shots_in(ctx, doc.query, pool) == shots
        assert doc.query not in ctx[: -len(doc.query)]
    # Drawing only n (the ARC rule) would have shown some of the first docs their own item.
    rnd = random.Random(1234)
    assert any(d in rnd.sample(pool, 2) for d in docs[:3])


def test_too_small_a_pool_is_refused_with_the_counts(eval_root):
    spec, docs, pool = load_docs(TaskRun("hellaswag", num_fewshot=3), eval_root, allow_hub=False)
    with pytest.raises(ValueError, match="hellaswag: 3-shot needs at least 4 examples in the train split, it has 3"):
        contexts(spec, docs, pool, 3, letters=False)


def test_first_n_takes_the_first_items_of_the_same_subject(eval_root):
    spec, docs, pool = load_docs(TaskRun("mmlu", num_fewshot=5), eval_root, allow_hub=False)
    ctxs = contexts(spec, docs, pool, 5, letters=False)
    maths = [p for p in pool if p.subject == "elementary_mathematics"]
    assert [p.subject for p in docs] == ["elementary_mathematics", "elementary_mathematics", "world_religions"]
    assert shots_in(ctxs[0], docs[0].query, pool) == maths  # only 3 exist: all of them, in file order
    assert shots_in(ctxs[1], docs[1].query, pool) == maths
    assert shots_in(ctxs[2], docs[2].query, pool) == [p for p in pool if p.subject == "world_religions"]
    ctxs1 = contexts(spec, docs, pool, 1, letters=False)
    assert shots_in(ctxs1[0], docs[0].query, pool) == maths[:1]


def test_truthfulqa_refuses_few_shot(eval_root):
    with pytest.raises(ValueError, match="truthfulqa_mc1 is 0-shot only"):
        load_docs(TaskRun("truthfulqa_mc1", num_fewshot=1), eval_root, allow_hub=False)


def test_limit_counts_per_subject_for_mmlu_only(eval_root):
    _, mmlu, _ = load_docs(TaskRun("mmlu"), eval_root, allow_hub=False)
    assert [d.query for d in select(TASKS["mmlu"], mmlu, 1)] == [mmlu[0].query, mmlu[2].query]
    _, arc, _ = load_docs(TaskRun("arc_easy", limit=2), eval_root, allow_hub=False)
    assert len(arc) == 2 and arc[1].stem == "What do plants need from the air to make food?"
    assert select(TASKS["arc_easy"], arc, None) is arc
