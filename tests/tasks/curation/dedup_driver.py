"""The curate flow's global dedup steps run in one process, in the flow's order, for tests
that look at what the steps decide and how much work they do (no Ray, no Prefect)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tasks.curation.components import component_drops, route, run_rounds, star_step


def connected_components(edges: list[tuple[int, int]], parts: int, root: Path) -> tuple[dict[int, int], int]:
    """Components of `edges` over `parts` partitions: (dropped doc -> kept doc, iterations)."""
    a = np.array([e[0] for e in edges], np.uint64)
    b = np.array([e[1] for e in edges], np.uint64)
    route(a, b, root, 0, 0, parts)
    rnd = converge(root, parts)
    return drops_after(
        root, rnd, parts, lambda q: root / f"drops-{q}.npy"
    ), rnd // 2  # iterations run: each took two steps


def converge(root: Path, parts: int) -> int:
    """Star steps from round 0 until a round changes nothing, as the flow runs them;
    returns the final round."""
    return run_rounds(lambda kind, rnd: [star_step(kind, root, rnd, q, parts) for q in range(parts)])[0]


def drops_after(root: Path, rnd: int, parts: int, dest_of: Callable[[int], Path]) -> dict[int, int]:
    """Write each partition's drops to dest_of(partition); returns them all."""
    drops: dict[int, int] = {}
    for q in range(parts):
        component_drops(root, rnd, q, dest_of(q))
        for rec in np.load(dest_of(q)):
            drops[int(rec["doc"])] = int(rec["kept"])
    return drops
