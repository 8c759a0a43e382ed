"""Export a trained model as a Hugging Face folder that `transformers` loads with its own classes.

RoPE + RMSNorm + SwiGLU shapes become `LlamaForCausalLM`; GPT-2 shapes (pre-LN LayerNorm,
GeLU, learned positions, biases, tied embeddings) become `GPT2LMHeadModel`. Any other
combination has no standard class and is refused with the fields that stand in the way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.config import ModelConfig
from models.gpt import GPT

LLAMA = {"norm_placement": "pre", "norm": "rmsnorm", "activation": "swiglu", "position": "rope", "bias": False}
GPT2 = {
    "norm_placement": "pre",
    "norm": "layernorm",
    "activation": "gelu",
    "position": "learned",
    "bias": True,
    "tie_embeddings": True,
}


class ExportError(ValueError):
    """The model's configuration has no standard `transformers` class."""


def _mismatch(cfg: ModelConfig, wanted: dict[str, Any]) -> list[str]:
    return [f"{k}={getattr(cfg, k)!r} (needs {v!r})" for k, v in wanted.items() if getattr(cfg, k) != v]


def target_class(cfg: ModelConfig) -> str:
    llama, gpt2 = _mismatch(cfg, LLAMA), _mismatch(cfg, GPT2)
    if cfg.dropout:
        llama = gpt2 = ["dropout must be 0 for an exact export"]
    if cfg.kv_heads != cfg.n_head:
        gpt2 = [*gpt2, f"n_kv_head={cfg.kv_heads} (GPT-2 has no grouped-query attention)"]
    if not llama:
        return "llama"
    if not gpt2:
        return "gpt2"
    raise ExportError(
        "no standard transformers class represents this model: as LlamaForCausalLM it differs in "
        + ", ".join(llama)
        + "; as GPT2LMHeadModel in "
        + ", ".join(gpt2)
    )


def _llama(model: GPT) -> tuple[Any, dict[str, torch.Tensor]]:
    from transformers import LlamaConfig

    cfg = model.cfg
    hf = LlamaConfig(
        vocab_size=model.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.mlp_hidden,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.kv_heads,
        head_dim=cfg.head_dim,
        max_position_embeddings=model.seq_len,
        rms_norm_eps=cfg.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        tie_word_embeddings=cfg.tie_embeddings,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
    )
    sd = model.state_dict()
    d, kv_rows = cfg.d_model, cfg.kv_heads * cfg.head_dim
    out = {
        "model.embed_tokens.weight": sd["tok_emb.weight"],
        "model.norm.weight": sd["ln_f.weight"],
        "lm_head.weight": sd["head.weight"],
    }
    for i in range(cfg.n_layer):
        src, dst = f"blocks.{i}.", f"model.layers.{i}."
        qkv = sd[src + "attn.qkv.weight"]  # rows: query heads, key heads, value heads
        out.update(
            {
                dst + "input_layernorm.weight": sd[src + "ln1.weight"],
                dst + "post_attention_layernorm.weight": sd[src + "ln2.weight"],
                dst + "self_attn.q_proj.weight": qkv[:d],
                dst + "self_attn.k_proj.weight": qkv[d : d + kv_rows],
                dst + "self_attn.v_proj.weight": qkv[d + kv_rows :],
                dst + "self_attn.o_proj.weight": sd[src + "attn.proj.weight"],
                dst + "mlp.gate_proj.weight": sd[src + "mlp.gate.weight"],
                dst + "mlp.up_proj.weight": sd[src + "mlp.up.weight"],
                dst + "mlp.down_proj.weight": sd[src + "mlp.down.weight"],
            }
        )
    return hf, out


def _gpt2(model: GPT) -> tuple[Any, dict[str, torch.Tensor]]:
    from transformers import GPT2Config

    cfg = model.cfg
    hf = GPT2Config(
        vocab_size=model.vocab_size,
        n_positions=model.seq_len,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_inner=cfg.mlp_hidden,
        activation_function="gelu",  # exact, not tanh
        layer_norm_epsilon=cfg.norm_eps,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
    )
    sd = model.state_dict()
    out = {
        "transformer.wte.weight": sd["tok_emb.weight"],
        "transformer.wpe.weight": sd["pos_emb.weight"],
        "transformer.ln_f.weight": sd["ln_f.weight"],
        "transformer.ln_f.bias": sd["ln_f.bias"],
        "lm_head.weight": sd["head.weight"],
    }
    for i in range(cfg.n_layer):
        src, dst = f"blocks.{i}.", f"transformer.h.{i}."
        # GPT-2's Conv1D stores (in, out): the transpose of nn.Linear.
        out.update(
            {
                dst + "ln_1.weight": sd[src + "ln1.weight"],
                dst + "ln_1.bias": sd[src + "ln1.bias"],
                dst + "ln_2.weight": sd[src + "ln2.weight"],
                dst + "ln_2.bias": sd[src + "ln2.bias"],
                dst + "attn.c_attn.weight": sd[src + "attn.qkv.weight"].T,  # same q, k, v row order
                dst + "attn.c_attn.bias": sd[src + "attn.qkv.bias"],
                dst + "attn.c_proj.weight": sd[src + "attn.proj.weight"].T,
                dst + "attn.c_proj.bias": sd[src + "attn.proj.bias"],
                dst + "mlp.c_fc.weight": sd[src + "mlp.up.weight"].T,
                dst + "mlp.c_fc.bias": sd[src + "mlp.up.bias"],
                dst + "mlp.c_proj.weight": sd[src + "mlp.down.weight"].T,
                dst + "mlp.c_proj.bias": sd[src + "mlp.down.bias"],
            }
        )
    return hf, out


EXPORT_MARKER = ".crucible-export"


def export_hf(
    model: GPT, tokenizer_json: Path, dest: Path, eos_token: str = "<|endoftext|>", force: bool = False
) -> str:
    """Write `dest/` (config, safetensors weights, tokenizer); return the transformers class used.

    `dest` is replaced only if it is absent, empty or an earlier export (or `force`): see
    infra/core/output_folder.py."""
    import tempfile

    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from infra.core.output_folder import claim, mark, replace_folder

    dest = Path(dest)
    claim(dest, EXPORT_MARKER, "exported model", force)  # before the slow part

    kind = target_class(model.cfg)
    hf_cfg, weights = (_llama if kind == "llama" else _gpt2)(model)
    hf_cfg.bos_token_id = hf_cfg.eos_token_id = None
    hf_model = AutoModelForCausalLM.from_config(hf_cfg)
    missing, unexpected = hf_model.load_state_dict(
        {k: v.float().contiguous() for k, v in weights.items()}, strict=False
    )
    # With tied embeddings the head is the embedding: the only key allowed to be absent.
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise ExportError(f"weight mapping incomplete: missing {missing}, unexpected {unexpected}")
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json), eos_token=eos_token)
    hf_model.config.eos_token_id = tok.eos_token_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        hf_model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        mark(tmp, EXPORT_MARKER, transformers_class=type(hf_model).__name__)
        replace_folder(tmp, dest)  # the whole folder appears at once
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp)
    return type(hf_model).__name__
