"""Distributed connected components must agree with a plain union-find on random graphs."""

import random
from pathlib import Path

import numpy as np
import pytest

from tasks.curation.components import component_drops, route, star_step


def _distributed(edges: list[tuple[int, int]], parts: int, root: Path) -> tuple[dict[int, int], int]:
    a = np.array([e[0] for e in edges], np.uint64)
    b = np.array([e[1] for e in edges], np.uint64)
    route(a, b, root, 0, 0, parts)
    rnd, previous = 0, None
    for _ in range(64):
        large = [star_step("large", root, rnd, q, parts) for q in range(parts)]
        for q in range(parts):
            star_step("small", root, rnd + 1, q, parts)
        state = (sum(s["edges"] for s in large), sum(s["checksum"] for s in large) % 2**64)
        rnd += 2
        if state == previous:
            break
        previous = state
    drops: dict[int, int] = {}
    for q in range(parts):
        component_drops(root, rnd, q, root / f"drops-{q}.npy")
        for rec in np.load(root / f"drops-{q}.npy"):
            drops[int(rec["doc"])] = int(rec["kept"])
    return drops, rnd // 2  # iterations run: each took two steps


def _union_find(edges: list[tuple[int, int]]) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent if find(x) != x}


@pytest.mark.parametrize("seed", range(8))
def test_matches_union_find(tmp_path, seed):
    rng = random.Random(seed)
    n = rng.randint(5, 400)
    edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(1, 300))]
    edges += [(i, i + 1) for i in range(60)]  # a long chain: the slowest case for label passing
    edges = [(a << 32 | 7, b << 32 | 7) if seed % 2 else (a, b) for a, b in edges]  # shard-like ids
    drops, rounds = _distributed(edges, rng.randint(1, 4), tmp_path)
    assert drops == _union_find([e for e in edges if e[0] != e[1]])
    assert rounds < 20


def test_no_edges(tmp_path):
    assert _distributed([], 2, tmp_path)[0] == {}
