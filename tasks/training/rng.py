"""Every random generator a rank draws from, captured and restored for exact resume.

Saved as plain lists and tensors, so the file loads with `torch.load(weights_only=True)`:
nothing in a checkpoint is unpickled as arbitrary objects.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture() -> dict[str, Any]:
    py = random.getstate()
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple)  # the global RandomState is an MT19937: its legacy state is a tuple
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # This rank's device only: under Ray a rank sees one GPU, under a launcher all of them.
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def seed_all(seed: int) -> None:
    """Seed every generator; used at the start and when a resume cannot restore the saved
    states (another world size: the ranks are not the same ranks)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
