"""Which node ran each task of a stage, from the node each task's result records
(infra/core/resume.once): the stats show how the work spread over the cluster."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from infra.core.node import node_label


def task_nodes(groups: dict[str, Iterable[dict[str, Any]]]) -> dict[str, Any]:
    """`groups`: task name -> the results of its tasks, in index order.
    Returns the task count per node and each task's node."""
    tasks = []
    for name, results in groups.items():
        for i, result in enumerate(results):
            node = result.get("node")
            tasks.append({"task": f"{name}-{i}", "node": node_label(node) if node else "unknown"})
    return {"tasks_by_node": dict(sorted(Counter(t["node"] for t in tasks).items())), "tasks": tasks}
