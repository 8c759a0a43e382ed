"""The per-rank training loop: one DeepSpeed engine per rank, in a process group that the
caller set up (Ray Train, or `tasks/training/launch.py` without Ray).

Knows nothing of Ray or Prefect: it is given its rank, world and device. Rank 0 writes
metrics; every rank takes part in checkpoints. The loop is the same for every layout: how
the model is spread over the ranks (its engine, step, validation and final weights) is a
`Strategy` (tasks/training/strategy.py), chosen once per run.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from infra.core.storage import RunDir, named_if_disk_full, read_json, sha256_file, write_json
from models.config import ModelConfig
from models.flops import parameter_count, training_flops_per_token
from tasks.tokenization.reader import TokenRows, check_tokenizer_matches, read_manifest
from tasks.tracking.metric_logger import open_metric_logger
from tasks.training import checkpoint_store as store
from tasks.training import rng
from tasks.training.batch import batch_plan, global_batch
from tasks.training.checkpoint import FINAL, save_state_dict
from tasks.training.checkpoint_key import UntrustedCheckpoint, signature_problem
from tasks.training.config import TrainingConfig
from tasks.training.data import TrainingData
from tasks.training.deepspeed_config import deepspeed_config, resolve_precision
from tasks.training.engine import skip_unused_cpu_ops
from tasks.training.eval_tasks import rank_eval_tasks, score_eval_tasks
from tasks.training.metrics import MetricsSink, device_peak_flops, mfu
from tasks.training.parallel.rank_grid import Layout
from tasks.training.resumable_changes import resume_problems
from tasks.training.run_state import Attempt, RankContext, RunState, Setup, TrainJob
from tasks.training.spikes import SpikeDetector
from tasks.training.strategy import Poisoned, StepResult, Strategy, strategy_for, unpoisoned

log = logging.getLogger(__name__)
SKIPS = "skipped_data.json"  # in checkpoints/: the data stretches roll-backs skipped, and why


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

    def begin_step(self, step: int, rank: int) -> None:
        """The drills armed for the start of `step`: the hold, then the SIGKILL."""
        self.hold(step, rank)
        if self.should_kill(step, rank):
            log.warning("fault drill: SIGKILL of rank 0 at the start of step %d", step)
            os.kill(os.getpid(), signal.SIGKILL)

    def poisons(self, start: int, end: int) -> bool:
        """Whether the stream positions [start, end), one micro-step's rows, overlap the
        poisoned stretch (a `strategy.Poisoned`)."""
        poison = self.poison_samples
        return poison is not None and poison[0] < end and start < poison[1]

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
    evals = rank_eval_tasks(cfg, job.benchmarks_dir, run, manifest["seq_len"], layout.model_parallel)
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
        evals,
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


def start(s: Setup, strategy: Strategy, state: RunState, found: store.Published | None) -> Attempt:
    """Build the engine and load the checkpoint `found` (None: a fresh start)."""
    ctx, cfg = s.ctx, s.cfg
    if found is not None:
        problems = resume_problems(found.manifest, cfg, s.model_cfg, ctx.world, s.manifest_sha, s.job.precision)
        if problems:
            raise ValueError(f"cannot resume from {s.run.checkpoints / found.tag}:\n  - " + "\n  - ".join(problems))
    dp = s.layout.data  # the batch is split over replicas; stages and tensor shards share theirs
    g = int(found.manifest["global_batch"]) if found else global_batch(cfg, dp)
    plan = batch_plan(cfg, dp, s.seq_len, g)
    samples = int(found.manifest["data"]["samples"]) if found else 0
    universal = found is not None and strategy.reshards(found)
    ds_config = deepspeed_config(
        cfg, dp, s.job.precision, s.job.device, plan.accumulation(samples), load_universal=universal
    )
    engine = strategy.build_engine(ds_config, _initial_weights(s, found))
    sampler = s.train.sampler(s.coords.replica, dp, cfg.micro_batch_size)
    detector = SpikeDetector(cfg.spike)
    # One stream per replica and stage, the same on a tensor group's ranks: dropout on the
    # activations they hold whole must drop the same units. (A plain run: the rank.)
    seed_rank = s.coords.stage * dp + s.coords.replica
    rng.seed_all(cfg.seed + seed_rank)
    a = Attempt(engine, plan, sampler, detector, 0)
    if found is not None:
        _resume(s, a, state, found, universal, seed_rank)
    return a


def _initial_weights(s: Setup, found: store.Published | None) -> dict[str, torch.Tensor] | None:
    """A fresh start of continued pre-training takes the earlier model's weights; a resume
    overwrites whatever the model starts with from its checkpoint."""
    if not s.job.init_from or found is not None:
        return None
    initial = torch.load(Path(s.job.init_from) / "model.pt", map_location="cpu", weights_only=True)
    _log0(s.ctx, "continued pre-training: starting from the weights of %s", s.job.init_from)
    return initial


def _resume(s: Setup, a: Attempt, state: RunState, found: store.Published, universal: bool, seed_rank: int) -> None:
    """Load `found` into the attempt: the engine's files, the data position, the spike
    history and the random generators."""
    ctx, root = s.ctx, s.run.checkpoints
    tag = found.tag
    if universal:
        tag = _broadcast(store.to_universal(root, found) if ctx.rank == 0 else None)
    _, client = a.engine.load_checkpoint(str(root), tag=tag)
    if client is None:
        raise RuntimeError(f"DeepSpeed could not load {root / tag}")
    a.sampler.load_state_dict(client["data"])
    for start, end in state.skips:
        a.sampler.skip(start, end)
    a.detector.load_state_dict(client.get("spike_history", []))
    state.rollbacks = max(state.rollbacks, int(client.get("rollbacks", 0)))
    if found.world_size != ctx.world:
        # Other ranks, other streams: OLMo-core likewise re-seeds rather than restore them.
        rng.seed_all(s.cfg.seed + seed_rank + 1_000_003 * found.step)
        _log0(
            ctx,
            "world size %d -> %d: random generators re-seeded (data order is unaffected)",
            found.world_size,
            ctx.world,
            level=logging.WARNING,
        )
    else:
        rng.restore(torch.load(root / found.tag / f"rng-rank{ctx.rank}.pt", weights_only=True))
    _log0(ctx, "resumed from %s at step %d", root / found.tag, found.step)
    a.step = found.step


def save(
    s: Setup, strategy: Strategy, a: Attempt, state: RunState, val_loss: float | None, faults: Faults | None = None
) -> None:
    """A sealed checkpoint: DeepSpeed's files and every rank's RNG under a temporary tag, a
    barrier, every file hashed (each rank a share), the manifest last, then the rename."""
    ctx, root, step = s.ctx, s.run.checkpoints, a.step
    tmp = root / store.tmp_tag_for(step)
    if ctx.rank == 0 and tmp.exists():
        store.discard(tmp)  # left by a crash mid-save
    dist.barrier()
    client = {
        "step": step,
        "rollbacks": state.rollbacks,
        "spike_history": a.detector.state_dict(),
        "data": {**a.sampler.state_dict(), "manifest_sha256": s.manifest_sha},
        **strategy.client_state(),
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
        store.write_manifest(tmp, step, ctx.world, files, _manifest_extra(s, a, val_loss, client["data"]))
        point(step, "sealed", ctx.rank)
        store.publish(root, step, renamed=lambda: point(step, "renamed", ctx.rank))
        point(step, "published", ctx.rank)
        removed = store.retain(root, s.cfg.keep_last, s.cfg.keep_best, step)
        if removed:
            log.info("retention removed %s", ", ".join(removed))
    dist.barrier()


def _manifest_extra(s: Setup, a: Attempt, val_loss: float | None, data: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint's manifest records beside its files: enough to check a resume."""
    return {
        "training": s.cfg.model_dump(mode="json"),
        "model": s.model_cfg.model_dump(mode="json"),
        "global_batch": a.plan.global_batch,
        "device": s.job.device,
        "precision": s.job.precision,
        "parallel": s.layout.describe(),
        "val_loss": val_loss,
        "data": data,
        "config_file": str(s.run.config),
    }


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


def _loss_scale(engine: Any) -> float | None:
    opt = getattr(engine, "optimizer", None)
    scale = getattr(opt, "cur_scale", None) or getattr(opt, "loss_scale", None)
    return float(scale) if isinstance(scale, (int, float, torch.Tensor)) and engine.fp16_enabled() else None


def _follow_ramp(a: Attempt) -> int:
    """The micro-steps of the step about to run, the engine's batch moved to them if the
    batch ramp moved."""
    accum = a.plan.accumulation(a.sampler.position.samples)
    if accum != a.engine.gradient_accumulation_steps():
        a.engine.set_train_batch_size(accum * a.plan.unit)
    return accum


@dataclass
class _Totals:
    """A step's numbers summed (or maxed) over the ranks, on the host."""

    loss: float
    grad_norm: float | None
    tokens: float
    wait: float
    peak_mb: float
    term: bool
    due: bool


def _totals(s: Setup, a: Attempt, out: StepResult, signals: _Signals, due_time: bool) -> _Totals:
    """Every rank's step numbers combined, in the step's one host sync."""
    ctx, gn = s.ctx, a.engine.get_global_grad_norm()
    f64, dev = torch.float64, ctx.device  # exact token counts at any batch size
    summed = torch.stack(
        [out.loss_sum.double(), out.losses.double(), out.tokens.double(), torch.tensor(out.wait, dtype=f64, device=dev)]
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
    loss_total, loss_count, tokens, wait, peak_mb, term, due, grad_norm = torch.cat([summed, flags, gn_t]).tolist()
    # An engine that kept no norm (engine.keep_clip_norm gives fp32 without ZeRO one) reports None.
    return _Totals(
        loss_total / loss_count, None if gn is None else grad_norm, tokens, wait, peak_mb, bool(term), bool(due)
    )


def _record(s: Setup, a: Attempt, state: RunState, t: _Totals, lr: float, accum: int, elapsed: float) -> dict[str, Any]:
    """The metrics line of the step just taken."""
    tps = t.tokens / elapsed
    return {
        "step": a.step,
        "loss": t.loss,
        "lr": lr,
        "grad_norm": t.grad_norm,
        "tokens_per_s": tps,
        "mfu": mfu(s.flops_per_token, tps, s.ctx.world, s.peak_flops),
        "peak_mem_mb": t.peak_mb,
        "data_wait_s": t.wait / s.ctx.world,
        "loss_scale": _loss_scale(a.engine),
        "skipped_steps": int(a.engine.skipped_steps),
        "batch": accum * a.plan.unit,
        "tokens": int(t.tokens),
        "samples": a.sampler.position.samples,
        "rollbacks": state.rollbacks,
    }


def _write_metrics(s: Setup, sink: MetricsSink, record: dict[str, Any]) -> None:
    sink.write(record)
    if record["step"] % max(1, s.cfg.max_steps // 20) == 0 or "val_loss" in record:
        log.info(
            "step %d/%d %s",
            record["step"],
            s.cfg.max_steps,
            " ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "step" and isinstance(v, float)),
        )


def run_steps(
    s: Setup,
    strategy: Strategy,
    a: Attempt,
    state: RunState,
    sink: MetricsSink | None,
    signals: _Signals,
    faults: Faults | None,
) -> tuple[str, Any]:
    """Train until max_steps ('done'), a bad step ('spike', (step, reason, skipped range)) or
    SIGTERM ('preempted', step)."""
    cfg, ctx = s.cfg, s.ctx
    poisoned: Poisoned = faults.poisons if faults else unpoisoned
    last_save = time.monotonic()
    while a.step < cfg.max_steps:
        if faults:
            faults.begin_step(a.step + 1, ctx.rank)
        t0 = time.perf_counter()
        samples_before = a.sampler.advance_past_skips()  # the step starts past any skipped stretch
        lr = float(a.engine.get_lr()[0])  # the rate this step uses; the scheduler advances after it
        accum = _follow_ramp(a)
        out = strategy.train_step(a, accum, poisoned)
        due_time = (
            cfg.checkpoint_every_minutes is not None
            and ctx.rank == 0
            and time.monotonic() - last_save > 60 * cfg.checkpoint_every_minutes
        )
        totals = _totals(s, a, out, signals, due_time)
        a.step += 1
        applied = a.engine.was_step_applied() if a.engine.fp16_enabled() else True
        reason = a.detector.check(totals.loss, totals.grad_norm if applied else None)
        if reason is not None:
            return "spike", (a.step, reason, (samples_before, a.sampler.position.samples))
        record = _record(s, a, state, totals, lr, accum, time.perf_counter() - t0)
        if a.step % cfg.eval_every == 0 or a.step == cfg.max_steps:
            record["val_loss"] = strategy.validation_loss(a.engine)
        if s.evals is not None and (a.step % cfg.eval_tasks_every == 0 or a.step == cfg.max_steps):
            record.update(score_eval_tasks(s.evals, a.engine, ctx.device))  # every rank: collectives
        if sink is not None:
            _write_metrics(s, sink, record)
        if a.step % cfg.checkpoint_every == 0 or a.step == cfg.max_steps or totals.due or totals.term:
            save(s, strategy, a, state, record.get("val_loss"), faults)
            last_save = time.monotonic()
        if "val_loss" in record:
            ctx.report({k: v for k, v in record.items() if v is not None})
        if totals.term:
            return "preempted", a.step
    return "done", a.step


def _earlier_rollbacks(s: Setup) -> RunState:
    """The roll-backs of an earlier process of this run that no checkpoint holds yet."""
    if not (s.run.checkpoints / SKIPS).is_file():
        return RunState()
    saved = read_json(s.run.checkpoints / SKIPS)
    return RunState([tuple(r) for r in saved["skips"]], saved["rollbacks"], saved["spike_steps"])


def _open_sink(s: Setup, a: Attempt, sink: MetricsSink | None) -> MetricsSink | None:
    """Rank 0's metrics, opened at the first attempt and cut back to each later one's step."""
    if s.ctx.rank != 0:
        return None
    if sink is None:
        tb = s.run.root / "tensorboard" if s.cfg.tensorboard else None
        sink = MetricsSink(s.run.metrics, tb, a.step, open_metric_logger(s.run.root))
    else:
        sink.truncate(a.step)
    if a.step == 0:
        log.info(
            "training a %s-parameter model (%s training FLOPs per token) on %d sequences "
            "for %d steps on %d %s rank(s) in %s",
            f"{parameter_count(s.model_cfg, s.vocab_size, s.seq_len):,}",
            f"{s.flops_per_token:,}",
            s.train.stream.epoch_len,
            s.cfg.max_steps,
            s.ctx.world,
            s.job.device,
            s.job.precision,
        )
    return sink


def train(ctx: RankContext, job: TrainJob, faults: Faults | None = None) -> dict[str, Any]:
    """Train (or resume) the run in `job.run_dir` on this rank; rank 0 returns the summary."""
    skip_unused_cpu_ops(job.device)
    s = setup(ctx, job)
    strategy = strategy_for(s)
    state = _earlier_rollbacks(s)
    signals = _Signals()
    sink = None
    found = newest_valid(s)
    try:
        while True:
            a = start(s, strategy, state, found)
            sink = _open_sink(s, a, sink)
            outcome, detail = run_steps(s, strategy, a, state, sink, signals, faults)
            if outcome != "spike":
                break
            found = roll_back(s, state, sink, *detail)
            del a  # free the engine before the next one is built
        if outcome == "preempted":
            raise Preempted(
                f"stopped at step {detail} (SIGTERM, or a stop the command asked for): checkpoint saved in "
                f"{s.run.checkpoints}; re-run the same --run-id, or `crucible resume`, to continue"
            )
        return finish(s, strategy, a, state)
    finally:
        signals.restore()
        if sink is not None:
            sink.close()


def roll_back(
    s: Setup, state: RunState, sink: MetricsSink | None, step: int, reason: str, skipped: tuple[int, int]
) -> store.Published:
    """After the bad `step`: record it and the data it read (skipped from now on), and find
    the checkpoint before it to restart from; raises DivergenceError past the bound."""
    state.rollbacks += 1
    state.spike_steps.append(step)
    state.skips.append(skipped)
    if s.ctx.rank == 0:  # kept until a checkpoint holds it: a crash now must not replay the spike
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
    msg = "step %d: %s; rolling back to step %s and skipping its batches (samples %d-%d)"
    _log0(s.ctx, msg, step, reason, to, *skipped, level=logging.WARNING)
    if state.rollbacks > s.cfg.spike.max_rollbacks:
        raise DivergenceError(
            f"training diverged: bad steps {state.spike_steps} after {s.cfg.spike.max_rollbacks} "
            f"roll-back(s) ({reason}); lower training.lr, raise warmup_steps, enable z_loss, or "
            f"inspect the batches at stream samples {skipped[0]}-{skipped[1]}"
        )
    if found is None:
        raise DivergenceError(
            f"step {step}: {reason}, before any checkpoint to roll back to; "
            f"lower training.lr or checkpoint more often (training.checkpoint_every)"
        )
    return found


def finish(s: Setup, strategy: Strategy, a: Attempt, state: RunState) -> dict[str, Any]:
    """Write checkpoints/final/ (the fp32 master weights) and train_summary.json."""
    ctx, run = s.ctx, s.run
    hosts: list[Any] = [None] * ctx.world
    dist.all_gather_object(hosts, ctx.host)
    weights = strategy.final_weights(a)  # may be collectives: every rank takes part
    summary: dict[str, Any] = {}
    if ctx.rank == 0:
        final = run.checkpoints / FINAL
        save_state_dict(weights.state_dict, s.model_cfg, s.vocab_size, s.seq_len, a.step, final)
        export_check = weights.check(final) if weights.check is not None else None
        summary = _summary(s, a, state, hosts, export_check)
        write_json(run.train_summary, summary)
    dist.barrier()
    return summary


def _summary(
    s: Setup, a: Attempt, state: RunState, hosts: list[Any], export_check: dict[str, Any] | None
) -> dict[str, Any]:
    """train_summary.json: what was trained, on what, and what happened on the way."""
    return {
        "steps": a.step,
        "parameters": parameter_count(s.model_cfg, s.vocab_size, s.seq_len),  # tied weights once
        "init_from": s.job.init_from,
        "world_size": s.ctx.world,
        "parallel": s.layout.describe(),
        "export_check": export_check,
        "hosts": hosts,
        "device": s.job.device,
        "precision": s.job.precision,
        "zero_stage": s.cfg.zero_stage,
        "global_batch": a.plan.global_batch,
        "tokens_per_step": a.plan.global_batch * s.seq_len,
        "training_flops_per_token": s.flops_per_token,
        "training_flops": s.flops_per_token * s.seq_len * a.sampler.position.samples,
        "rollbacks": state.rollbacks,
        "spike_steps": state.spike_steps,
        "skipped_samples": [list(r) for r in a.sampler.position.skips],
        "data": data_summary(s.train, a.sampler.position.samples, s.manifest),
    }


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
