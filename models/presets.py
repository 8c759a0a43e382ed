"""Named model shapes: tiny ones that train on a CPU, and published shapes for planning.

Each entry is a ModelConfig plus the vocabulary and context its family uses; in a pipeline
run the vocabulary and context come from the tokenizer stage instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.config import ModelConfig

_LLAMA = {"norm": "rmsnorm", "activation": "swiglu", "position": "rope", "bias": False, "tie_embeddings": False}


@dataclass(frozen=True)
class Preset:
    model: ModelConfig
    vocab_size: int
    seq_len: int
    note: str


PRESETS: dict[str, Preset] = {
    "debug": Preset(ModelConfig(n_layer=2, n_head=4, d_model=48), 1024, 64, "tests, ~100k parameters"),
    "tiny": Preset(ModelConfig(n_layer=4, n_head=4, d_model=256), 8192, 256, "the CPU demo, ~5M"),
    "gpt2-124m": Preset(ModelConfig(n_layer=12, n_head=12, d_model=768), 50257, 1024, "GPT-2 small"),
    "gpt2-350m": Preset(ModelConfig(n_layer=24, n_head=16, d_model=1024), 50257, 1024, "GPT-2 medium"),
    "gpt3-175b": Preset(ModelConfig(n_layer=96, n_head=96, d_model=12288), 50257, 2048, "GPT-3 175B, for planning"),
    "llama-1b": Preset(
        ModelConfig(n_layer=16, n_head=32, n_kv_head=8, d_model=2048, mlp_ratio=4.0, **_LLAMA),
        32000,
        2048,
        "a 1B Llama-style shape (GQA)",
    ),
    "llama2-7b": Preset(
        ModelConfig(n_layer=32, n_head=32, d_model=4096, mlp_ratio=11008 / 4096, **_LLAMA),
        32000,
        4096,
        "Llama 2 7B, for planning",
    ),
    "llama2-70b": Preset(
        ModelConfig(n_layer=80, n_head=64, n_kv_head=8, d_model=8192, mlp_ratio=28672 / 8192, **_LLAMA),
        32000,
        4096,
        "Llama 2 70B, for planning",
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset '{name}'; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]
