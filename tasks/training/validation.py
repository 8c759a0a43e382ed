"""The validation loss of a finished model over the whole validation split, weighted by tokens.

Training's own `val_loss` is a monitor: the mean of batch means over the first `eval_batches`
batches of each rank. Rows end in padding, so batch means weight a short batch's tokens more,
and a prefix of the split is not the split. A number that a scaling law is fitted to must be
neither: here every target token of every validation row counts once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.gpt import GPT
from tasks.tokenization.reader import IGNORE, TokenRows, to_batch


@dataclass(frozen=True)
class SplitLoss:
    loss: float  # mean next-token loss per target token, in nats
    tokens: int  # target tokens scored
    rows: int


@torch.no_grad()
def split_loss(model: GPT, rows: TokenRows, batch_rows: int = 16, document_mask: bool = False) -> SplitLoss:
    """Token-weighted mean loss of `model` (in eval mode) over every row of `rows`."""
    if not len(rows):
        raise ValueError("the validation split has no rows; raise tokenization.val_fraction and tokenize again")
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    tokens = 0
    for start in range(0, len(rows), batch_rows):
        sel = np.arange(start, min(start + batch_rows, len(rows)))
        x, y, *seg = to_batch(*rows.rows(sel), rows.segments(sel) if document_mask else None)
        counted = int((y != IGNORE).sum())
        if counted:
            # The model's loss is the mean over its batch's scored targets: weight it back by them.
            total += model(x, y, *seg).double() * counted
            tokens += counted
    return SplitLoss(float(total / max(tokens, 1)), tokens, len(rows))
