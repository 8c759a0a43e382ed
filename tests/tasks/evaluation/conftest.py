"""Shared pieces of the evaluation tests: the fixture benchmarks, a tiny BPE and tiny models."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from models.config import ModelConfig
from models.gpt import GPT
from tasks.evaluation.models import EvalModel
from tasks.tokenization.bpe import train_on_texts
from tasks.tokenization.config import TokenizationConfig

EVAL_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "eval"


@pytest.fixture(scope="session")
def tok() -> Tokenizer:
    texts = [p.read_text(encoding="utf-8") for p in sorted(EVAL_FIXTURES.rglob("*.jsonl"))]
    return train_on_texts(texts * 3, TokenizationConfig(vocab_size=300, min_frequency=1))


def tiny_gpt(vocab: int, seq_len: int, position: str = "learned", seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(ModelConfig(n_layer=2, n_head=2, d_model=16, position=position), vocab, seq_len).eval()


def wrap(module: torch.nn.Module, tok: Tokenizer, max_length: int) -> EvalModel:
    eos = tok.token_to_id("<|endoftext|>")
    return EvalModel(name="tiny", kind="crucible", module=module,
                     encode=lambda s: tok.encode(s, add_special_tokens=False).ids, eot_id=eos, pad_id=eos,
                     max_length=max_length, token_bytes=lambda ids: len(tok.decode(ids).encode("utf-8")))
