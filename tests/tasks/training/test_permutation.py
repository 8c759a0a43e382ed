import numpy as np
import pytest

from tasks.training.permutation import Permutation


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 65, 1000, 4097])
def test_is_a_permutation(n):
    out = Permutation(n, (1, 2))(np.arange(n))
    assert sorted(out.tolist()) == list(range(n))


def test_is_deterministic_pointwise_and_seed_dependent():
    p = Permutation(10_000, (5,))
    full = p(np.arange(10_000))
    assert p(np.array([17, 9_999, 3])).tolist() == full[[17, 9_999, 3]].tolist()
    assert not np.array_equal(full, Permutation(10_000, (6,))(np.arange(10_000)))
    assert (full != np.arange(10_000)).mean() > 0.99


def test_looks_shuffled():
    # Neighbouring positions land far apart, and each decile of positions covers all deciles.
    out = Permutation(100_000, (3,))(np.arange(100_000))
    assert np.abs(np.diff(out)).mean() > 20_000
    hist = np.histogram(out[:10_000], bins=10, range=(0, 100_000))[0]
    assert hist.min() > 800 and hist.max() < 1200


def test_refuses_an_empty_range():
    with pytest.raises(ValueError, match="cannot permute 0"):
        Permutation(0, (1,))
