"""Distributed connected components must agree with a plain union-find on random graphs."""

import random

import numpy as np
import pytest

from tasks.curation.components import components_in_one, route
from tests.tasks.curation.dedup_driver import connected_components


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
    drops, rounds = connected_components(edges, rng.randint(1, 4), tmp_path)
    assert drops == _union_find([e for e in edges if e[0] != e[1]])
    assert rounds < 20


def test_no_edges(tmp_path):
    assert connected_components([], 2, tmp_path)[0] == {}


@pytest.mark.parametrize("seed", range(3))
def test_one_partition_in_one_process_matches_union_find(tmp_path, seed):
    rng = random.Random(seed)
    edges = [(rng.randrange(300), rng.randrange(300)) for _ in range(200)] + [(i, i + 1) for i in range(40)]
    a, b = (np.array([e[k] for e in edges], np.uint64) for k in (0, 1))
    route(a, b, tmp_path, 0, 0, 1)
    result = components_in_one(tmp_path, tmp_path / "drops.npy")
    drops = {int(r["doc"]): int(r["kept"]) for r in np.load(tmp_path / "drops.npy")}
    assert drops == _union_find([e for e in edges if e[0] != e[1]])
    assert result["dropped"] == len(drops) and result["star_steps"] == 2 * result["component_rounds"]
