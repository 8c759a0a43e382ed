"""Connected components of the MinHash candidate graph, distributed over node partitions.

Alternating large-star and small-star steps (Kiveris et al., "Connected Components in
MapReduce and Beyond", 2014): every step groups directed edges by their source node, one
task per node partition, and emits edges that point nodes at smaller ones. When a full
round leaves the edge set unchanged, every component is a star around its smallest id.
Each task holds only the edges of its own partition; the driver sees counts and checksums.

Files: round r keeps one file per writer t, `r{r:03d}/from-{t}.npy`, the edges it sent to
every partition (routed_files.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tasks.curation.dedup import DROP_DTYPE, EDGE_DTYPE, first_of_runs
from tasks.curation.keyed_files import write_sorted
from tasks.curation.routed_files import read_partition, write_routed

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads sequential document ids evenly over partitions."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _M1
        x = x ^ (x >> np.uint64(27))
        x = x * _M2
        return x ^ (x >> np.uint64(31))


def partition_of(nodes: np.ndarray, parts: int) -> np.ndarray:
    return (_mix(nodes) % np.uint64(parts)).astype(np.int64)


def round_dir(root: Path, rnd: int) -> Path:
    return root / f"r{rnd:03d}"


def route(a: np.ndarray, b: np.ndarray, root: Path, rnd: int, writer: int, parts: int) -> int:
    """Send undirected edges (a, b) both ways to the partitions owning each source node."""
    edges = np.empty(2 * len(a), dtype=EDGE_DTYPE)
    edges["src"], edges["dst"] = np.concatenate([a, b]), np.concatenate([b, a])
    write_routed(edges, partition_of(edges["src"], parts), parts, round_dir(root, rnd) / f"from-{writer}.npy")
    return len(a)


def _load(root: Path, rnd: int, part: int) -> np.ndarray:
    edges = read_partition(round_dir(root, rnd), part)
    return np.unique(edges[edges["src"] != edges["dst"]])  # sorted by (src, dst)


def _checksum(edges: np.ndarray) -> int:
    with np.errstate(over="ignore"):
        return int((_mix(edges["src"]) ^ _mix(edges["dst"] + np.uint64(1))).sum(dtype=np.uint64))


def _group_min(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per edge: the smallest of its source node and all that node's neighbours in `edges`."""
    starts = first_of_runs(edges["src"])
    idx = np.flatnonzero(starts)
    mins = np.minimum(np.minimum.reduceat(edges["dst"], idx), edges["src"][idx])
    return mins[np.cumsum(starts) - 1], starts


def star_step(kind: str, root: Path, rnd: int, part: int, parts: int) -> dict[str, int]:
    """One large- or small-star step for one partition: read round rnd, write round rnd+1."""
    edges = _load(root, rnd, part)
    stats = {"edges": len(edges), "checksum": _checksum(edges)}
    if len(edges) == 0:
        route(np.empty(0, np.uint64), np.empty(0, np.uint64), root, rnd + 1, part, parts)
        return stats
    if kind == "large":
        # Point every larger neighbour at the smallest node of the neighbourhood.
        m, _ = _group_min(edges)
        sel = edges["dst"] > edges["src"]
        a, b = edges["dst"][sel], m[sel]
    else:
        # Among the node and its smaller neighbours, point all at the smallest.
        small = edges[edges["dst"] < edges["src"]]
        if len(small) == 0:
            a = b = np.empty(0, np.uint64)
        else:
            m, starts = _group_min(small)
            a = np.concatenate([small["dst"], small["src"][starts]])
            b = np.concatenate([m, m[starts]])
            keep = a != b
            a, b = a[keep], b[keep]
    route(a, b, root, rnd + 1, part, parts)
    return stats


def component_drops(root: Path, rnd: int, part: int, dest: Path) -> dict[str, int]:
    """After convergence: every node with a smaller neighbour (its star's centre) is dropped."""
    edges = _load(root, rnd, part)
    drops = np.empty(0, dtype=DROP_DTYPE)
    if len(edges):
        m, starts = _group_min(edges)
        node, centre = edges["src"][starts], m[starts]
        dup = centre < node
        drops = np.empty(int(dup.sum()), dtype=DROP_DTYPE)
        drops["doc"], drops["kept"], drops["reason"] = node[dup], centre[dup], 2
    write_sorted(drops, "doc", dest)
    return {"dropped": len(drops)}


def run_rounds(
    step: Callable[[str, int], list[dict[str, int]]], max_rounds: int = 64
) -> tuple[int, int, list[dict[str, int]]]:
    """Alternate large- and small-star steps until a round leaves the edge count and checksum
    unchanged. `step(kind, rnd)` runs one step over every partition and returns their results.
    Returns (the final round, the rounds run, every step's results)."""
    rnd, previous, done = 0, None, []
    for it in range(max_rounds):
        large = step("large", rnd)
        done += large + step("small", rnd + 1)
        state = (sum(s["edges"] for s in large), sum(s["checksum"] for s in large) % 2**64)
        rnd += 2
        if state == previous:
            return rnd, it + 1, done
        previous = state
    raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")


def components_in_one(root: Path, dest: Path) -> dict[str, int]:
    """The whole step, rounds and drops, in this process, for a graph of one partition: a
    small corpus's graph then costs one task launch rather than one per star step."""
    rnd, rounds, steps = run_rounds(lambda kind, r: [star_step(kind, root, r, 0, 1)])
    return {**component_drops(root, rnd, 0, dest), "component_rounds": rounds, "star_steps": len(steps)}
