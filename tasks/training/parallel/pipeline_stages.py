"""Pipeline stages built from the model's own modules: DeepSpeed's PipelineModule over
LayerSpecs that wrap the single-device GPT's embedding, blocks and final norm.

The model is built whole on every rank (the seeded initialisation then equals a 1-rank
run's, weight for weight), tensor-sharded if asked, and each LayerSpec hands its module
to the stage that owns it; the specs then let go of the whole model, so each rank keeps only
its stage (building it whole still takes the whole model's host memory once, at start). The layer list:

    embed (tied)  block 0 ... block L-1  final norm  [embed again (tied), last stage]

With tied embeddings the first and last stages each hold a copy of the token embedding;
DeepSpeed keeps them identical (one broadcast at start, the two gradients summed every
step), and the loss reads the last stage's copy as the output head, through the same
fused head + cross-entropy as the single-device model. Stages split the blocks evenly
(`partition_method="type:BlockPipe"`): the embedding joins the first, the norm the last.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from models.fused_loss import linear_cross_entropy
from models.gpt import GPT, Block, document_mask

TIED = "embed"


class EmbeddingPipe(nn.Module):
    """The GPT's token and position embeddings as a pipeline layer: ids -> hidden states."""

    def __init__(self, model: GPT):
        super().__init__()
        self.cfg, self.seq_len = model.cfg, model.seq_len
        self.tok_emb, self.drop = model.tok_emb, model.drop
        if hasattr(model, "pos_emb"):
            self.pos_emb = model.pos_emb
        if hasattr(model, "pos_table"):
            self.register_buffer("pos_table", model.pos_table, persistent=False)
        # Parameter names in the single-device model, for the final weights.
        self.gpt_names = {"tok_emb.weight": "tok_emb.weight", "pos_emb.weight": "pos_emb.weight"}

    def forward(self, inputs):
        idx, *segments = inputs if isinstance(inputs, tuple) else (inputs,)
        # The model's own embedding code, run on this module's copies of its attributes.
        x = GPT.embed(self, idx)  # type: ignore[arg-type]  # duck-typed: it reads only attributes copied here
        return (x, *segments) if segments else x


class BlockPipe(nn.Module):
    """One transformer block; passes the document segments on when the rows are masked."""

    def __init__(self, block: Block, index: int):
        super().__init__()
        self.block = block
        self.gpt_names = {f"block.{n}": f"blocks.{index}.{n}" for n, _ in block.named_parameters()}

    def forward(self, inputs):
        if isinstance(inputs, tuple):
            x, segments = inputs
            return self.block(x, mask=document_mask(segments)), segments
        return self.block(inputs)


class FinalNormPipe(nn.Module):
    """The final norm (and, untied, the output head, applied by the loss)."""

    def __init__(self, model: GPT):
        super().__init__()
        self.ln_f = model.ln_f
        self.head = None if model.cfg.tie_embeddings else model.head
        self.gpt_names = {f"ln_f.{n}": f"ln_f.{n}" for n, _ in model.ln_f.named_parameters()}
        if self.head is not None:
            self.gpt_names["head.weight"] = "head.weight"

    def forward(self, inputs):
        x = inputs[0] if isinstance(inputs, tuple) else inputs
        return self.ln_f(x)


def _passthrough(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x  # the tied embedding's second use is as the head, inside the loss


class HeadLoss:
    """loss_fn of the last stage: the fused output head + cross-entropy of models/."""

    def __init__(self, z_loss: float):
        self.z_loss = z_loss
        self.weight: torch.Tensor | None = None  # set once the stage's modules exist

    def __call__(self, hidden: torch.Tensor, targets: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        assert self.weight is not None  # build_pipeline sets it on the last stage, the only one with a loss
        if isinstance(targets, tuple):
            # Fault injection (loop.Faults.poison_samples): the labels of a poisoned micro-batch
            # come with a factor for its loss, and so its gradients, as a corrupt batch's would.
            labels, factor = targets
            loss = linear_cross_entropy(hidden, self.weight, labels, z_loss=self.z_loss)
            return loss * factor.to(loss.dtype)
        return linear_cross_entropy(hidden, self.weight, targets, z_loss=self.z_loss)


def build_pipeline(model: GPT, topology: Any, z_loss: float, activation_checkpointing: bool):
    """The PipelineModule of `model` (already tensor-sharded when T > 1) for `topology`."""
    from deepspeed.pipe import LayerSpec, PipelineModule, TiedLayerSpec

    tied = model.cfg.tie_embeddings
    embed = (
        TiedLayerSpec(TIED, EmbeddingPipe, model, tied_weight_attr=["tok_emb.weight"])
        if tied
        else LayerSpec(EmbeddingPipe, model)
    )
    layers = [embed, *(LayerSpec(BlockPipe, b, i) for i, b in enumerate(model.blocks)), LayerSpec(FinalNormPipe, model)]
    if tied:
        layers.append(
            TiedLayerSpec(TIED, EmbeddingPipe, model, forward_fn=_passthrough, tied_weight_attr=["tok_emb.weight"])
        )
    loss = HeadLoss(z_loss)
    # dynamic_shape: stages re-send the activations' shape with each micro-batch (a few
    # bytes), because validation's last micro-batch and the export probe are smaller than a
    # training micro-batch, and a stale cached shape would hang the receiving stage.
    # checkpointable_layers: only blocks are recomputed. DeepSpeed's default would also wrap
    # the embedding, whose integer input needs no gradient, so its reentrant checkpoint would
    # cut every gradient of the first stage off.
    pipe = PipelineModule(
        layers=layers,
        topology=topology,
        loss_fn=loss,
        partition_method="type:BlockPipe",
        activation_checkpoint_interval=1 if activation_checkpointing else 0,
        checkpointable_layers=["BlockPipe"],
        dynamic_shape=True,
    )
    for spec in pipe._layer_specs:
        # The specs hold the whole model as constructor arguments; DeepSpeed reads them only
        # while partitioning, so dropping them frees the other stages' layers on this rank.
        spec.module_args, spec.module_kwargs = (), {}
    if pipe._grid.is_last_stage:
        if tied:
            loss.weight = pipe.tied_modules[TIED].tok_emb.weight
        else:
            head = next(m for m in pipe.forward_funcs if isinstance(m, FinalNormPipe)).head
            assert head is not None  # untied: the final norm's stage holds the head
            loss.weight = head.weight
    return pipe


def local_layers(pipe: Any) -> list[EmbeddingPipe | BlockPipe | FinalNormPipe]:
    """This stage's layer modules (each with `gpt_names`), tied ones included once."""
    seen: set[int] = set()
    out: list[EmbeddingPipe | BlockPipe | FinalNormPipe] = []
    for m in [*pipe.forward_funcs, *getattr(pipe, "tied_modules", {}).values()]:
        if isinstance(m, (EmbeddingPipe, BlockPipe, FinalNormPipe)) and id(m) not in seen:
            seen.add(id(m))
            out.append(m)
    return out
