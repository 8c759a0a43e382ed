"""Incremental decoding with a key/value cache, for Crucible and Hugging Face models.

A decoder takes a batch of prompts (token lists of different lengths), left-pads them and
runs them once; each later step feeds one new token per row. Left padding is masked out
and every row's positions start at 0, so a row's logits match running it alone. Rows
that finish are dropped from the batch and their cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from models.kv_cache import KVCache

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from models.gpt import GPT


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(b, t) ids and a bool mask of the real tokens, padding on the left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        valid[i, width - len(r) :] = True
    return ids, valid


class CrucibleDecoder:
    def __init__(self, module: GPT, pad_id: int) -> None:
        self.module, self.pad_id = module, pad_id

    @torch.no_grad()
    def start(self, rows: list[list[int]]) -> torch.Tensor:
        ids, self.valid = left_pad(rows, self.pad_id)
        positions = (self.valid.long().cumsum(1) - 1).clamp(min=0)
        t = ids.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        # A padding query sees only itself: with no key at all its attention would be NaN,
        # and a NaN value poisons real rows through 0 x NaN in the next layer.
        mask = (causal[None] & self.valid[:, None, :]) | torch.eye(t, dtype=torch.bool)[None]
        self.cache = KVCache(len(self.module.blocks))
        self.next_pos = positions[:, -1] + 1
        return self.module.decode(ids, positions, mask, self.cache).float()

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.valid = torch.cat([self.valid, torch.ones(len(tokens), 1, dtype=torch.bool)], dim=1)
        positions = self.next_pos[:, None]
        self.next_pos = self.next_pos + 1
        return self.module.decode(tokens[:, None], positions, self.valid[:, None, :], self.cache).float()

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.select(rows)
        self.valid, self.next_pos = self.valid[rows], self.next_pos[rows]


class HFDecoder:
    """The same protocol over a Hugging Face causal LM and its DynamicCache."""

    def __init__(self, module: PreTrainedModel, pad_id: int) -> None:
        import inspect

        self.module, self.pad_id = module, pad_id
        # transformers 5.x renames `past_key_values` to `cache` (the old name goes in 5.40).
        params = inspect.signature(module.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    def _run(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        out = self.module(
            input_ids=ids,
            attention_mask=self.mask.long(),
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self.cache_arg: self.cache},
        )
        return out.logits[:, -1].float()

    @torch.no_grad()
    def start(self, rows: list[list[int]]) -> torch.Tensor:
        from transformers import DynamicCache

        ids, self.mask = left_pad(rows, self.pad_id)
        positions = (self.mask.long().cumsum(1) - 1).clamp(min=0)
        self.cache = DynamicCache(config=self.module.config)
        self.next_pos = positions[:, -1] + 1
        return self._run(ids, positions)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, torch.ones(len(tokens), 1, dtype=torch.bool)], dim=1)
        positions = self.next_pos[:, None]
        self.next_pos = self.next_pos + 1
        return self._run(tokens[:, None], positions)

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask, self.next_pos = self.mask[rows], self.next_pos[rows]
