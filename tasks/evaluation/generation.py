"""Text generation for evaluation, with lm-evaluation-harness's `generate_until` semantics.

- Each prompt is encoded as the model's loglikelihood prompts are, and cut from the left to
  the last `max_length - max_gen_toks` tokens when longer (the harness's left truncation).
- Prompts are sorted longest first and batched; a key/value cache carries each batch, and a
  row leaves the batch as soon as it ends: the end-of-text token, a stop sequence in its
  text, or `max_gen_toks` tokens.
- The text is the decoded continuation, cut before the first stop sequence.
- Greedy by default. Sampling draws each prompt's tokens from its own generator, seeded from
  `seed` and the prompt's index, so the text does not depend on how prompts were batched.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

import torch

from tasks.evaluation.decoders import CrucibleDecoder, HFDecoder
from tasks.evaluation.models import EvalModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from models.gpt import GPT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    until: tuple[str, ...] = ("\n\n",)  # stop sequences; the end-of-text token always stops too
    max_gen_toks: int = 256  # the harness's default
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0 = no top-k cut
    top_p: float = 1.0
    seed: int = 1234

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "until": list(self.until)}


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: int  # generated tokens, including a final stop or end-of-text
    stop: str  # "until" (a stop sequence), "eos" or "length"
    prompt_tokens: int  # after truncation
    truncated: int  # prompt tokens cut from the left


def first_stop(text: str, until: tuple[str, ...]) -> int | None:
    """Index of the earliest stop sequence in `text`, or None."""
    hits = [i for i in (text.find(s) for s in until if s) if i >= 0]
    return min(hits) if hits else None


def cut(text: str, until: tuple[str, ...]) -> str:
    i = first_stop(text, until)
    return text if i is None else text[:i]


def effective_max_gen_toks(model: EvalModel, settings: GenerationSettings) -> int:
    """The harness needs max_gen_toks < the window; a small model's window is halved instead."""
    return settings.max_gen_toks if settings.max_gen_toks < model.max_length else max(1, model.max_length // 2)


def _decoder(model: EvalModel) -> CrucibleDecoder | HFDecoder:
    # The kind says which: a Crucible GPT, else a Hugging Face causal LM.
    if model.kind == "crucible":
        return CrucibleDecoder(cast("GPT", model.module), model.pad_id)
    return HFDecoder(cast("PreTrainedModel", model.module), model.pad_id)


def _choose(logits: torch.Tensor, settings: GenerationSettings, gens: list[torch.Generator]) -> torch.Tensor:
    if not settings.do_sample:
        return logits.argmax(dim=-1)
    logits = logits / max(settings.temperature, 1e-6)
    if settings.top_k:
        kth = logits.topk(min(settings.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(dim=-1)
    if settings.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest set whose mass reaches top_p (always at least the top token).
        drop = sorted_p.cumsum(-1) - sorted_p >= settings.top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.stack([torch.multinomial(p, 1, generator=g)[0] for p, g in zip(probs, gens)])


def _run_batch(
    model: EvalModel, prompts: list[list[int]], indices: list[int], settings: GenerationSettings, max_new: int
) -> list[tuple[list[int], str]]:
    """Generated tokens and why each row stopped, in the batch's order."""
    assert model.decode is not None  # generate() refuses a model without one
    gens = [torch.Generator().manual_seed(settings.seed + i) for i in indices]
    decoder = _decoder(model)
    logits = decoder.start(prompts)
    out: list[list[int]] = [[] for _ in prompts]
    why = ["length"] * len(prompts)
    active = list(range(len(prompts)))  # batch rows still generating, in decoder row order
    while True:
        tokens = _choose(logits, settings, [gens[r] for r in active])
        keep = []
        for j, r in enumerate(active):
            t = int(tokens[j])
            out[r].append(t)
            if t == model.eot_id:
                why[r] = "eos"
            elif first_stop(model.decode(out[r]), settings.until) is not None:
                why[r] = "until"
            elif len(out[r]) < max_new:
                keep.append(j)
        if not keep:
            return list(zip(out, why))
        if len(keep) < len(active):
            rows = torch.tensor(keep)
            decoder.keep(rows)
            tokens = tokens[rows]
            active = [active[j] for j in keep]
        logits = decoder.step(tokens)


def generate(
    model: EvalModel,
    prompts: list[str],
    settings: GenerationSettings,
    batch_size: int = 16,
    progress: str | None = None,
) -> list[Generation]:
    """One generation per prompt, in the prompts' order."""
    if model.decode is None:
        raise ValueError(f"{model.name} has no decoder for its tokens; generation needs one")
    max_new = effective_max_gen_toks(model, settings)
    if max_new != settings.max_gen_toks:
        log.warning(
            "max_gen_toks %d does not fit %s's %d-token window: generating at most %d tokens",
            settings.max_gen_toks,
            model.name,
            model.max_length,
            max_new,
        )
    room = model.max_length - max_new
    encoded = [model.encode(p) for p in prompts]
    kept = [e[-room:] if len(e) > room else e for e in encoded]
    # Longest first (ties by text), as the harness orders its requests.
    order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), prompts[i]))
    results: dict[int, Generation] = {}
    started, done = time.perf_counter(), 0
    for b in range(0, len(order), batch_size):
        batch = order[b : b + batch_size]
        for i, (toks, why) in zip(batch, _run_batch(model, [kept[i] for i in batch], batch, settings, max_new)):
            body = toks[:-1] if why == "eos" else toks
            results[i] = Generation(
                text=cut(model.decode(body), settings.until),
                tokens=len(toks),
                stop=why,
                prompt_tokens=len(kept[i]),
                truncated=len(encoded[i]) - len(kept[i]),
            )
        done += len(batch)
        if progress:
            log.info(
                "%s: generated %d/%d (%.1f items/s)",
                progress,
                done,
                len(order),
                done / max(time.perf_counter() - started, 1e-9),
            )
    return [results[i] for i in range(len(prompts))]
