"""Which parameters each optimizer group holds (tasks/training/engine.py:param_groups): weight
decay on matrices only, embeddings by setting, and Muon's hidden matrices apart; and, on a real
DeepSpeed engine, that Muon is what moves the hidden matrices."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from models.config import ModelConfig
from models.gpt import GPT
from tasks.training.config import TrainingConfig
from tasks.training.engine import param_groups

HIDDEN = {f"blocks.{i}.{m}.weight" for i in range(2) for m in ("attn.qkv", "attn.proj", "mlp.up", "mlp.down")}
NORMS_AND_BIASES = {
    *(f"blocks.{i}.{m}.{p}" for i in range(2) for m in ("ln1", "ln2") for p in ("weight", "bias")),
    *(f"blocks.{i}.{m}.bias" for i in range(2) for m in ("attn.qkv", "attn.proj", "mlp.up", "mlp.down")),
    "ln_f.weight",
    "ln_f.bias",
}


def _named_groups(tie: bool, **training) -> tuple[list[dict], list[set[str]]]:
    model = GPT(ModelConfig(n_layer=2, n_head=2, d_model=16, tie_embeddings=tie), vocab_size=64, seq_len=8)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups(model, TrainingConfig(weight_decay=0.1, **training))
    assert sum(len(g["params"]) for g in groups) == len(names)  # every parameter, once
    return groups, [{names[id(p)] for p in g["params"]} for g in groups]


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("decay_embeddings", [False, True])
def test_adamw_decays_matrices_and_the_embeddings_only_when_asked(tie, decay_embeddings):
    groups, (decay, no_decay) = _named_groups(tie, decay_embeddings=decay_embeddings)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    embeddings = {"tok_emb.weight", "pos_emb.weight"}  # a tied head is tok_emb's parameter
    head = set() if tie else {"head.weight"}  # an untied head is a matrix like any other
    assert decay == HIDDEN | head | (embeddings if decay_embeddings else set())
    assert no_decay == NORMS_AND_BIASES | (set() if decay_embeddings else embeddings)


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("decay_embeddings", [False, True])
def test_muon_takes_the_blocks_matrices_and_adamw_the_embeddings_head_norms_and_biases(tie, decay_embeddings):
    groups, (decay, no_decay, muon) = _named_groups(
        tie, decay_embeddings=decay_embeddings, optimizer="muon", muon={"weight_decay": 0.01}
    )
    assert muon == HIDDEN and groups[2]["use_muon"] and groups[2]["weight_decay"] == 0.01
    assert not any(g.get("use_muon") for g in groups[:2]) and [g["weight_decay"] for g in groups[:2]] == [0.1, 0.0]
    embeddings = {"tok_emb.weight", "pos_emb.weight"}
    assert decay == (set() if tie else {"head.weight"}) | (embeddings if decay_embeddings else set())
    assert no_decay == NORMS_AND_BIASES | (set() if decay_embeddings else embeddings)


def test_zero3_flat_parameters_are_grouped_by_their_layer_shape():
    model = GPT(ModelConfig(n_layer=2, n_head=2, d_model=16), vocab_size=64, seq_len=8)
    for p in model.parameters():  # as deepspeed.zero.Init leaves them: flat, the shape in ds_shape
        p.ds_shape = p.shape
        p.data = torch.empty(0)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups(model, TrainingConfig(optimizer="muon"))
    assert {names[id(p)] for p in groups[2]["params"]} == HIDDEN


ONE_MUON_STEP = r"""
import copy, json, os, socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
import torch, torch.distributed as dist
dist.init_process_group("gloo")
from deepspeed.runtime.zero.muon.original_muon import muon_update
from models.config import ModelConfig
from tasks.training.config import TrainingConfig
from tasks.training.deepspeed_config import deepspeed_config
from tasks.training.engine import build_engine, build_model, skip_unused_cpu_ops
skip_unused_cpu_ops("cpu")
cfg = TrainingConfig(optimizer="muon", zero_stage=1, num_workers=1, micro_batch_size=4, max_steps=10,
                     warmup_steps=0, lr=1e-3, weight_decay=0.0, muon={"lr": 0.02})
ds = deepspeed_config(cfg, 1, "fp32", "cpu", 1)
model = build_model(ModelConfig(n_layer=1, n_head=2, d_model=32, tie_embeddings=False), cfg, 64, 16, ds, 0)
ref = copy.deepcopy(model)  # the same weights in plain torch: the gradient each update starts from
ids = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(0))
ref(ids, ids).backward()
engine = build_engine(model, cfg, ds)
engine.set_gradient_accumulation_boundary(True)
engine.backward(engine(ids, ids))
engine.step()  # the first step runs at the peak rates (no warm-up)
out = {}
for (name, p), r in zip(model.named_parameters(), ref.parameters()):
    delta = p.detach() - r.detach()
    g = r.grad
    muon = -0.02 * muon_update(g.clone(), torch.zeros_like(g), beta=0.95, ns_method="gram") if g.ndim == 2 else None
    out[name] = {
        "use_muon": p.use_muon,
        "muon_err": float((delta - muon).abs().max() / muon.abs().max()) if muon is not None else None,
        "adam_max": float(delta.abs().max()),  # AdamW's first step moves every entry by at most its lr
    }
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.integration
def test_muon_moves_the_hidden_matrices_and_adamw_the_embeddings_and_head():
    done = subprocess.run([sys.executable, "-c", ONE_MUON_STEP], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight", "blocks.0.mlp.up.weight"):
        # Exactly lr x DeepSpeed's orthogonalised update of the gradient; AdamW's step would be
        # bounded by its 1e-3 per entry.
        assert out[name]["use_muon"] and out[name]["muon_err"] < 1e-4, (name, out[name])
        assert out[name]["adam_max"] > 5e-3, (name, out[name])
    for name in ("tok_emb.weight", "pos_emb.weight", "head.weight", "blocks.0.ln1.weight", "blocks.0.mlp.up.bias"):
        assert not out[name]["use_muon"] and out[name]["adam_max"] <= 1.001e-3, (name, out[name])
        if out[name]["muon_err"] is not None:  # the 2-D ones: not what Muon would have done
            assert out[name]["muon_err"] > 0.5, (name, out[name])
