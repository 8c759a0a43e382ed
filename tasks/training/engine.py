"""The DeepSpeed engine around the single-device model: ZeRO-3 construction, the seeded
initialisation, activation checkpointing and compilation. Nothing here knows of Ray."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import torch

from models.config import ModelConfig
from models.gpt import GPT, Block
from tasks.training.config import TrainingConfig
from tasks.training.schedule import make_scheduler


def skip_unused_cpu_ops(device: str) -> None:
    """On CPU, keep DeepSpeed from compiling its shared-memory all-reduce op (one to three
    minutes of g++ at the first start on each machine). That op serves only
    `inference_all_reduce`, DeepSpeed's inference tensor parallelism, which training never
    calls: gradients and every collective here go through torch.distributed over gloo."""
    if device != "cpu":
        return
    import deepspeed.ops

    compatible = getattr(deepspeed.ops, "__compatible_ops__", None)  # probed once, read by the op loader
    if isinstance(compatible, dict):
        compatible["deepspeed_shm_comm"] = False


def param_groups(model: torch.nn.Module, cfg: TrainingConfig) -> list[dict[str, Any]]:
    """The optimizer's groups: AdamW decays matrices, never biases or norms, and the embeddings
    (with a head tied to them) only under training.decay_embeddings. Under Muon the transformer
    blocks' matrices form a last group of their own, marked `use_muon`; the embeddings and the
    output head stay on AdamW (modded-nanogpt's and nanochat's split)."""
    hidden = hidden_matrices(model) if cfg.optimizer == "muon" else set()
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    muon: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if id(p) in hidden:
            muon.append(p)
            continue
        matrix = len(getattr(p, "ds_shape", p.shape)) >= 2  # ZeRO-3 parameters are stored flat
        embedding = "emb" in name  # a tied head is the embedding's parameter, listed under its name
        (decay if matrix and (cfg.decay_embeddings or not embedding) else no_decay).append(p)
    # AdamW's groups first: the loop logs the first group's rate as `lr`.
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "muon":
        groups.append({"params": muon, "weight_decay": cfg.muon.weight_decay, "use_muon": True})
    return groups


def hidden_matrices(model: torch.nn.Module) -> set[int]:
    """The ids of the transformer blocks' matrices (attention and MLP): Muon's parameters."""
    return {
        id(p)
        for m in model.modules()
        if isinstance(m, Block)
        for p in m.parameters()
        if len(getattr(p, "ds_shape", p.shape)) >= 2
    }


def _muon_tagged(groups: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """`groups` with each parameter's `use_muon` set from its group, as they are read.

    deepspeed.initialize marks `use_muon` itself before building the engine, by name: every
    matrix whose name lacks "embed" and "lm_head", which here would put tok_emb, pos_emb and
    an untied head on Muon. The engine reads a generator only when it builds the optimizer,
    after that marking, so the marks set here are the ones its Muon and ZeRO code see."""
    for g in groups:
        for p in g["params"]:
            p.use_muon = g.get("use_muon", False)
        yield {k: v for k, v in g.items() if k != "use_muon"}


def build_model(
    model_cfg: ModelConfig,
    cfg: TrainingConfig,
    vocab_size: int,
    seq_len: int,
    ds_config: dict[str, Any],
    rank: int,
    device: str = "cpu",
    initial: dict[str, torch.Tensor] | None = None,
) -> GPT:
    """The model with the run's seeded initialisation (or the `initial` weights of an earlier
    model: continued pre-training), partitioned at construction under ZeRO-3.

    Every path sets the weights one parameter at a time, so a ZeRO-3 run (where rank 0 sets
    each gathered parameter and the others receive it) starts from exactly the weights of a
    1-rank run.
    """
    import deepspeed

    if cfg.dropout is not None:
        model_cfg = model_cfg.model_copy(update={"dropout": cfg.dropout})
    zero3 = cfg.zero_stage == 3
    if zero3:
        # zero.Init reads the world from DeepSpeed's own communicator: wrap the caller's
        # process group in it first (deepspeed.initialize would do it only later).
        deepspeed.init_distributed(dist_backend="nccl" if device == "cuda" else "gloo")
        # Parameters are partitioned as each module is built, so no rank ever holds the whole
        # model: the way to train a model larger than one rank's memory.
        with deepspeed.zero.Init(config_dict_or_path=ds_config):
            model = GPT(model_cfg, vocab_size, seq_len)
    else:
        model = GPT(model_cfg, vocab_size, seq_len)
    torch.manual_seed(cfg.seed)

    def set_weights(name: str, p: torch.nn.Parameter) -> None:
        if initial is None:
            model.init_parameter(name, p)
        else:
            with torch.no_grad():
                p.copy_(initial[name].to(p.dtype))

    for name, p in model.named_parameters():
        if zero3:
            with deepspeed.zero.GatheredParameters([p], modifier_rank=0):
                if rank == 0:
                    set_weights(name, p)
        else:
            set_weights(name, p)
    if zero3:
        # The fused loss reads the head's (tied) weight outside the head's own forward.
        deepspeed.zero.register_external_parameter(model, model.head.weight)
    model.checkpoint_activations = cfg.activation_checkpointing
    return model


def build_engine(model: GPT, cfg: TrainingConfig, ds_config: dict[str, Any]):
    import deepspeed

    groups = param_groups(model, cfg)
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=_muon_tagged(groups) if cfg.optimizer == "muon" else groups,
        config=ds_config,
        # Built on the optimizer DeepSpeed creates: one multiplier for every group, so AdamW's
        # and Muon's rates warm up and decay together.
        lr_scheduler=partial(make_scheduler, cfg=cfg),
    )
    if cfg.optimizer == "muon":
        muon = {id(p) for g in groups if g.get("use_muon") for p in g["params"]}
        wrong = [n for n, p in model.named_parameters() if getattr(p, "use_muon", None) != (id(p) in muon)]
        if wrong:  # this DeepSpeed read the parameters before marking them: the halves are its own
            raise RuntimeError(f"DeepSpeed put {wrong} in the wrong half of Muon (engine.py:_muon_tagged)")
    if cfg.zero_stage == 0 and engine.dp_world_size == 1:
        # One rank has nothing to all-reduce, but DeepSpeed would still copy every gradient
        # into its buckets and back (measured: backward 1.45 s -> 1.95 s for GPT-2 124M on CPU).
        engine.enable_backward_allreduce = False
    keep_clip_norm(engine)
    if cfg.compile:
        engine.compile()
    return engine


def keep_clip_norm(engine: Any) -> None:
    """Record the gradient norm where DeepSpeed computes it and throws it away: an fp32 engine
    without ZeRO clips by `clip_grad_norm_` but keeps no norm, so `get_global_grad_norm()`
    was None on every step and a NaN or Inf gradient went unseen by the spike detector until
    it reached the loss. Gradients are all-reduced before the step, so the norm is the same
    on every rank (the model-parallel `mpu`, if any, is passed on as DeepSpeed does)."""
    if engine.fp16_enabled() or engine.bfloat16_enabled() or engine.zero_optimization():
        return  # their optimizers keep the norm themselves
    from deepspeed.runtime.utils import clip_grad_norm_

    def clip_and_keep() -> None:
        engine._global_grad_norm = clip_grad_norm_(
            parameters=engine.module.parameters(), max_norm=engine.gradient_clipping(), mpu=engine.mpu
        )

    engine.clip_fp32_gradients = clip_and_keep
