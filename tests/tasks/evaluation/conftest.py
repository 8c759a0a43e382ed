"""Shared pieces of the evaluation tests: the fixture benchmarks, a tiny BPE and tiny models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from models.config import ModelConfig
from models.gpt import GPT
from tasks.evaluation.models import EvalModel
from tasks.tokenization.bpe import train_on_texts
from tasks.tokenization.config import TokenizationConfig


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models: threads only add contention on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def eval_root() -> Path:
    """tests/fixtures/eval: <dataset>/<split>.jsonl in the Hugging Face schemas."""
    return Path(__file__).resolve().parents[2] / "fixtures" / "eval"


@pytest.fixture(scope="session")
def tok(eval_root: Path) -> Tokenizer:
    texts = [p.read_text(encoding="utf-8") for p in sorted(eval_root.rglob("*.jsonl"))]
    return train_on_texts(texts * 3, TokenizationConfig(vocab_size=300, min_frequency=1))


@pytest.fixture(scope="session")
def make_gpt() -> Callable[..., GPT]:
    def make(vocab: int, seq_len: int, position: str = "learned", seed: int = 0) -> GPT:
        torch.manual_seed(seed)
        return GPT(ModelConfig(n_layer=2, n_head=2, d_model=16, position=position), vocab, seq_len).eval()

    return make


@pytest.fixture(scope="session")
def wrap(tok: Tokenizer) -> Callable[..., EvalModel]:
    """An EvalModel around a module, with the fixture tokenizer (end-of-text = padding = id 0)."""

    def make(module: torch.nn.Module, max_length: int, kind: str = "crucible") -> EvalModel:
        eos = tok.token_to_id("<|endoftext|>")
        return EvalModel(
            name="tiny",
            kind=kind,
            module=module,
            encode=lambda s: tok.encode(s, add_special_tokens=False).ids,
            eot_id=eos,
            pad_id=eos,
            max_length=max_length,
            token_bytes=lambda ids: len(tok.decode(ids).encode("utf-8")),
            decode=lambda ids: tok.decode(ids, skip_special_tokens=False),
        )

    return make


@pytest.fixture(scope="session")
def hf_folder(tok, tmp_path_factory) -> Callable[..., Path]:
    """A tiny random Hugging Face GPT-2 (causal LM or sequence classifier) saved with the fixture tokenizer."""

    def make(kind: str = "causal_lm", seed: int = 0, labels: tuple[str, ...] = ("false", "true")) -> Path:
        import transformers

        torch.manual_seed(seed)
        cfg = transformers.GPT2Config(
            vocab_size=tok.get_vocab_size(),
            n_positions=128,
            n_embd=32,
            n_layer=2,
            n_head=2,
            eos_token_id=0,
            bos_token_id=0,
            pad_token_id=0,
        )
        if kind == "causal_lm":
            model = transformers.GPT2LMHeadModel(cfg)
        else:
            cfg.id2label = dict(enumerate(labels))
            cfg.label2id = {v: k for k, v in cfg.id2label.items()}
            model = transformers.GPT2ForSequenceClassification(cfg)
        dest = tmp_path_factory.mktemp(f"hf-{kind}-{seed}")
        model.save_pretrained(dest)
        transformers.PreTrainedTokenizerFast(
            tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
        ).save_pretrained(dest)
        return dest

    return make
