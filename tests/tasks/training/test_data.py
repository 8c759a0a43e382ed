import numpy as np
import pytest

from tasks.training.data import RankSampler


def test_ranks_get_disjoint_rows_each_epoch():
    samplers = [RankSampler(100, r, 2, batch=5, seed=3) for r in range(2)]
    rows = [np.concatenate([s.next_batch() for _ in range(s.batches_per_epoch)]) for s in samplers]
    assert len(set(rows[0]) & set(rows[1])) == 0
    assert len(set(rows[0]) | set(rows[1])) == 100


def test_epochs_reshuffle_deterministically():
    a, b = RankSampler(40, 0, 1, 4, seed=1), RankSampler(40, 0, 1, 4, seed=1)
    seq_a = [a.next_batch().tolist() for _ in range(25)]
    seq_b = [b.next_batch().tolist() for _ in range(25)]
    assert seq_a == seq_b
    assert seq_a[:10] != seq_a[10:20]  # epoch 2 is a new permutation


def test_resume_continues_with_the_next_batch():
    full = RankSampler(64, 1, 2, 4, seed=7)
    expected = [full.next_batch().tolist() for _ in range(12)]
    first = RankSampler(64, 1, 2, 4, seed=7)
    seen = [first.next_batch().tolist() for _ in range(5)]
    resumed = RankSampler(64, 1, 2, 4, seed=7)
    resumed.load_state_dict(first.state_dict())
    assert seen + [resumed.next_batch().tolist() for _ in range(7)] == expected


def test_too_little_data_is_a_clear_error():
    with pytest.raises(ValueError, match="micro-batch of 8"):
        RankSampler(10, 0, 2, batch=8, seed=0)
