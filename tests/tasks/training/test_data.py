"""The training stream over real token shards: disjoint ranks, exactly once per epoch,
exact resume, and the planned mixture."""

from collections import Counter

import numpy as np
import pytest

from infra.core.storage import read_json
from tasks.tokenization.mixture import plan_mixture
from tasks.training.data import RankSampler, TrainingData


def _served(data: TrainingData, sampler: RankSampler, steps: int) -> list[tuple[int, int]]:
    out = []
    for _ in range(steps):
        src, rows = sampler.next_batch()
        out += list(zip(src.tolist(), rows.tolist()))
    return out


def test_every_training_token_is_served_once_per_epoch_across_two_ranks(make_token_shards):
    out = make_token_shards({"web": 80, "books": 40, "code": 30})
    data = TrainingData(out, seed=11, verify="full")
    world, batch = 2, 3
    epoch = data.stream.epoch_len
    steps = -(-epoch // (world * batch)) + 1  # a little past the end of the first epoch
    per_rank = [_served(data, data.sampler(r, world, batch), steps) for r in range(world)]
    within = epoch // 2 - batch  # items each rank draws before the first epoch can end
    assert not set(per_rank[0][:within]) & set(per_rank[1][:within])  # ranks disjoint
    # Stream positions interleave ranks block by block; put them back in stream order.
    stream = [
        pair for step in range(steps) for r in range(world) for pair in per_rank[r][step * batch : (step + 1) * batch]
    ]
    first_epoch = stream[:epoch]
    assert len(set(first_epoch)) == epoch  # every row once
    tokens_served = Counter()
    for s, r in first_epoch:
        tokens, lengths = data.rows[s].rows(np.array([r]))
        tokens_served.update(tokens[0, : lengths[0]].tolist())
    tokens_in_split = Counter()
    for rows in data.rows:
        tokens, lengths = rows.rows(np.arange(len(rows)))
        for t, n in zip(tokens, lengths):
            tokens_in_split.update(t[:n].tolist())
    assert tokens_served == tokens_in_split
    manifest = read_json(out / "manifest.json")
    assert sum(tokens_served.values()) == manifest["splits"]["train"]["tokens"]
    assert stream[epoch:] != first_epoch[: len(stream) - epoch]  # the next epoch is shuffled anew


def test_resume_continues_with_exactly_the_next_samples(make_token_shards):
    out = make_token_shards({"web": 60, "books": 30})
    data = TrainingData(out, seed=5)
    uninterrupted = [_served(data, data.sampler(r, 2, 4), 40) for r in range(2)]
    for stop in (1, 7, 23):
        resumed = []
        for r in range(2):
            first = data.sampler(r, 2, 4)
            head = _served(data, first, stop)
            state = first.state_dict()
            fresh = TrainingData(out, seed=5).sampler(r, 2, 4)  # a new process after the restart
            fresh.load_state_dict(state)
            resumed.append(head + _served(data, fresh, 40 - stop))
        assert resumed == uninterrupted


def test_seed_changes_the_order_but_not_the_rows(make_token_shards):
    out = make_token_shards({"web": 60})
    a, b = TrainingData(out, seed=1), TrainingData(out, seed=2)
    n = a.stream.epoch_len
    sa, sb = a.stream.lookup(np.arange(n)), b.stream.lookup(np.arange(n))
    assert sorted(sa[1].tolist()) == sorted(sb[1].tolist()) == list(range(n))
    assert sa[1].tolist() != sb[1].tolist()


def test_weighted_mixture_repeats_and_subsamples_sources(make_token_shards):
    out = make_token_shards({"web": 120, "books": 20}, mixture={"web": 0.5, "books": 0.5})
    manifest = read_json(out / "manifest.json")
    plan = manifest["mixture"]["sources"]
    assert plan["books"]["repeats"] > 1 > plan["web"]["repeats"]
    assert plan["books"]["realised_share"] == pytest.approx(0.5, abs=0.05)
    data = TrainingData(out, seed=3)
    src, rows = data.stream.lookup(np.arange(data.stream.epoch_len))
    books = data.sources.index("books")
    web_rows = rows[src != books]
    assert len(set(web_rows.tolist())) == len(web_rows)  # a subsample draws each row at most once
    book_counts = np.bincount(rows[src == books], minlength=len(data.rows[books]))
    assert book_counts.min() >= int(plan["books"]["repeats"])  # every book row at least floor(repeats) times
    served = data.rows_served(3 * data.stream.epoch_len + 5)
    assert served["books"] >= 3 * plan["books"]["epoch_rows"]
    assert sum(served.values()) == 3 * data.stream.epoch_len + 5


def test_natural_mixture_draws_every_row_once():
    plan = plan_mixture({"a": 10, "b": 3}, {"a": 170, "b": 40}, None)
    assert {s: p["epoch_rows"] for s, p in plan["sources"].items()} == {"a": 10, "b": 3}
    assert plan["sources"]["a"]["planned_share"] == pytest.approx(170 / 210)


def test_mixture_weights_must_name_the_sources(caplog):
    plan = plan_mixture({"a": 10, "b": 3}, {"a": 170, "b": 40}, {"a": 1, "b": 1, "wiki": 2})
    assert "names source(s) ['wiki']" in caplog.text and plan["missing_sources"] == ["wiki"]
    assert plan["sources"]["a"]["planned_share"] == pytest.approx(0.5)  # among the sources present
    with pytest.raises(ValueError, match=r"source\(s\) \['b'\] have no weight.*0 leaves a source out"):
        plan_mixture({"a": 10, "b": 3}, {"a": 170, "b": 40}, {"a": 1})
    plan = plan_mixture({"a": 10, "b": 3}, {"a": 170, "b": 40}, {"a": 1, "b": 0})
    assert plan["sources"]["b"]["epoch_rows"] == 0 and plan["epoch_rows"] == 10


def test_too_little_data_for_one_micro_step(make_token_shards):
    data = TrainingData(make_token_shards({"web": 60}), seed=1)
    with pytest.raises(ValueError, match=r"cannot fill one micro-step.*lower training\.micro_batch_size"):
        data.sampler(0, 2, data.stream.epoch_len)


def test_resume_with_another_batch_shape_is_refused(make_token_shards):
    data = TrainingData(make_token_shards({"web": 60}), seed=1)
    sampler = data.sampler(0, 2, 3)
    with pytest.raises(ValueError, match="not a whole number of micro-steps"):
        sampler.load_state_dict({"samples": 8})
