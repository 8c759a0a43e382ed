"""Which (pipeline, tensor, data) layout to train a model with on a given cluster: the
memory of every candidate per GPU, an estimate of its step time, and the fastest that fits.

Memory per GPU, bf16 mixed precision with Adam (ZeRO paper, Rajbhandari et al. 2020):
  - model states: 2 bytes of weights + 2 of gradients + 12 of optimizer (fp32 master, m,
    v) per parameter the GPU holds. ZeRO-1 divides the 12 by the data-parallel degree,
    ZeRO-2 also the gradients, ZeRO-3 everything. A GPU holds 1/T of its stage's blocks;
    here (tasks/training/parallel/tensor.py) the embedding and the head stay whole on
    every tensor rank of the first and last stage.
  - activations (Korthikanti et al. 2022, tensor-parallel without sequence parallelism, and
    without the s x s score term, which fused attention kernels do not store):
    s*b*h*(10 + 24/T) bytes per layer and micro-batch; with full recomputation only each
    layer's input, 2*s*b*h, plus one layer's working set. Under the 1F1B schedule the
    first stage holds min(P, m) micro-batches for its L/P layers.
  - a fixed reserve for the CUDA context, NCCL and ZeRO's buckets.

Step time: the step's FLOPs over every GPU at a fixed share of peak (x 4/3 when recomputing),
stretched by the pipeline bubble (P - 1)/m (Narayanan et al. 2021), plus the tensor-parallel
all-reduces (4 per layer and micro-batch, 6 recomputing), the stages' point-to-point sends and
the data-parallel gradient reduction, at NVLink speed inside a node and the network's
between nodes, none of it assumed overlapped with compute. It is an estimate for ranking
layouts, not a prediction of wall-clock time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from models.config import ModelConfig
from models.flops import parameter_count, training_flops_per_token

GB = 1e9
STATE_BYTES = {"weights": 2, "grads": 2, "optimizer": 12}  # per parameter, bf16 + Adam
RESERVE_BYTES = 3 * GB
COMPUTE_SHARE = 0.75  # of peak FLOP/s that large matrix products reach when nothing waits


@dataclass(frozen=True)
class Cluster:
    gpus: int
    memory_gb: float
    gpus_per_node: int = 8
    peak_flops: float = 312e12  # dense bf16 per GPU (A100)
    nvlink_bytes_s: float = 300e9  # per GPU, one direction (A100 NVLink 3)
    network_bytes_s: float = 25e9  # per GPU between nodes (one 200 Gb/s HDR link each)


FABRICS = {  # name: (peak bf16 FLOP/s, NVLink B/s per direction, network B/s per GPU)
    "A100": (312e12, 300e9, 25e9),
    "H100": (989e12, 450e9, 50e9),
}


def cluster(gpus: int, memory_gb: float, gpu: str = "A100", gpus_per_node: int = 8) -> Cluster:
    if gpu not in FABRICS:
        raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(FABRICS)}")
    peak, nvlink, net = FABRICS[gpu]
    return Cluster(gpus, memory_gb, gpus_per_node, peak, nvlink, net)


@dataclass(frozen=True)
class Shape:
    model: ModelConfig
    vocab_size: int
    seq_len: int

    @property
    def parameters(self) -> int:
        return parameter_count(self.model, self.vocab_size, self.seq_len)

    @property
    def embedding(self) -> int:
        """Parameters of the embedding (and of the untied head): whole on each tensor rank."""
        d = self.model.d_model
        return self.vocab_size * d + (self.seq_len * d if self.model.position == "learned" else 0)

    @property
    def per_layer(self) -> float:
        return (self.parameters - self.embedding - self._head) / self.model.n_layer

    @property
    def _head(self) -> int:
        return 0 if self.model.tie_embeddings else self.vocab_size * self.model.d_model


def shape_for_parameters(params: float, vocab_size: int = 50257, seq_len: int = 2048) -> Shape:
    """A GPT-3-like shape of about `params` parameters, for a bare count: d_model = 128 x
    layers and 128-wide heads, the ratio of GPT-3's 6.7B to 175B shapes; layers rounded to
    a multiple of 8 so that pipelines of 2, 4 and 8 stages divide them."""
    layers = max(8, round((params / (12 * 128**2)) ** (1 / 3) / 8) * 8)
    return Shape(ModelConfig(n_layer=layers, n_head=layers, d_model=128 * layers), vocab_size, seq_len)


def default_global_batch(seq_len: int) -> int:
    """About 4M tokens per step (Llama 2's batch), in whole sequences: a power of two."""
    return 1 << max(0, round(4 * 2**20 / seq_len).bit_length() - 1)


def model_state_bytes(params: float, dp: int, zero: int) -> dict[str, float]:
    """Bytes per GPU of weights, gradients and optimizer states for `params` parameters
    replicated over `dp` data-parallel ranks under ZeRO stage `zero`."""
    w, g, o = (params * STATE_BYTES[k] for k in ("weights", "grads", "optimizer"))
    return {
        "weights": w / dp if zero >= 3 else w,
        "grads": g / dp if zero >= 2 else g,
        "optimizer": o / dp if zero >= 1 else o,
    }


@dataclass(frozen=True)
class Candidate:
    pipeline: int
    tensor: int
    data: int
    zero: int
    micro_batch: int
    recompute: bool
    memory: dict[str, float] = field(default_factory=dict, compare=False)
    step_s: float = 0.0
    parts_s: dict[str, float] = field(default_factory=dict, compare=False)
    mfu: float = 0.0

    @property
    def total_memory(self) -> float:
        return sum(self.memory.values())

    def label(self) -> str:
        return (
            f"P={self.pipeline} T={self.tensor} DP={self.data} ZeRO-{self.zero} micro={self.micro_batch}"
            f"{' recompute' if self.recompute else ''}"
        )


def _stage_params(shape: Shape, p: int, t: int) -> float:
    """Parameters on the fullest GPU: its blocks' 1/T share plus the whole embedding (first
    stage) or head (last stage; tied: a copy of the embedding)."""
    blocks = shape.model.n_layer // p * shape.per_layer / t
    ends = shape.embedding if p > 1 else shape.embedding + shape._head
    if p > 1 and not shape.model.tie_embeddings:
        ends = max(shape.embedding, shape._head)
    return blocks + ends


def _activation_bytes(shape: Shape, c: Candidate, micro_batches: int) -> float:
    s, h, b = shape.seq_len, shape.model.d_model, c.micro_batch
    layers = shape.model.n_layer // c.pipeline
    full_layer = s * b * h * (10 + 24 / c.tensor)
    in_flight = min(c.pipeline, micro_batches)
    if c.recompute:
        return layers * in_flight * 2 * s * b * h + full_layer
    return layers * in_flight * full_layer


def _allreduce_s(nbytes: float, ranks: int, bandwidth: float) -> float:
    return 0.0 if ranks == 1 else 2 * (ranks - 1) / ranks * nbytes / bandwidth


def evaluate(shape: Shape, cl: Cluster, c: Candidate, global_batch: int) -> Candidate:
    """`c` with its memory per GPU and estimated step time filled in."""
    m = global_batch // (c.data * c.micro_batch)  # micro-batches per pipeline per step
    params = _stage_params(shape, c.pipeline, c.tensor)
    memory = {
        **model_state_bytes(params, c.data, c.zero),
        "activations": _activation_bytes(shape, c, m),
        "reserve": RESERVE_BYTES,
    }
    tokens = global_batch * shape.seq_len
    flops = training_flops_per_token(shape.model, shape.vocab_size, shape.seq_len) * tokens
    compute = flops * (4 / 3 if c.recompute else 1) / (cl.gpus * cl.peak_flops * COMPUTE_SHARE)
    bubble = compute * (c.pipeline - 1) / m
    act = shape.seq_len * c.micro_batch * shape.model.d_model * 2  # one bf16 activation tensor
    intra = c.tensor <= cl.gpus_per_node and cl.gpus_per_node % c.tensor == 0  # a group never straddles nodes
    tp_bw = cl.nvlink_bytes_s if intra else cl.network_bytes_s
    per_layer = 6 if c.recompute else 4
    tp = _allreduce_s(act, c.tensor, tp_bw) * per_layer * (shape.model.n_layer // c.pipeline) * m
    # Stages talk over NVLink only when the whole job fits in one node (pessimistic: a stage
    # smaller than a node may have its neighbour on the same node).
    p2p_bw = cl.nvlink_bytes_s if c.tensor * c.data * c.pipeline <= cl.gpus_per_node else cl.network_bytes_s
    p2p = 0.0 if c.pipeline == 1 else 2 * m * act / p2p_bw
    dp_bw = cl.nvlink_bytes_s if c.tensor * c.data <= cl.gpus_per_node else cl.network_bytes_s
    dp = _allreduce_s(params * 2, c.data, dp_bw) * (1.5 if c.zero == 3 else 1.0)
    parts = {"compute": compute, "bubble": bubble, "tensor_comm": tp, "pipeline_comm": p2p, "data_comm": dp}
    step = sum(parts.values())
    return replace(c, memory=memory, step_s=step, parts_s=parts, mfu=flops / (cl.gpus * cl.peak_flops * step))


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def candidates(shape: Shape, cl: Cluster, global_batch: int) -> list[Candidate]:
    """Every layout this trainer can run (checks.py's rules), evaluated."""
    cfg = shape.model
    out: list[Candidate] = []
    tensors = [t for t in _divisors(cfg.n_head) if cfg.kv_heads % t == 0 and cfg.mlp_hidden % t == 0]
    for p in _divisors(cfg.n_layer):
        for t in tensors:
            if cl.gpus % (p * t):
                continue
            d = cl.gpus // (p * t)
            for zero in (1,) if p * t > 1 else (1, 2, 3):
                for micro in (1, 2, 4, 8):
                    if global_batch % (d * micro):
                        continue
                    out.extend(
                        evaluate(shape, cl, Candidate(p, t, d, zero, micro, recompute), global_batch)
                        for recompute in (False, True)
                    )
    return out


@dataclass
class LayoutPlan:
    shape: Shape
    cluster: Cluster
    global_batch: int
    fits: list[Candidate]  # fastest first
    too_big: list[Candidate]  # smallest memory first

    @property
    def best(self) -> Candidate | None:
        return self.fits[0] if self.fits else None


def plan_layout(shape: Shape, cl: Cluster, global_batch: int) -> LayoutPlan:
    every = candidates(shape, cl, global_batch)
    budget = cl.memory_gb * GB
    fits = sorted((c for c in every if c.total_memory <= budget), key=lambda c: (c.step_s, c.total_memory))
    too_big = sorted((c for c in every if c.total_memory > budget), key=lambda c: c.total_memory)
    return LayoutPlan(shape, cl, global_batch, fits, too_big)


def _gb(x: float) -> str:
    return f"{x / GB:,.1f} GB"


def _memory_line(c: Candidate) -> str:
    m = c.memory
    return (
        f"{_gb(c.total_memory)} = weights {_gb(m['weights'])} + gradients {_gb(m['grads'])} + optimizer "
        f"{_gb(m['optimizer'])} + activations {_gb(m['activations'])} + reserve {_gb(m['reserve'])}"
    )


def reasons(plan: LayoutPlan, c: Candidate) -> list[str]:
    """Why `c` is the pick: what it fits in, and where its step time goes."""
    cl, parts = plan.cluster, c.parts_s
    out = [f"fits in {cl.memory_gb:g} GB: {_memory_line(c)}"]
    if c.tensor > 1:
        where = (
            "inside one node (NVLink)"
            if c.tensor <= cl.gpus_per_node and cl.gpus_per_node % c.tensor == 0
            else "across nodes (slow: the network)"
        )
        out.append(f"T={c.tensor}: each block's attention heads and MLP split {c.tensor} ways, all-reduces {where}")
    if c.pipeline > 1:
        m = plan.global_batch // (c.data * c.micro_batch)
        out.append(
            f"P={c.pipeline}: {plan.shape.model.n_layer // c.pipeline} blocks per stage; bubble "
            f"(P-1)/m = {c.pipeline - 1}/{m} = {(c.pipeline - 1) / m:.1%} of compute"
        )
    if c.recompute:
        out.append(
            "activation checkpointing on: recomputing each block costs 1/3 more compute but saves the "
            "activations that would not fit otherwise"
        )
    total = c.step_s
    out.append(
        "estimated step "
        + ", ".join(f"{k.replace('_', ' ')} {v / total:.0%}" for k, v in parts.items() if v)
        + f"; model-FLOPs utilisation ~{c.mfu:.0%}"
    )
    return out


def describe_layout(plan: LayoutPlan, runners_up: int = 4) -> str:
    shape, cl = plan.shape, plan.cluster
    n = shape.parameters
    states = model_state_bytes(n, 1, 0)
    lines = [
        f"{n / 1e9:,.1f}B parameters on {cl.gpus} GPUs of {cl.memory_gb:g} GB ({cl.gpus_per_node} per node), "
        f"global batch {plan.global_batch} x {shape.seq_len} tokens",
        f"  whole model: bf16 weights {_gb(states['weights'])}; with gradients and Adam states "
        f"{_gb(sum(states.values()))} (16 bytes per parameter) before activations",
    ]
    if plan.best is None:
        smallest = plan.too_big[0] if plan.too_big else None
        lines.append(
            "no layout fits"
            + (
                f": the smallest, {smallest.label()}, needs {_memory_line(smallest)}"
                if smallest
                else " (no layout divides the GPUs and the batch)"
            )
        )
        lines.append("  add GPUs, use GPUs with more memory, or a smaller global batch or model")
        return "\n".join(lines)
    best = plan.best
    lines += [
        "",
        f"recommended: {best.label()}",
        f"  training.parallel.pipeline={best.pipeline} training.parallel.tensor={best.tensor} "
        f"training.num_workers={cl.gpus} training.zero_stage={best.zero} training.micro_batch_size="
        f"{best.micro_batch} training.activation_checkpointing={str(best.recompute).lower()}",
    ]
    lines += [f"  - {r}" for r in reasons(plan, best)]
    lines.append(
        f"  - host memory: each rank builds the whole model in fp32 once at start "
        f"({_gb(4 * n)}) before keeping its stage and shard"
    )
    lines += ["", "runners-up:"]
    seen = {(best.pipeline, best.tensor)}
    for c in plan.fits[1:]:
        if len(seen) > runners_up:
            break
        if (c.pipeline, c.tensor) in seen:
            continue
        seen.add((c.pipeline, c.tensor))
        lines.append(f"  {c.label()}: {c.step_s / best.step_s:.2f}x the step time, {_gb(c.total_memory)} per GPU")
    lines += ["", "does not fit:"]
    shown = {(c.pipeline, c.tensor) for c in plan.fits}  # only splits for which nothing fits
    listed = 0
    for c in sorted(plan.too_big, key=lambda c: (c.pipeline * c.tensor, c.total_memory)):
        if (c.pipeline, c.tensor) in shown or listed >= 4:
            continue
        listed += 1
        shown.add((c.pipeline, c.tensor))
        lines.append(f"  P={c.pipeline} T={c.tensor}: at best {_memory_line(c)}")
    return "\n".join(lines)
