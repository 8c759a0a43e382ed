"""Typed configuration of the training stage: one model, validated before any worker starts.

The DeepSpeed JSON is derived from it in `tasks/training/deepspeed_config.py`; cross-field
checks that need the world size or the cluster (batch vs ranks, precision vs device) are in
`tasks/training/checks.py`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Precision = Literal["auto", "bf16", "fp16", "fp32"]
Device = Literal["auto", "cpu", "cuda"]
Schedule = Literal["cosine", "wsd", "constant"]
Optimizer = Literal["adamw", "muon"]


class BatchRamp(BaseModel):
    """GPT-3's batch-size warm-up: the global batch grows linearly from `start_batch`
    sequences to the full batch over the first `tokens` training tokens."""

    model_config = ConfigDict(extra="forbid")

    start_batch: int = Field(ge=1, description="Global batch (sequences) at step 1.")
    tokens: int = Field(ge=1, description="Training tokens over which the batch reaches its full size.")


class SpikeConfig(BaseModel):
    """Loss-spike and divergence handling (PaLM's recipe: roll back, skip the batches)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True, description="Detect loss spikes and divergence; roll back to the last checkpoint and skip the batches."
    )
    window: int = Field(50, ge=2, description="Recent steps whose losses form the reference.")
    min_history: int = Field(10, ge=2, description="Steps seen before spikes are looked for.")
    factor: float | None = Field(3.0, gt=1, description="Spike: loss above the window mean x this.")
    sigmas: float | None = Field(
        6.0, gt=0, description="Spike: loss above the window mean + this many standard deviations."
    )
    max_rollbacks: int = Field(3, ge=0, description="Roll-backs before the run stops with an error.")


class EvalTask(BaseModel):
    """A benchmark of the evaluation stage scored on the current weights during training."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(
        description="A multiple-choice task of the evaluation stage: arc_easy, arc_challenge, hellaswag, mmlu, "
        "truthfulqa_mc1 or truthfulqa_mc2 (scored 0-shot, cloze)."
    )
    limit: int = Field(20, ge=1, description="Its first N items (MMLU: per subject), scored at every eval point.")

    @field_validator("task")
    @classmethod
    def _known(cls, value: str) -> str:
        from tasks.evaluation.benchmarks import TASKS  # the evaluation stage's tasks: one list of names

        if value not in TASKS:
            raise ValueError(f"unknown eval task {value!r}; the multiple-choice tasks are {', '.join(TASKS)}")
        return value


class MuonConfig(BaseModel):
    """Muon (Keller Jordan's momentum orthogonalised by Newton-Schulz) for the hidden matrices,
    as DeepSpeed's `Muon` optimizer runs it; AdamW (training.lr, betas, eps, weight_decay) keeps
    the embeddings, the output head, the norms and the biases."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(
        0.02, gt=0, description="Peak learning rate of the hidden matrices; the schedule scales it as it scales lr."
    )
    momentum: float = Field(0.95, ge=0, lt=1, description="Momentum of the Muon updates (Nesterov in DeepSpeed).")
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay of the hidden matrices.")
    ns_method: Literal["gram", "standard"] = Field(
        "gram",
        description="DeepSpeed's Newton-Schulz iteration (5 steps): 'gram' iterates on the small Gram matrix "
        "(fewer FLOPs for non-square matrices), 'standard' is the original quintic iteration.",
    )


class ParallelConfig(BaseModel):
    """Model-parallel degrees. Data parallelism is world / (pipeline x tensor)."""

    model_config = ConfigDict(extra="forbid")

    pipeline: int = Field(1, ge=1, description="Pipeline-parallel degree: the layers are cut into this many stages.")
    tensor: int = Field(
        1, ge=1, description="Tensor-parallel degree: each layer's matrices are split over this many ranks."
    )


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Workers and their resources. The device is decided from the cluster's resources, not
    # from the driver's hardware (a CPU-only head node still trains on the workers' GPUs).
    num_workers: int = Field(2, ge=1, description="Ray Train workers (one DeepSpeed rank each).")
    device: Device = Field("auto", description="'auto': cuda when the cluster has a GPU for every worker, else cpu.")
    gpus_per_worker: float = Field(1, gt=0, description="GPUs each worker reserves (cuda only).")
    cpus_per_worker: float = Field(1, gt=0, description="CPUs each worker reserves.")
    parallel: ParallelConfig = Field(
        ParallelConfig(), description="Pipeline and tensor parallelism; the rest of the world is data-parallel."
    )

    # Batch.
    micro_batch_size: int = Field(8, ge=1, description="Sequences per rank per micro-step.")
    grad_accum_steps: int = Field(
        1, ge=1, description="Micro-steps per optimizer step (ignored when global_batch_size is set)."
    )
    global_batch_size: int | None = Field(
        None,
        ge=1,
        description="Sequences per optimizer step over all ranks; the accumulation is "
        "derived from it, so a resume on another number of ranks keeps the same batch.",
    )
    batch_ramp: BatchRamp | None = Field(
        None, description="GPT-3's batch-size warm-up; None: the full batch from the start."
    )

    # Optimizer and schedule.
    max_steps: int = Field(300, ge=1, description="Optimizer steps.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (AdamW).")
    schedule: Schedule = Field(
        "cosine",
        description="'cosine': warm-up then cosine to "
        "min_lr_ratio; 'wsd': warm-up, stable, then linear decay over the "
        "last decay_fraction of the steps; 'constant': warm-up then flat.",
    )
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="The schedule decays to lr x this.")
    warmup_steps: int = Field(30, ge=0, description="Steps of linear learning-rate warm-up.")
    decay_fraction: float = Field(0.2, gt=0, le=1, description="wsd: share of max_steps spent decaying.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay.")
    decay_embeddings: bool = Field(
        False,
        description="Also decay the embeddings (and an output head tied to them), as nanoGPT, Megatron-LM and "
        "the HF Trainer do; false leaves them undecayed, as minGPT does. Biases and norms are never decayed.",
    )
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas.")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    grad_clip: float = Field(1.0, gt=0, description="Clip the global gradient norm to this (AdamW only).")
    optimizer: Optimizer = Field(
        "adamw",
        description="'adamw' for every parameter; 'muon': Muon (training.muon) for the transformer blocks' "
        "matrices and AdamW for the rest. Muon needs ZeRO stage 1-3, no pipeline or tensor parallelism and "
        "min_workers = num_workers; grad_clip does not apply (DeepSpeed would clip the orthogonalised updates).",
    )
    muon: MuonConfig = Field(MuonConfig(), description="Muon's settings, used when optimizer is 'muon'.")
    dropout: float | None = Field(None, ge=0, lt=1, description="Overrides model.dropout when set.")
    z_loss: float = Field(0.0, ge=0, description="Weight of PaLM's z-loss (log Z)^2; 1e-4 is usual.")

    # Memory and speed.
    zero_stage: int = Field(1, ge=0, le=3, description="ZeRO stage 0-3.")
    offload_optimizer: bool = Field(False, description="ZeRO: keep optimizer states in CPU memory.")
    offload_params: bool = Field(False, description="ZeRO-3: keep parameters in CPU memory.")
    precision: Precision = Field(
        "auto",
        description="'auto': bf16 on GPUs and on CPUs that compute it natively (AVX512-BF16/AMX), "
        "else fp32. fp16 uses dynamic loss scaling and needs a GPU.",
    )
    initial_loss_scale_power: int = Field(16, ge=0, le=32, description="fp16: start at 2^this.")
    zero_bucket_size: int = Field(
        50_000_000,
        ge=1_000_000,
        description="ZeRO's reduce and all-gather buckets, in elements. "
        "DeepSpeed's 5e8 lets a bucket grow to a full copy of the gradients of a model below 500M "
        "parameters; Megatron's DDP uses 4e7.",
    )
    activation_checkpointing: bool = Field(False, description="Recompute each block in the backward pass.")
    compile: bool = Field(False, description="torch.compile the model.")

    # Checkpoints.
    checkpoint_every: int = Field(100, ge=1, description="Save a checkpoint every N steps.")
    checkpoint_every_minutes: float | None = Field(
        None, gt=0, description="Also save when this many minutes passed since the last save."
    )
    keep_last: int = Field(2, ge=1, description="Checkpoints kept (plus the best by validation loss).")
    keep_best: bool = Field(True, description="Also keep the checkpoint with the lowest validation loss.")
    stop_grace_s: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="On SIGTERM or Cancel in the Prefect UI, how long the ranks have to finish the step and save "
        "a checkpoint before the command stops them anyway (schedulers send SIGKILL after their own grace).",
    )

    # Validation and metrics.
    eval_every: int = Field(50, ge=1, description="Validation loss every M steps.")
    eval_batches: int = Field(8, ge=1, description="Validation micro-batches per rank.")
    eval_tasks: list[EvalTask] = Field(
        default_factory=list,
        description="Benchmarks scored on the current weights every eval_tasks_every steps and at the last "
        "step, logged as eval/<task>/<metric>; their items come from evaluation.benchmarks_dir. Empty: none.",
    )
    eval_tasks_every: int = Field(50, ge=1, description="Steps between the scorings of eval_tasks.")
    peak_flops: float | None = Field(
        None,
        gt=0,
        description="Peak FLOP/s of one device for MFU; default: the GPU's from a table "
        "of common GPUs (none for CPUs).",
    )
    tensorboard: bool = Field(True, description="Write TensorBoard event files to runs/ID/tensorboard.")

    spike: SpikeConfig = Field(
        SpikeConfig(), description="Loss-spike and divergence handling (PaLM's recipe: roll back, skip the batches)."
    )
    seed: int = Field(
        1234, description="Seed of the weights' initialization, the data order and each rank's random state."
    )
    document_mask: bool = Field(False, description="Keep attention inside each document of a packed sequence.")
    verify_shards: Literal["full", "size"] = Field(
        "full",
        description="At start, check token shards against the manifest: 'full' SHA-256 "
        "(each rank hashes its share of the files) or 'size' and Arrow footer only.",
    )
    max_failures: int = Field(
        1,
        ge=0,
        description="Restarts of the ranks after a rank or its host is lost, each from the newest valid checkpoint.",
    )
    host_wait_s: float = Field(
        300,
        ge=0,
        description="After a lost rank: how long to wait for the cluster "
        "to have room for num_workers ranks again (the host "
        "restarting) before continuing on the ranks that fit.",
    )
    min_workers: int = Field(
        1,
        ge=1,
        description="The fewest ranks a run continues on after losing hosts; "
        "set it to num_workers to wait for the full world forever.",
    )
    init_from_previous: bool = Field(
        False,
        description="Continued pre-training: start from the final model of "
        "previous_run (or a served deployment's newest finished "
        "run) instead of random weights, with its tokenizer; the "
        "optimizer and schedule start over.",
    )
    retries: int = Field(
        1,
        ge=0,
        description="Retries of the training task, with backoff, after a transient "
        "failure that Ray Train's restarts did not absorb (a lost "
        "cluster connection, a timed-out server); each resumes from "
        "the newest valid checkpoint.",
    )

    @model_validator(mode="after")
    def _warmup(self) -> TrainingConfig:
        if self.warmup_steps >= self.max_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be below max_steps ({self.max_steps})")
        if self.min_workers > self.num_workers:
            raise ValueError(f"min_workers ({self.min_workers}) must not exceed num_workers ({self.num_workers})")
        return self

    @model_validator(mode="after")
    def _distinct_eval_tasks(self) -> TrainingConfig:
        names = [t.task for t in self.eval_tasks]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"eval_tasks names {repeated} more than once; keep one entry per task")
        return self


# Keys a resume may change, with the reason each is safe: they do not alter what the
# already-trained steps mean. Everything else in the checkpoint's config must match.
RESUMABLE_CHANGES = {
    "num_workers": "the world size: ZeRO shards are converted (universal checkpoint)",
    "grad_accum_steps": "absorbs a change of world size; the global batch is checked separately",
    "global_batch_size": "only to the checkpoint's own global batch (checked separately), as a run "
    "continuing on fewer ranks sets it",
    "device": "where the ranks run",
    "gpus_per_worker": "resources",
    "cpus_per_worker": "resources",
    "checkpoint_every": "save cadence",
    "checkpoint_every_minutes": "save cadence",
    "keep_last": "retention",
    "keep_best": "retention",
    "stop_grace_s": "how a stop is handled",
    "eval_every": "validation cadence",
    "eval_batches": "validation size",
    "eval_tasks": "benchmarks scored during training: read the weights, change nothing",
    "eval_tasks_every": "benchmark cadence",
    "peak_flops": "MFU reporting",
    "tensorboard": "metrics sinks",
    "verify_shards": "start-up checks",
    "max_failures": "restart budget",
    "retries": "retry budget",
    "spike": "spike policy",
    "host_wait_s": "host-loss policy",
    "min_workers": "host-loss policy",
    "zero_bucket_size": "communication buckets: memory and speed only",
    "activation_checkpointing": "recomputes the same activations: memory and speed only",
    "compile": "the same computation, compiled: speed only",
    "max_steps": "only under schedule 'constant', or 'wsd' while the decay has not begun",
}

# Keys that change how a training runs but not the model it makes: a finished training is
# not redone for them (flows/stages.py leaves them out of the train stage's key).
OPERATIONAL_KEYS = frozenset(
    {
        "device",
        "gpus_per_worker",
        "cpus_per_worker",
        "checkpoint_every",
        "checkpoint_every_minutes",
        "keep_last",
        "keep_best",
        "stop_grace_s",
        "eval_every",
        "eval_batches",
        "eval_tasks",
        "eval_tasks_every",
        "peak_flops",
        "tensorboard",
        "verify_shards",
        "max_failures",
        "retries",
        "zero_bucket_size",
        "activation_checkpointing",
        "compile",
        "host_wait_s",
        "min_workers",
    }
)
