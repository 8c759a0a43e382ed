"""Every engine configuration records the gradient norm, so the spike detector sees a NaN or
Inf gradient at once: DeepSpeed's fp32 engine without ZeRO (what one rank uses) computed the
norm to clip by and threw it away, leaving grad_norm null on every step."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ONE_RANK = r"""
import json, math, os, socket, sys
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
import torch, torch.distributed as dist
dist.init_process_group("gloo")
from models.config import ModelConfig
from tasks.training.config import TrainingConfig
from tasks.training.deepspeed_config import deepspeed_config
from tasks.training.engine import build_engine, build_model, skip_unused_cpu_ops
from tasks.training.spikes import SpikeDetector
skip_unused_cpu_ops("cpu")
precision, zero = sys.argv[1], int(sys.argv[2])
cfg = TrainingConfig(zero_stage=zero, micro_batch_size=2, max_steps=10, warmup_steps=1, grad_clip=1e9)
model_cfg = ModelConfig(n_layer=1, n_head=2, d_model=16)
ds = deepspeed_config(cfg, 1, precision, "cpu", 1)
import copy
model = build_model(model_cfg, cfg, 64, 8, ds, 0)
ref = copy.deepcopy(model)  # the same weights in plain torch: the norm to expect
engine = build_engine(model, cfg, ds)
ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
ref(ids, ids).backward()
norm = torch.norm(torch.stack([p.grad.norm() for p in ref.parameters() if p.grad is not None]))
out = {}
engine.set_gradient_accumulation_boundary(True)
loss = engine(ids, ids)
engine.backward(loss)
engine.step()
out["norm"], out["expected"] = float(engine.get_global_grad_norm()), float(norm)
first = next(engine.module.parameters())
first.register_hook(lambda g: torch.full_like(g, float("nan")))  # a batch whose gradient is NaN
loss = engine(ids, ids)
out["loss_is_finite"] = math.isfinite(float(loss))
engine.backward(loss)
engine.step()
out["nan_norm"] = float(engine.get_global_grad_norm())
out["verdict"] = SpikeDetector(cfg.spike).check(float(loss), out["nan_norm"])
print(json.dumps(out))
"""


@pytest.mark.parametrize("precision, zero", [("fp32", 0), ("fp32", 1)])
def test_the_gradient_norm_is_recorded_and_a_nan_gradient_is_seen(precision, zero):
    done = subprocess.run([sys.executable, "-c", ONE_RANK, precision, str(zero)], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["norm"] == pytest.approx(out["expected"], rel=1e-4) and out["norm"] > 0
    assert out["loss_is_finite"]  # the loss alone would not have told
    assert out["verdict"] in ("gradient norm is nan", "gradient norm is inf")  # ZeRO reports overflow as inf
