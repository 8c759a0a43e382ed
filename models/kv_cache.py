"""Keys and values of the tokens a decoder has already seen, kept for incremental decoding.

Each new token then costs one position of attention and MLP work instead of a pass over
the whole sequence. Rows can be dropped as they finish, so a batch shrinks as it goes.
"""

from __future__ import annotations

import torch


class LayerCache:
    """One layer's keys and values, (b, kv_heads, seen, head_dim), after rotary embedding."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new tokens' keys and values; return all of them."""
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def select(self, rows: torch.Tensor) -> None:
        if self.k is not None:
            assert self.v is not None  # extend() sets both
            self.k, self.v = self.k[rows], self.v[rows]


class KVCache:
    """Every layer's cache, plus each cached token's position (ALiBi needs the keys' positions)."""

    def __init__(self, n_layer: int) -> None:
        self.layers = [LayerCache() for _ in range(n_layer)]
        self.positions: torch.Tensor | None = None  # (b, seen)

    def extend_positions(self, positions: torch.Tensor) -> torch.Tensor:
        self.positions = positions if self.positions is None else torch.cat([self.positions, positions], dim=1)
        return self.positions

    def select(self, rows: torch.Tensor) -> None:
        """Keep only these batch rows (finished rows leave the batch)."""
        for layer in self.layers:
            layer.select(rows)
        if self.positions is not None:
            self.positions = self.positions[rows]
