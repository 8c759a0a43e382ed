from itertools import pairwise

import pytest
import torch

from tasks.training.config import TrainingConfig
from tasks.training.schedule import lr_multiplier, make_scheduler


def test_linear_warmup_then_cosine_to_the_floor():
    m = [lr_multiplier(s, warmup=4, total=20, min_ratio=0.1) for s in range(20)]
    assert m[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert m[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in pairwise(m[4:]))
    assert m[-1] == pytest.approx(0.1)
    assert m[12] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 8 / 15)).item()))


def test_scheduler_drives_the_optimizer():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = make_scheduler(opt, TrainingConfig(max_steps=10, warmup_steps=2, min_lr_ratio=0.1))
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)


def test_wsd_is_flat_then_decays_linearly_to_the_floor():
    m = [lr_multiplier(s, warmup=2, total=20, min_ratio=0.1, kind="wsd", decay_fraction=0.25) for s in range(20)]
    assert m[:2] == pytest.approx([0.5, 1.0])
    assert m[2:15] == pytest.approx([1.0] * 13)  # stable until the last 5 steps
    assert m[15:] == pytest.approx([1 - 0.9 * k / 5 for k in range(1, 6)])
    assert m[-1] == pytest.approx(0.1)
    # The stable phase does not depend on the run's length: a longer run agrees with it there.
    longer = [lr_multiplier(s, warmup=2, total=40, min_ratio=0.1, kind="wsd", decay_fraction=0.25) for s in range(15)]
    assert longer == pytest.approx(m[:15])


def test_constant_after_warmup():
    m = [lr_multiplier(s, warmup=3, total=10, min_ratio=0.1, kind="constant") for s in range(10)]
    assert m == pytest.approx([1 / 3, 2 / 3] + [1.0] * 8)
