"""Run the training loop on N local processes without Ray: one process per rank, a gloo
(CPU) or NCCL (GPU) process group on loopback. For tests, benchmarks and single-machine
drills; `trainer.py` runs the same loop on Ray Train.

    python -m tasks.training.launch --rank R --world W --port P --spec job-PORT.json

where the spec file holds the job and its faults, written by `LocalJob`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tasks.training.loop import Faults, TrainJob


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalJob:
    """`world` rank processes on this machine; `wait` stops the others when one rank dies
    (as a launcher would), so nothing hangs."""

    def __init__(
        self,
        job: TrainJob,
        world: int,
        faults: Faults | None = None,
        log_dir: Path | None = None,
        threads_per_rank: int = 1,
    ):
        port = free_port()
        log_dir = Path(log_dir or Path(job.run_dir) / "logs")
        log_dir.mkdir(parents=True, exist_ok=True)
        spec = log_dir / f"job-{port}.json"
        spec.write_text(json.dumps({"job": asdict(job), "faults": asdict(faults) if faults else None}))
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads_per_rank),
            "DS_ACCELERATOR": os.environ.get("DS_ACCELERATOR", "cuda" if job.device == "cuda" else "cpu"),
        }
        self.logs = [log_dir / f"rank{rank}.log" for rank in range(world)]
        self.procs = []
        for rank in range(world):
            with open(self.logs[rank], "ab") as out:
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "tasks.training.launch",
                            "--rank",
                            str(rank),
                            "--world",
                            str(world),
                            "--port",
                            str(port),
                            "--spec",
                            str(spec),
                        ],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=Path(__file__).resolve().parents[2],
                    )
                )

    def signal(self, signum: int) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signum)

    def wait(self, timeout: float = 900, grace_s: float = 3.0) -> list[int]:
        """Exit codes of every rank. After the first failure the others get `grace_s` to end
        on their own (all ranks raise the same error at once when training diverges), then
        the ones left, stuck in a collective with a dead peer, are killed."""
        deadline = time.monotonic() + timeout
        while True:
            codes = [p.poll() for p in self.procs]
            if all(c is not None for c in codes):
                return [int(c) for c in codes if c is not None]
            if any(c not in (None, 0) for c in codes):
                deadline = min(deadline, time.monotonic() + grace_s)
            if time.monotonic() > deadline:
                for p in self.procs:
                    if p.poll() is None:
                        p.kill()
                return [int(p.wait()) for p in self.procs]
            time.sleep(0.2)


def run_local(
    job: TrainJob,
    world: int,
    faults: Faults | None = None,
    timeout: float = 900,
    log_dir: Path | None = None,
    threads_per_rank: int = 1,
) -> list[int]:
    """Run `world` rank processes to the end; returns their exit codes."""
    return LocalJob(job, world, faults, log_dir, threads_per_rank).wait(timeout)


def _worker(rank: int, world: int, port: int, spec: dict[str, Any]) -> int:
    import torch
    import torch.distributed as dist

    from infra.core.logging_setup import setup_logging
    from infra.core.node import node_identity, node_label
    from tasks.training.loop import RankContext, train

    setup_logging()
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    job = TrainJob(**spec["job"])
    faults = Faults(**spec["faults"]) if spec["faults"] else None
    if faults and faults.poison_samples:
        start, end = faults.poison_samples  # a list after the trip through JSON
        faults.poison_samples = (start, end)
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    if job.device == "cuda":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(
        "nccl" if job.device == "cuda" else "gloo",
        rank=rank,
        world_size=world,
        device_id=device if job.device == "cuda" else None,
    )
    try:
        train(RankContext(rank, world, device, node_label(node_identity())), job, faults)
    finally:
        dist.destroy_process_group()
    logging.getLogger(__name__).info("rank %d of %d finished", rank, world)
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--world", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--spec", type=Path, required=True)
    args = p.parse_args()
    try:
        code = _worker(args.rank, args.world, args.port, json.loads(args.spec.read_text()))
    except Exception:
        traceback.print_exc()  # the error and where, in the rank's log
        code = 1
    # Everything is on disk and the process group is gone. Skip the interpreter's teardown:
    # the C++ destructors of the communication libraries can abort a rank (a SIGABRT after
    # the last step was seen once in CI; "terminate called without an active exception"
    # after a refused resume), which would turn a finished run or a clean error into a crash.
    logging.shutdown()
    measured = sys.modules.get("coverage")  # under `infra/dev.sh coverage`: save before the hard exit
    if measured is not None and (cov := measured.Coverage.current()) is not None:
        cov.stop()
        cov.save()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
