"""The models evaluation can score: a Crucible run or checkpoint, or a Hugging Face causal-LM folder.

Both are wrapped in one `EvalModel`: how to encode text (as the harness does: a Hugging
Face tokenizer with its default special tokens, ours with none), the end-of-text id, the
context window, and how to get logits, so a run and a baseline are scored by the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F

from tasks.evaluation.perplexity import summed_nll, token_byte_lengths
from tasks.evaluation.shared_context import Encoded, Scored, hf_output_head, score_questions

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from models.gpt import GPT


@dataclass
class EvalModel:
    name: str
    kind: str  # "crucible" or "hf"
    module: torch.nn.Module
    encode: Callable[[str], list[int]]
    eot_id: int
    pad_id: int
    max_length: int
    token_bytes: Callable[[list[int]], int]  # UTF-8 bytes the tokens decode to (bits per byte)
    decode: Callable[[list[int]], str] | None = None  # tokens -> text (generation)
    # What predicts a text's first token: the harness's prefix_token_id (BOS if the tokenizer has
    # one, else end-of-text); None = eot_id.
    prefix: int | None = None

    @property
    def prefix_id(self) -> int:
        return self.eot_id if self.prefix is None else self.prefix

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.module(ids)
        return out if isinstance(out, torch.Tensor) else out.logits

    @torch.no_grad()
    def target_nll(self, ids: torch.Tensor, targets: torch.Tensor, logits_bytes: int) -> float:
        """Summed next-token negative log-likelihood of `targets` (-100 = not scored).

        The output head runs a slice of positions at a time, so at most `logits_bytes` of
        fp32 logits exist at once: a whole batch's would be batch x window x vocabulary x 4
        bytes (16 x 8,192 x 49,152 x 4 = 25 GB). A module without a separable head (a
        stand-in in tests, a model that rescales its logits) is scored whole."""
        split = self._hidden_and_head(ids)
        if split is None:
            logits = self.logits(ids).float()
            return summed_nll(logits, targets)
        hidden, weight, bias = split
        b, t, _ = hidden.shape
        step = max(1, logits_bytes // (4 * b * weight.shape[0]))
        total = 0.0
        for start in range(0, t, step):
            y = targets[:, start : start + step]
            if not bool((y != -100).any()):
                continue
            chunk = F.linear(
                hidden[:, start : start + step].float(), weight.float(), None if bias is None else bias.float()
            )
            total += summed_nll(chunk, y)
        return total

    def _hidden_and_head(self, ids: torch.Tensor):
        if self.kind == "crucible":
            if not hasattr(self.module, "hidden"):
                return None
            gpt = cast("GPT", self.module)  # of the modules here only GPT has hidden()
            return gpt.hidden(ids), gpt.head.weight, None
        head = hf_output_head(self.module)
        if head is None:  # models that scale or cap their logits after the head are scored whole
            return None
        hf = cast("PreTrainedModel", self.module)  # not a Crucible model: a Hugging Face one
        return hf.base_model(ids).last_hidden_state, head.weight, getattr(head, "bias", None)

    def score(self, questions: list[Encoded]) -> list[list[Scored]]:
        """Every choice of every question, each question's context computed once."""
        return score_questions(self.module, questions, self.max_length, packed=self.kind == "crucible")


def crucible_model(name: str, module: torch.nn.Module, tok_path: Path, max_length: int) -> EvalModel:
    """A Crucible model (anything with `packed_logits`) with its run's tokenizer and window."""
    from tasks.tokenization.bpe import load_tokenizer

    tok = load_tokenizer(tok_path)
    eos = tok.token_to_id("<|endoftext|>")
    if eos is None:
        raise ValueError(f"{tok_path} has no <|endoftext|> token: not a Crucible tokenizer")
    lengths = token_byte_lengths(tok, {eos})
    return EvalModel(
        name=name,
        kind="crucible",
        module=module,
        encode=lambda s: tok.encode(s, add_special_tokens=False).ids,
        eot_id=eos,
        pad_id=eos,
        max_length=max_length,
        token_bytes=lambda ids: int(lengths[ids].sum()),
        decode=lambda ids: tok.decode(ids, skip_special_tokens=False),
    )


def _crucible(path: Path) -> EvalModel:
    from tasks.training.checkpoint import FINAL, load_model

    ckpt = path / "checkpoints" / FINAL if (path / "checkpoints").is_dir() else path
    tok_path = path / "tokenizer" / "tokenizer.json"
    if not tok_path.is_file():  # a bare checkpoint folder inside a run
        tok_path = ckpt.parents[1] / "tokenizer" / "tokenizer.json"
    model, meta = load_model(ckpt)
    return crucible_model(path.name, model.float().eval(), tok_path, meta["seq_len"])


def _hf(path: Path) -> EvalModel:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    # The harness's window: the first of these the config has, else the tokenizer's limit, else 2048.
    max_length = next(
        (getattr(config, a) for a in ("n_positions", "max_position_embeddings", "n_ctx") if getattr(config, a, None)),
        None,
    )
    if max_length is None:
        max_length = tok.model_max_length if tok.model_max_length < 10**9 else 2048
    eot = tok.eos_token_id
    if eot is None:
        raise ValueError(f"the tokenizer in {path} has no end-of-text token (eos_token_id)")

    def decode(ids: list[int], skip_special_tokens: bool = False) -> str:
        # One flat list of ids decodes to one string.
        return cast(str, tok.decode(ids, skip_special_tokens=skip_special_tokens))

    return EvalModel(
        name=path.name,
        kind="hf",
        module=model,
        # The tokenizer's own default, as the harness: Llama-style ones add BOS.
        encode=lambda s: tok(s)["input_ids"],
        eot_id=eot,
        pad_id=tok.pad_token_id if tok.pad_token_id is not None else eot,
        max_length=int(max_length),
        token_bytes=lambda ids: len(decode(ids).encode("utf-8")),
        # The harness decodes generations without special tokens.
        decode=lambda ids: decode(ids, skip_special_tokens=True),
        prefix=tok.bos_token_id if tok.bos_token_id is not None else eot,
    )


def load_eval_model(path: str | Path) -> EvalModel:
    """A Crucible run directory (or its checkpoints/final), or a Hugging Face model folder."""
    path = Path(path)
    if (path / "config.json").is_file():
        return _hf(path)
    if (path / "checkpoints").is_dir() or (path / "model.json").is_file():
        return _crucible(path)
    raise FileNotFoundError(
        f"{path} is neither a Crucible run (with checkpoints/final/) nor a Hugging Face model folder "
        f"(with config.json); give a run directory, e.g. runs/<run-id>, or a folder saved by "
        f"`save_pretrained` (`crucible export` makes one from a run)"
    )
