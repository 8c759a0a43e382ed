"""The per-rank training loop: one DeepSpeed engine per rank, in a process group that the
caller set up (Ray Train, or `tasks/training/launch.py` without Ray).

Knows nothing of Ray or Prefect: it is given its rank, world and device. Rank 0 writes
metrics; every rank takes part in checkpoints. Set-up, the step, checkpoints and metrics
are separate pieces so that pipeline and tensor parallelism can replace the step and the
engine without touching the rest.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from infra.core.storage import RunDir, named_if_disk_full, read_json, sha256_file, write_json
from models.config import ModelConfig
from models.flops import parameter_count, training_flops_per_token
from tasks.tokenization.reader import TokenRows, check_tokenizer_matches, read_manifest, to_batch
from tasks.training import checkpoint_store as store
from tasks.training import rng
from tasks.training.batch import BatchPlan, batch_plan, global_batch
from tasks.training.checkpoint import FINAL, save_state_dict
from tasks.training.checkpoint_key import UntrustedCheckpoint, signature_problem
from tasks.training.config import TrainingConfig
from tasks.training.data import RankSampler, TrainingData
from tasks.training.deepspeed_config import deepspeed_config, resolve_precision
from tasks.training.engine import build_engine, build_model, skip_unused_cpu_ops
from tasks.training.metrics import MetricsSink, device_peak_flops, mfu
from tasks.training.parallel import steps as parallel_steps
from tasks.training.parallel.engine import build_parallel_engine
from tasks.training.parallel.rank_grid import Coords, Layout
from tasks.training.resumable_changes import resume_problems
from tasks.training.spikes import SpikeDetector

log = logging.getLogger(__name__)
SKIPS = "skipped_data.json"  # in checkpoints/: the data stretches roll-backs skipped, and why


@dataclass
class RankContext:
    """Where this rank runs; `report` forwards validation metrics to an orchestrator."""

    rank: int
    world: int
    device: torch.device
    host: str
    report: Callable[[dict[str, Any]], None] = lambda metrics: None


@dataclass
class TrainJob:
    """Plain data, so it crosses process boundaries (Ray, subprocesses)."""

    run_dir: str
    training: dict[str, Any]
    model: dict[str, Any]
    device: str  # resolved: "cpu" or "cuda"
    precision: str  # resolved: "bf16", "fp16" or "fp32"
    init_from: str | None = None  # a final model folder: continued pre-training starts from its weights


HOLD_LIMIT_S = 600.0  # a drill whose operator never releases it does not hang the run forever


# The steps of a checkpoint save, in order, as Faults.kill_in_save names them.
SAVE_POINTS = {
    "written": "every rank's files written, no manifest yet",
    "sealed": "the manifest written, the folder not yet renamed",
    "renamed": "the folder renamed to its tag, `latest` not yet moved",
    "published": "`latest` moved, retention not yet run",
}


@dataclass
class Faults:
    """Fault injection for drills and tests: a poisoned stretch of the data stream (its
    batches' loss and gradients x 1000, as a corrupt batch would), a SIGKILL, and a hold."""

    poison_samples: tuple[int, int] | None = None  # [start, end) stream positions
    kill_at_step: int | None = None  # rank 0 kills itself when this step begins
    kill_once_marker: str | None = None  # if set, the kill happens only while this file is absent
    hold_at_step: int | None = None  # rank 0 waits when this step begins, once per run...
    hold_marker: str | None = None  # ...writing this file as it starts to wait...
    hold_release: str | None = None  # ...until this file exists (at most HOLD_LIMIT_S)
    # (step, point): rank 0 SIGKILLs itself at that point of that step's save, one of SAVE_POINTS.
    kill_in_save: tuple[int, str] | None = None

    @classmethod
    def drill(cls, run_dir: str) -> Faults | None:
        """The fault drills the environment asks for, once per run directory so that a retry
        or resume can finish: CRUCIBLE_DRILL_KILL_AT_STEP=N, rank 0 SIGKILLs itself when step
        N begins; CRUCIBLE_DRILL_HOLD_AT_STEP=N, rank 0 waits when step N begins (writing
        logs/drill-holding-at-stepN) until logs/drill-release exists, so that an operator can
        break something at a known step, such as power off a host."""
        kill, hold = os.environ.get("CRUCIBLE_DRILL_KILL_AT_STEP"), os.environ.get("CRUCIBLE_DRILL_HOLD_AT_STEP")
        if not kill and not hold:
            return None
        logs = Path(run_dir) / "logs"
        return cls(
            kill_at_step=int(kill) if kill else None,
            kill_once_marker=str(logs / f"drill-killed-at-step{kill}") if kill else None,
            hold_at_step=int(hold) if hold else None,
            hold_marker=str(logs / f"drill-holding-at-step{hold}") if hold else None,
            hold_release=str(logs / "drill-release") if hold else None,
        )

    def hold(self, step: int, rank: int) -> None:
        """Wait at the start of `hold_at_step` on rank 0 (the other ranks then wait in the
        step's first collective) until the release file appears; once per run."""
        if self.hold_at_step != step or rank != 0 or not self.hold_marker or not self.hold_release:
            return
        marker, release = Path(self.hold_marker), Path(self.hold_release)
        if marker.exists():
            return
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"rank 0 held at the start of step {step} until {release} exists\n")
        deadline = time.monotonic() + HOLD_LIMIT_S
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def save_point(self, step: int, point: str, rank: int) -> None:
        if tuple(self.kill_in_save or ()) == (step, point) and rank == 0:  # a list after a trip through JSON
            log.warning("fault drill: SIGKILL of rank 0 in the save of step %d, %s", step, SAVE_POINTS[point])
            os.kill(os.getpid(), signal.SIGKILL)

    def should_kill(self, step: int, rank: int) -> bool:
        if self.kill_at_step != step or rank != 0:
            return False
        if self.kill_once_marker:
            marker = Path(self.kill_once_marker)
            if marker.exists():
                return False
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(f"SIGKILLed rank 0 at step {step}\n")
        return True


class DivergenceError(RuntimeError):
    """The loss kept spiking after the allowed roll-backs."""


class Preempted(RuntimeError):
    """SIGTERM arrived; a checkpoint was saved, and a re-run resumes from it."""


@dataclass
class RunState:
    """What survives a roll-back in this process: skipped stretches and the events."""

    skips: list[tuple[int, int]] = field(default_factory=list)
    rollbacks: int = 0
    spike_steps: list[int] = field(default_factory=list)


@dataclass
class Setup:
    ctx: RankContext
    run: RunDir
    cfg: TrainingConfig
    model_cfg: ModelConfig
    job: TrainJob
    manifest: dict[str, Any]
    manifest_sha: str
    train: TrainingData
    val: TokenRows
    flops_per_token: int
    peak_flops: float | None
    layout: Layout
    coords: Coords

    @property
    def seq_len(self) -> int:
        return self.manifest["seq_len"]


@dataclass
class Attempt:
    """One engine and the state it resumed at; a roll-back starts a new attempt."""

    engine: Any
    plan: BatchPlan
    sampler: RankSampler
    detector: SpikeDetector
    step: int


def _broadcast(obj: Any) -> Any:
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _log0(ctx: RankContext, msg: str, *args: Any, level: int = logging.INFO) -> None:
    if ctx.rank == 0:
        log.log(level, msg, *args)


def setup(ctx: RankContext, job: TrainJob) -> Setup:
    # 'auto' on GPUs is resolved here, on the workers' own GPUs (a CPU-only driver cannot tell
    # an A100 from a V100).
    job = replace(job, precision=resolve_precision(job.precision, job.device))
    run = RunDir(Path(job.run_dir))
    cfg = TrainingConfig(**job.training)
    model_cfg = ModelConfig(**job.model)
    manifest = read_manifest(run.shards)
    check_tokenizer_matches(manifest, run.tokenizer, run.shards)
    train = TrainingData(run.shards, cfg.seed, cfg.verify_shards, ctx.rank, ctx.world)
    layout = Layout.of(cfg, ctx.world)
    return Setup(
        ctx,
        run,
        cfg,
        model_cfg,
        job,
        manifest,
        sha256_file(run.manifest),
        train,
        TokenRows.open(run.shards, "val", manifest=manifest),
        training_flops_per_token(model_cfg, manifest["vocab_size"], manifest["seq_len"]),
        device_peak_flops(job.device, cfg.peak_flops),
        layout,
        layout.coords(ctx.rank),
    )


def _read_signed(folder: Path) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """(manifest, why it is unusable, why it is untrusted) of a published checkpoint."""
    manifest, problem = store.read_seal(folder)
    return manifest, problem, signature_problem(manifest, folder) if manifest is not None else None


def newest_valid(s: Setup, before_step: int | None = None) -> store.Published | None:
    """The newest published checkpoint (older than `before_step`) whose files all match its
    manifest, checked by every rank together (each hashes a share of the files); a warning
    names each newer one that did not match."""
    ctx, root = s.ctx, s.run.checkpoints
    candidates = _broadcast(
        [(n, p.name) for n, p in store.published_steps(root) if before_step is None or n < before_step]
        if ctx.rank == 0
        else None
    )
    for step, tag in candidates:
        manifest, problem, untrusted = _broadcast(_read_signed(root / tag) if ctx.rank == 0 else None)
        if untrusted:  # every rank stops together: never fall back past a checkpoint planted here
            raise UntrustedCheckpoint(untrusted)
        if problem is None:
            names = sorted(manifest["files"])
            share = {n: manifest["files"][n] for n in names[ctx.rank :: ctx.world]}
            found: list[Any] = [None] * ctx.world
            dist.all_gather_object(found, store.check_files(root / tag, share))
            problem = next((p for p in found if p), None)
        if problem is None:
            return store.Published(tag, step, manifest)
        _log0(ctx, "checkpoint %s is not usable: %s; looking for an older one", tag, problem, level=logging.WARNING)
        if before_step is None and step == candidates[-1][0]:
            # None is usable: starting over would silently throw away the trained steps.
            raise ValueError(
                f"none of the {len(candidates)} checkpoint(s) in {root} is usable (the oldest: "
                f"{problem}); move them away to train this run from step 0, or start a new --run-id"
            )
    return None


def start(s: Setup, state: RunState, found: store.Published | None) -> Attempt:
    """Build the engine and load the checkpoint `found` (None: a fresh start)."""
    ctx, cfg, root = s.ctx, s.cfg, s.run.checkpoints
    if found is not None:
        problems = resume_problems(found.manifest, cfg, s.model_cfg, ctx.world, s.manifest_sha, s.job.precision)
        if problems:
            raise ValueError(f"cannot resume from {root / found.tag}:\n  - " + "\n  - ".join(problems))
    dp = s.layout.data  # the batch is split over replicas; stages and tensor shards share theirs
    g = int(found.manifest["global_batch"]) if found else global_batch(cfg, dp)
    plan = batch_plan(cfg, dp, s.seq_len, g)
    samples = int(found.manifest["data"]["samples"]) if found else 0
    # Without ZeRO every rank's checkpoint holds the whole model and optimizer, which any
    # number of ranks can load as it is; ZeRO's shards are converted first.
    universal = found is not None and found.world_size != ctx.world and found.manifest["training"]["zero_stage"] > 0
    ds_config = deepspeed_config(
        cfg, dp, s.job.precision, s.job.device, plan.accumulation(samples), load_universal=universal
    )
    # A fresh start of continued pre-training takes the earlier model's weights; a resume
    # overwrites whatever the model starts with from its checkpoint.
    initial = None
    if s.job.init_from and found is None:
        initial = torch.load(Path(s.job.init_from) / "model.pt", map_location="cpu", weights_only=True)
        if ctx.rank == 0:
            log.info("continued pre-training: starting from the weights of %s", s.job.init_from)
    if s.layout.model_parallel:
        engine = build_parallel_engine(
            s.model_cfg, cfg, s.manifest["vocab_size"], s.seq_len, ds_config, s.layout, ctx.rank, s.job.device, initial
        )
    else:
        model = build_model(
            s.model_cfg, cfg, s.manifest["vocab_size"], s.seq_len, ds_config, ctx.rank, s.job.device, initial
        )
        engine = build_engine(model, cfg, ds_config)
    sampler = s.train.sampler(s.coords.replica, dp, cfg.micro_batch_size)
    detector = SpikeDetector(cfg.spike)
    # One stream per replica and stage, the same on a tensor group's ranks: dropout on the
    # activations they hold whole must drop the same units. (A plain run: the rank.)
    seed_rank = s.coords.stage * dp + s.coords.replica
    rng.seed_all(cfg.seed + seed_rank)
    if found is None:
        return Attempt(engine, plan, sampler, detector, 0)

    tag = found.tag
    if universal:
        tag = _broadcast(store.to_universal(root, found) if ctx.rank == 0 else None)
    _, client = engine.load_checkpoint(str(root), tag=tag)
    if client is None:
        raise RuntimeError(f"DeepSpeed could not load {root / tag}")
    sampler.load_state_dict(client["data"])
    for a, b in state.skips:
        sampler.skip(a, b)
    detector.load_state_dict(client.get("spike_history", []))
    state.rollbacks = max(state.rollbacks, int(client.get("rollbacks", 0)))
    rng_file = root / found.tag / f"rng-rank{ctx.rank}.pt"
    if found.world_size != ctx.world:
        # Other ranks, other streams: OLMo-core likewise re-seeds rather than restore them.
        rng.seed_all(cfg.seed + seed_rank + 1_000_003 * found.step)
        _log0(
            ctx,
            "world size %d -> %d: random generators re-seeded (data order is unaffected)",
            found.world_size,
            ctx.world,
            level=logging.WARNING,
        )
    else:
        rng.restore(torch.load(rng_file, weights_only=True))
    _log0(ctx, "resumed from %s at step %d", root / found.tag, found.step)
    return Attempt(engine, plan, sampler, detector, found.step)


def save(s: Setup, a: Attempt, state: RunState, val_loss: float | None, faults: Faults | None = None) -> None:
    """A sealed checkpoint: DeepSpeed's files and every rank's RNG under a temporary tag, a
    barrier, every file hashed (each rank a share), the manifest last, then the rename."""
    ctx, root, step = s.ctx, s.run.checkpoints, a.step
    tmp = root / store.tmp_tag_for(step)
    if ctx.rank == 0 and tmp.exists():
        store.discard(tmp)  # left by a crash mid-save
    dist.barrier()
    from deepspeed.checkpoint import constants as ds

    client = {
        "step": step,
        "rollbacks": state.rollbacks,
        "spike_history": a.detector.state_dict(),
        "data": {**a.sampler.state_dict(), "manifest_sha256": s.manifest_sha},
    }
    if not s.layout.model_parallel:
        # Declares the model convertible to a universal checkpoint (no tensor-parallel
        # slicing to undo), for a resume on another number of ranks.
        client[ds.UNIVERSAL_CHECKPOINT_INFO] = {
            ds.UNIVERSAL_CHECKPOINT_VERSION_KEY: ds.UNIVERSAL_CHECKPOINT_VERSION_VALUE
        }
    try:
        a.engine.save_checkpoint(str(root), tag=tmp.name, client_state=client, save_latest=False)
        tmp.mkdir(parents=True, exist_ok=True)
        torch.save(rng.capture(), tmp / f"rng-rank{ctx.rank}.pt")
    except (RuntimeError, OSError) as exc:
        named = named_if_disk_full(exc, root)
        if named is exc:
            raise
        raise named from exc
    dist.barrier()
    point = faults.save_point if faults else lambda step, point, rank: None
    point(step, "written", ctx.rank)
    names = _broadcast(store.files_to_seal(tmp) if ctx.rank == 0 else None)  # one listing (NFS may lag)
    hashed: list[Any] = [None] * ctx.world
    dist.all_gather_object(hashed, store.hash_files(tmp, names[ctx.rank :: ctx.world]))
    if ctx.rank == 0:
        files = {k: v for part in hashed for k, v in part.items()}
        store.write_manifest(
            tmp,
            step,
            ctx.world,
            files,
            {
                "training": s.cfg.model_dump(mode="json"),
                "model": s.model_cfg.model_dump(mode="json"),
                "global_batch": a.plan.global_batch,
                "device": s.job.device,
                "precision": s.job.precision,
                "parallel": s.layout.describe(),
                "val_loss": val_loss,
                "data": client["data"],
                "config_file": str(s.run.config),
            },
        )
        point(step, "sealed", ctx.rank)
        store.publish(root, step, renamed=lambda: point(step, "renamed", ctx.rank))
        point(step, "published", ctx.rank)
        removed = store.retain(root, s.cfg.keep_last, s.cfg.keep_best, step)
        if removed:
            log.info("retention removed %s", ", ".join(removed))
    dist.barrier()


@torch.no_grad()
def validation_loss(s: Setup, engine) -> float:
    cfg, ctx = s.cfg, s.ctx
    if s.layout.model_parallel:
        return parallel_steps.validation_loss(s, engine)
    engine.eval()
    # The same number of rows on every rank: under ZeRO-3 each forward pass is a collective.
    per_rank = min(cfg.eval_batches * cfg.micro_batch_size, len(s.val) // ctx.world)
    rows = np.arange(len(s.val))[ctx.rank :: ctx.world][:per_rank]
    total = torch.zeros(2, dtype=torch.float64, device=ctx.device)
    for start in range(0, len(rows), cfg.micro_batch_size):
        sel = rows[start : start + cfg.micro_batch_size]
        x, y, *seg = (
            t.to(ctx.device) for t in to_batch(*s.val.rows(sel), s.val.segments(sel) if cfg.document_mask else None)
        )
        total[0] += engine(x, y, *seg).double()
        total[1] += 1
    engine.train()
    dist.all_reduce(total)
    return float(total[0] / total[1]) if total[1] else float("nan")


class _Signals:
    """SIGTERM (preemption) sets a flag that the next step boundary turns into a save."""

    def __init__(self) -> None:
        self.term = False
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._on_term)
        # Elsewhere (Ray Train runs the loop in a thread) Ray owns the signal: the command that
        # started the run catches it and writes the run's stop request, read at each step.

    def _on_term(self, *_: Any) -> None:
        self.term = True

    def restore(self) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _loss_scale(engine) -> float | None:
    opt = getattr(engine, "optimizer", None)
    scale = getattr(opt, "cur_scale", None) or getattr(opt, "loss_scale", None)
    return float(scale) if isinstance(scale, (int, float, torch.Tensor)) and engine.fp16_enabled() else None


def train_step(
    s: Setup, a: Attempt, faults: Faults | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, int]:
    """One optimizer step of `accumulation` micro-steps. The loss sum, the number of losses
    in it and the real-token count stay on the device (no host sync here); returns them with
    the data-wait seconds and the micro-steps."""
    if s.layout.model_parallel:
        return parallel_steps.train_step(s, a)
    cfg, ctx, engine, sampler = s.cfg, s.ctx, a.engine, a.sampler
    accum = a.plan.accumulation(sampler.position.samples)
    if accum != engine.gradient_accumulation_steps():
        engine.set_train_batch_size(accum * a.plan.unit)  # the batch ramp moved
    loss_sum = torch.zeros((), dtype=torch.float32, device=ctx.device)
    tokens = torch.zeros((), dtype=torch.int64, device=ctx.device)
    wait = 0.0
    for i in range(accum):
        # DeepSpeed would place the boundary by its own micro-step counter, which counts from
        # the process start and knows nothing of the batch ramp or of a resume.
        engine.set_gradient_accumulation_boundary(i == accum - 1)
        t0 = time.perf_counter()
        src, rows = sampler.next_batch()
        end = sampler.position.samples
        x, y, *seg = (
            t.to(ctx.device, non_blocking=True) for t in s.train.gather(src, rows, segments=cfg.document_mask)
        )
        wait += time.perf_counter() - t0
        loss = engine(x, y, seg[0] if seg else None, cfg.z_loss)  # the model's fused head + loss
        if (
            faults
            and faults.poison_samples
            and faults.poison_samples[0] < end
            and end - a.plan.unit < faults.poison_samples[1]
        ):
            loss = loss * 1000.0  # a corrupt batch: its loss and gradients blow up
        engine.backward(loss)
        engine.step()  # DeepSpeed only updates at the accumulation boundary
        loss_sum += loss.detach().float()
        tokens += (y != -100).sum()
    return loss_sum, torch.tensor(float(accum), device=ctx.device), tokens, wait, accum


def run_steps(
    s: Setup, a: Attempt, state: RunState, sink: MetricsSink | None, signals: _Signals, faults: Faults | None
) -> tuple[str, Any]:
    """Train until max_steps ('done'), a bad step ('spike', (step, reason, skipped range)) or
    SIGTERM ('preempted', step)."""
    cfg, ctx, engine = s.cfg, s.ctx, a.engine
    last_save = time.monotonic()
    while a.step < cfg.max_steps:
        if faults:
            faults.hold(a.step + 1, ctx.rank)
        if faults and faults.should_kill(a.step + 1, ctx.rank):
            log.warning("fault drill: SIGKILL of rank 0 at the start of step %d", a.step + 1)
            os.kill(os.getpid(), signal.SIGKILL)
        t0 = time.perf_counter()
        samples_before = a.sampler.advance_past_skips()  # the step starts past any skipped stretch
        lr = float(engine.get_lr()[0])  # the rate this step uses; the scheduler advances after it
        loss_sum, losses, tokens, wait, accum = train_step(s, a, faults)
        gn = engine.get_global_grad_norm()
        due_time = (
            cfg.checkpoint_every_minutes is not None
            and ctx.rank == 0
            and time.monotonic() - last_save > 60 * cfg.checkpoint_every_minutes
        )
        f64, dev = torch.float64, ctx.device  # exact token counts at any batch size
        summed = torch.stack(
            [loss_sum.double(), losses.double(), tokens.double(), torch.tensor(wait, dtype=f64, device=dev)]
        )
        dist.all_reduce(summed)
        # A stop asked for by the command (SIGTERM to it, Cancel in the UI: infra/app/stop.py)
        # or a SIGTERM to this process: every rank saves at the end of this step and stops.
        stop = signals.term or (ctx.rank == 0 and s.run.stop_request.exists())
        flags = torch.tensor([_peak_memory_mb(ctx.device), float(stop), float(due_time)], dtype=f64, device=dev)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        gn_t = (
            gn.detach().reshape(1).to(dtype=f64, device=dev)
            if isinstance(gn, torch.Tensor)
            else torch.tensor([float("nan") if gn is None else float(gn)], dtype=f64, device=dev)
        )
        loss_total, loss_count, tokens_total, wait_total, peak_mb, term, due, grad_norm = torch.cat(
            [summed, flags, gn_t]
        ).tolist()  # the step's one host sync
        loss = loss_total / loss_count
        if gn is None:  # an engine that kept no norm (engine.keep_clip_norm gives fp32 without ZeRO one)
            grad_norm = None
        a.step += 1
        applied = engine.was_step_applied() if engine.fp16_enabled() else True
        reason = a.detector.check(loss, grad_norm if applied else None)
        if reason is not None:
            return "spike", (a.step, reason, (samples_before, a.sampler.position.samples))
        elapsed = time.perf_counter() - t0
        tps = tokens_total / elapsed
        record = {
            "step": a.step,
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens_per_s": tps,
            "mfu": mfu(s.flops_per_token, tps, ctx.world, s.peak_flops),
            "peak_mem_mb": peak_mb,
            "data_wait_s": wait_total / ctx.world,
            "loss_scale": _loss_scale(engine),
            "skipped_steps": int(engine.skipped_steps),
            "batch": accum * a.plan.unit,
            "tokens": int(tokens_total),
            "samples": a.sampler.position.samples,
            "rollbacks": state.rollbacks,
        }
        if a.step % cfg.eval_every == 0 or a.step == cfg.max_steps:
            record["val_loss"] = validation_loss(s, engine)
        if sink is not None:
            sink.write(record)
            if a.step % max(1, cfg.max_steps // 20) == 0 or "val_loss" in record:
                log.info(
                    "step %d/%d %s",
                    a.step,
                    cfg.max_steps,
                    " ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "step" and isinstance(v, float)),
                )
        if a.step % cfg.checkpoint_every == 0 or a.step == cfg.max_steps or due or term:
            save(s, a, state, record.get("val_loss"), faults)
            last_save = time.monotonic()
        if "val_loss" in record:
            ctx.report({k: v for k, v in record.items() if v is not None})
        if term:
            return "preempted", a.step
    return "done", a.step


def train(ctx: RankContext, job: TrainJob, faults: Faults | None = None) -> dict[str, Any]:
    """Train (or resume) the run in `job.run_dir` on this rank; rank 0 returns the summary."""
    skip_unused_cpu_ops(job.device)
    s = setup(ctx, job)
    state = RunState()
    if (s.run.checkpoints / SKIPS).is_file():  # roll-backs of an earlier process of this run
        saved = read_json(s.run.checkpoints / SKIPS)
        state = RunState([tuple(r) for r in saved["skips"]], saved["rollbacks"], saved["spike_steps"])
    signals = _Signals()
    sink = None
    found = newest_valid(s)
    try:
        while True:
            a = start(s, state, found)
            if ctx.rank == 0:
                if sink is None:
                    tb = s.run.root / "tensorboard" if s.cfg.tensorboard else None
                    sink = MetricsSink(s.run.metrics, tb, a.step)
                else:
                    sink.truncate(a.step)
                if a.step == 0:
                    log.info(
                        "training a %s-parameter model (%s training FLOPs per token) on %d sequences "
                        "for %d steps on %d %s rank(s) in %s",
                        f"{parameter_count(s.model_cfg, s.manifest['vocab_size'], s.seq_len):,}",
                        f"{s.flops_per_token:,}",
                        s.train.stream.epoch_len,
                        s.cfg.max_steps,
                        ctx.world,
                        job.device,
                        job.precision,
                    )
            outcome, detail = run_steps(s, a, state, sink, signals, faults)
            if outcome != "spike":
                break
            step, reason, skipped = detail
            state.rollbacks += 1
            state.spike_steps.append(step)
            state.skips.append(skipped)
            if ctx.rank == 0:  # kept until a checkpoint holds it: a crash now must not replay the spike
                write_json(
                    s.run.checkpoints / SKIPS,
                    {"skips": state.skips, "rollbacks": state.rollbacks, "spike_steps": state.spike_steps},
                )
            found = newest_valid(s, before_step=step)
            to = None if found is None else found.step
            event = {
                "step": step,
                "event": "spike",
                "reason": reason,
                "rolled_back_to": to,
                "skipped_samples": list(skipped),
                "rollback": state.rollbacks,
            }
            if sink is not None:
                sink.write(event)
            _log0(
                ctx,
                "step %d: %s; rolling back to step %s and skipping its batches (samples %d-%d)",
                step,
                reason,
                to,
                *skipped,
                level=logging.WARNING,
            )
            if state.rollbacks > s.cfg.spike.max_rollbacks:
                raise DivergenceError(
                    f"training diverged: bad steps {state.spike_steps} after {s.cfg.spike.max_rollbacks} "
                    f"roll-back(s) ({reason}); lower training.lr, raise warmup_steps, enable z_loss, or "
                    f"inspect the batches at stream samples {skipped[0]}-{skipped[1]}"
                )
            if to is None:
                raise DivergenceError(
                    f"step {step}: {reason}, before any checkpoint to roll back to; "
                    f"lower training.lr or checkpoint more often (training.checkpoint_every)"
                )
            del a  # free the engine before the next one is built
        if outcome == "preempted":
            raise Preempted(
                f"stopped at step {detail} (SIGTERM, or a stop the command asked for): checkpoint saved in "
                f"{s.run.checkpoints}; re-run the same --run-id, or `crucible resume`, to continue"
            )
        return finish(s, a, state)
    finally:
        signals.restore()
        if sink is not None:
            sink.close()


def finish(s: Setup, a: Attempt, state: RunState) -> dict[str, Any]:
    """Write checkpoints/final/ (the fp32 master weights) and train_summary.json."""
    ctx, run = s.ctx, s.run
    hosts: list[Any] = [None] * ctx.world
    dist.all_gather_object(hosts, ctx.host)
    summary: dict[str, Any] = {}
    export_check = None
    if s.layout.model_parallel:  # collectives: every rank takes part
        state_dict = parallel_steps.gather_weights(s, a)
        probe_rows = np.arange(min(parallel_steps.PROBE_ROWS, len(s.val)))
        probe = parallel_steps.probe_logits(s, a, probe_rows)
    if ctx.rank == 0:
        if not s.layout.model_parallel:
            state_dict = master_weights(s, a)
        save_state_dict(state_dict, s.model_cfg, s.manifest["vocab_size"], s.seq_len, a.step, run.checkpoints / FINAL)
        if s.layout.model_parallel:
            assert probe is not None  # gathered on rank 0
            export_check = parallel_steps.check_export(s, run.checkpoints / FINAL, probe_rows, probe)
        tokens_per_step = a.plan.global_batch * s.seq_len
        params = parameter_count(s.model_cfg, s.manifest["vocab_size"], s.seq_len)  # tied weights once
        summary = {
            "steps": a.step,
            "parameters": params,
            "init_from": s.job.init_from,
            "world_size": ctx.world,
            "parallel": s.layout.describe(),
            "export_check": export_check,
            "hosts": hosts,
            "device": s.job.device,
            "precision": s.job.precision,
            "zero_stage": s.cfg.zero_stage,
            "global_batch": a.plan.global_batch,
            "tokens_per_step": tokens_per_step,
            "training_flops_per_token": s.flops_per_token,
            "training_flops": s.flops_per_token * s.seq_len * a.sampler.position.samples,
            "rollbacks": state.rollbacks,
            "spike_steps": state.spike_steps,
            "skipped_samples": [list(r) for r in a.sampler.position.skips],
            "data": data_summary(s.train, a.sampler.position.samples, s.manifest),
        }
        write_json(run.train_summary, summary)
    dist.barrier()
    return summary


def master_weights(s: Setup, a: Attempt) -> dict[str, torch.Tensor]:
    """The fp32 weights the optimizer holds. Under ZeRO (any stage) and bf16/fp16 they are
    sharded or kept apart from the low-precision module, so they are merged from the final
    checkpoint's files; only fp32 without ZeRO has them in the module itself."""
    if s.cfg.zero_stage == 0 and s.job.precision == "fp32":
        return {k: v.detach().float().cpu() for k, v in a.engine.module.state_dict().items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    state = get_fp32_state_dict_from_zero_checkpoint(str(s.run.checkpoints), tag=store.tag_for(a.step))
    return {k: v.float().contiguous() for k, v in state.items()}


def data_summary(train: TrainingData, samples: int, manifest: dict[str, Any]) -> dict[str, Any]:
    """Rows served per source (exact) and their tokens (rows x the source's mean real tokens per row)."""
    rows = train.rows_served(samples)
    avail = manifest["mixture"]["sources"]
    tokens = {s: round(n * avail[s]["available_tokens"] / max(1, avail[s]["available_rows"])) for s, n in rows.items()}
    total = sum(tokens.values()) or 1
    return {
        "samples": samples,
        "epochs": samples / train.stream.epoch_len,
        "rows_by_source": rows,
        "tokens_by_source": tokens,
        "share_by_source": {s: t / total for s, t in tokens.items()},
    }
