"""What training does when it loses a rank or the host under it.

The ranks are restarted from the newest valid checkpoint, up to `max_failures` times. If
the cluster has room for all `num_workers` ranks again within `host_wait_s` (the host
restarted, or was never lost: a single rank crashed), they restart as before and the run
continues exactly. Otherwise the run continues on the most ranks that fit, down to
`min_workers`, keeping the checkpoint's global batch: ZeRO shards are converted to the
new world through the universal checkpoint, and the data position carries over, so no
sample is repeated or skipped.

Why not Ray Train's elastic mode (`num_workers=(min, max)`): it restarts at whatever size
fits at once. Here the lost host gets its time to return first, since a shrunk run trains
slower and, under ZeRO, pays for a conversion; and only world sizes that the global batch
divides are acceptable.

Every event goes to the run's train_events.jsonl; the report and train_summary.json show them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.core.storage import RunDir
from tasks.training.batch import batch_problems, global_batch, replicas
from tasks.training.config import TrainingConfig
from tasks.training.metrics import read_metrics

log = logging.getLogger(__name__)


def alive_nodes() -> dict[str, str]:
    """Node id -> address of the cluster's alive nodes."""
    import ray

    return {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}


def room_for(world: int, resources: dict[str, float], timeout_s: float) -> bool:
    """Whether the cluster can place `world` ranks within `timeout_s`: a placement group is
    reserved (then released), so a node that died but is not yet marked dead cannot pass."""
    from ray.util.placement_group import placement_group, remove_placement_group

    pg = placement_group([dict(resources) for _ in range(world)], strategy="PACK")
    try:
        return bool(pg.wait(timeout_seconds=max(1, int(timeout_s))))
    finally:
        remove_placement_group(pg)


class TrainEvents:
    """Appends one JSON line per event; each is logged as well."""

    def __init__(self, run: RunDir):
        self.path = run.train_events

    def record(self, event: str, message: str, **fields: Any) -> dict[str, Any]:
        entry = {"time": time.time(), "event": event, "message": message, **fields}
        with open(self.path, "a", encoding="utf-8") as out:  # appends are whole lines
            out.write(json.dumps(entry) + "\n")
        log.warning("training: %s", message)
        return entry


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def last_step(run: RunDir) -> int | None:
    """The newest step the metrics record, for the events (not for resuming)."""
    steps, _ = read_metrics(run.metrics)
    return max((r["step"] for r in steps), default=None)


def shrunk_config(cfg: TrainingConfig, world: int) -> TrainingConfig:
    """`cfg` on `world` ranks with the same global batch (fixed at its full-world size)."""
    g = cfg.global_batch_size or global_batch(cfg, replicas(cfg, cfg.num_workers))
    return cfg.model_copy(
        update={"num_workers": world, "global_batch_size": g, "min_workers": min(cfg.min_workers, world)}
    )


def choose_world(
    cfg: TrainingConfig,
    resources: dict[str, float],
    run: RunDir,
    events: TrainEvents,
    acceptable: Callable[[TrainingConfig], list[str]],
    poll_s: float = 5.0,
) -> TrainingConfig:
    """After a lost rank: the config to restart with. Waits up to `host_wait_s` for the full
    world; then takes the most ranks that fit and that `acceptable` (the resume checks) allows."""
    full = cfg.num_workers
    events.record(
        "waiting",
        f"waiting up to {cfg.host_wait_s:.0f}s for room for {full} rank(s)",
        world=full,
        nodes=sorted(alive_nodes().values()),
    )
    deadline = time.monotonic() + cfg.host_wait_s
    while True:
        if room_for(full, resources, min(poll_s, max(1.0, deadline - time.monotonic()))):
            events.record(
                "restarting",
                f"room for all {full} rank(s): restarting them from the newest valid checkpoint",
                world=full,
                nodes=sorted(alive_nodes().values()),
            )
            return cfg
        if time.monotonic() >= deadline:
            break
    g = cfg.global_batch_size or global_batch(cfg, replicas(cfg, full))
    model_ranks = cfg.parallel.pipeline * cfg.parallel.tensor
    for world in range(full - 1, cfg.min_workers - 1, -1):
        if (
            world % model_ranks
            or batch_problems(cfg, replicas(cfg, world), g)
            or not room_for(world, resources, poll_s)
        ):
            continue
        smaller = shrunk_config(cfg, world)
        problems = acceptable(smaller)
        if problems:
            log.info("not continuing on %d rank(s): %s", world, "; ".join(problems))
            continue
        events.record(
            "continuing_smaller",
            f"no room for {full} rank(s) after {cfg.host_wait_s:.0f}s: continuing on {world} rank(s) "
            f"from the newest valid checkpoint, with the same global batch of {g}",
            world=world,
            previous_world=full,
            nodes=sorted(alive_nodes().values()),
        )
        return smaller
    raise RuntimeError(
        f"training lost ranks and the cluster has no room for {full} rank(s), nor for any smaller world "
        f"of at least training.min_workers={cfg.min_workers} rank(s) that the global batch of {g} divides and the "
        f"checkpoint can resume on (a pipeline/tensor-parallel one: only its own number of ranks), "
        f"after waiting {cfg.host_wait_s:.0f}s; bring the lost host back and run `crucible resume {run.root.name}`"
    )
