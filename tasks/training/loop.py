"""The per-worker training loop: runs on every Ray Train worker with a DeepSpeed engine.

Knows nothing of Prefect. Rank 0 writes metrics; all ranks take part in checkpoints.
"""
from __future__ import annotations

import json
import logging
import math
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from infra.deepspeed_config import deepspeed_config, resolve_precision
from infra.storage import RunDir, sha256_file, write_json, write_text
from models.config import ModelConfig
from models.flops import training_flops_per_token
from models.gpt import GPT
from tasks.tokenization.reader import TokenRows, check_tokenizer_matches, read_manifest, to_batch
from tasks.training.checkpoint import FINAL, latest_tag, save_model
from tasks.training.config import TrainingConfig
from tasks.training.data import RankSampler, TrainingData
from tasks.training.schedule import make_scheduler

log = logging.getLogger(__name__)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only; biases, norms and embeddings are left undecayed (GPT-2/3 practice)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "emb" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _mean_across_ranks(value: float) -> float:
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def _to(device: torch.device, tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(device) for t in tensors)


@torch.no_grad()
def validation_loss(engine, val: TokenRows, cfg: TrainingConfig, rank: int, world: int) -> float:
    engine.eval()
    rows = np.arange(len(val))[rank::world][: cfg.eval_batches * cfg.micro_batch_size]
    losses = []
    for start in range(0, len(rows), cfg.micro_batch_size):
        sel = rows[start : start + cfg.micro_batch_size]
        x, y, *seg = _to(engine.device, to_batch(*val.rows(sel), val.segments(sel) if cfg.document_mask else None))
        losses.append(engine(x, y, *seg).item())
    engine.train()
    return _mean_across_ranks(float(np.mean(losses)) if losses else float("nan"))


def _append_metrics(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, after_step: int) -> None:
    """On resume, drop metric lines past the checkpoint: those steps are run again."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= after_step]
    write_text(path, "".join(ln + "\n" for ln in keep))


def restore_position(sampler: RankSampler, client: dict[str, Any], manifest_sha: str, run: RunDir) -> None:
    """Continue the data stream where the checkpoint left it, if it indexes the same shards."""
    if "data" not in client:
        raise ValueError(f"the checkpoints in {run.checkpoints} were written by an older Crucible and "
                         f"hold no data position; start a new --run-id")
    if client["data"]["manifest_sha256"] != manifest_sha:
        raise ValueError(f"{run.manifest} changed since the checkpoints in {run.checkpoints} were written "
                         f"(re-tokenized or another mixture), so the saved data position means other "
                         f"samples now; start a new --run-id, or restore the tokenization settings")
    sampler.load_state_dict(client["data"])


def data_summary(train: TrainingData, samples: int, manifest: dict[str, Any]) -> dict[str, Any]:
    """Rows served per source (exact) and their tokens (rows x the source's mean real tokens per row)."""
    rows = train.rows_served(samples)
    avail = manifest["mixture"]["sources"]
    tokens = {s: round(n * avail[s]["available_tokens"] / max(1, avail[s]["available_rows"])) for s, n in rows.items()}
    total = sum(tokens.values()) or 1
    return {"samples": samples, "epochs": samples / train.stream.epoch_len, "rows_by_source": rows,
            "tokens_by_source": tokens, "share_by_source": {s: t / total for s, t in tokens.items()}}


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train entry point; `config` holds plain dicts so it crosses process boundaries."""
    import deepspeed  # heavy; imported on the worker only
    import ray.train

    run = RunDir(Path(config["run_dir"]))
    cfg = TrainingConfig(**config["training"])
    model_cfg = ModelConfig(**config["model"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    manifest = read_manifest(run.shards)
    check_tokenizer_matches(manifest, run.tokenizer, run.shards)
    manifest_sha = sha256_file(run.manifest)
    seq_len = manifest["seq_len"]

    precision = resolve_precision(cfg.precision)
    torch.manual_seed(cfg.seed)
    model = GPT(model_cfg, manifest["vocab_size"], seq_len)
    engine, _, _, _ = deepspeed.initialize(
        model=model, model_parameters=param_groups(model, cfg.weight_decay),
        config=deepspeed_config(cfg, world, precision),
        lr_scheduler=partial(make_scheduler, cfg=cfg),  # built on the optimizer DeepSpeed creates
    )
    flops_per_token = training_flops_per_token(model_cfg, manifest["vocab_size"], seq_len)
    train = TrainingData(run.shards, cfg.seed, cfg.verify_shards, rank, world)
    val = TokenRows.open(run.shards, "val", manifest=manifest)
    sampler = train.sampler(rank, world, cfg.micro_batch_size)

    step = 0
    if latest_tag(run.checkpoints):
        _, client = engine.load_checkpoint(str(run.checkpoints))
        step = client["step"]
        restore_position(sampler, client, manifest_sha, run)
        if rank == 0:
            _truncate_metrics(run.metrics, step)
            log.info("resumed from %s at step %d", run.checkpoints / latest_tag(run.checkpoints), step)
    elif rank == 0:
        run.metrics.unlink(missing_ok=True)
        log.info("training a %s-parameter model (%s training FLOPs per token) on %d sequences "
                 "for %d steps in %s", f"{model.num_parameters():,}", f"{flops_per_token:,}",
                 train.stream.epoch_len, cfg.max_steps, precision)

    tokens_per_step = world * cfg.micro_batch_size * cfg.grad_accum_steps * seq_len
    while step < cfg.max_steps:
        t0 = time.perf_counter()
        lr = float(engine.get_lr()[0])  # the rate this step uses; the scheduler advances after it
        losses = []
        for _ in range(cfg.grad_accum_steps):
            x, y, *seg = _to(engine.device, train.gather(*sampler.next_batch(), segments=cfg.document_mask))
            loss = engine(x, y, *seg)  # the model's fused head + loss
            engine.backward(loss)
            engine.step()  # DeepSpeed only updates at the accumulation boundary
            losses.append(loss.item())
        step += 1
        loss_avg = _mean_across_ranks(float(np.mean(losses)))
        if not math.isfinite(loss_avg):
            raise FloatingPointError(f"loss became {loss_avg} at step {step}; lower training.lr")
        grad_norm = engine.get_global_grad_norm()
        record = {
            "step": step, "loss": loss_avg, "lr": lr,
            "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "tokens_per_s": tokens_per_step / (time.perf_counter() - t0),
        }
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            record["val_loss"] = validation_loss(engine, val, cfg, rank, world)
        if rank == 0:
            _append_metrics(run.metrics, record)
            if step % max(1, cfg.max_steps // 20) == 0 or "val_loss" in record:
                log.info("step %d/%d %s", step, cfg.max_steps, " ".join(
                    f"{k} {v:.4g}" for k, v in record.items() if k != "step" and v is not None))
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
            # The data position (one number for all ranks) goes into the checkpoint, with the
            # manifest it indexes, so a resume continues at exactly the next sample.
            position = {**sampler.state_dict(), "manifest_sha256": manifest_sha}
            engine.save_checkpoint(str(run.checkpoints), tag=f"step{step}",
                                   client_state={"step": step, "data": position})
            if rank == 0:
                # Readable without loading the checkpoint, so a mismatch is caught before DeepSpeed.
                write_json(run.train_state, {"step": step, "world_size": world, "data": position})
        if "val_loss" in record:
            ray.train.report({k: v for k, v in record.items() if v is not None})

    if rank == 0:
        # ZeRO stages 0-2 keep whole (bf16) parameters on every rank; stage 3 is refused by config.
        save_model(engine.module, model_cfg, manifest["vocab_size"], seq_len, step, run.checkpoints / FINAL)
        write_json(run.train_summary, {"steps": step, "parameters": model.num_parameters(),
                                       "world_size": world, "tokens_per_step": tokens_per_step,
                                       "precision": precision, "zero_stage": cfg.zero_stage,
                                       "training_flops_per_token": flops_per_token,
                                       "training_flops": flops_per_token * tokens_per_step * step,
                                       "data": data_summary(train, sampler.state_dict()["samples"], manifest)})
    dist.barrier()
