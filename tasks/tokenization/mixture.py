"""The data mixture: how many rows of each source one training epoch draws.

Weights are shares of tokens. A source weighted above its natural share is repeated
(its rows drawn more than once per epoch), one weighted below is subsampled (a different
subset each epoch). With no weights, every row is drawn exactly once per epoch.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def plan_mixture(rows: dict[str, int], tokens: dict[str, int], weights: dict[str, float] | None) -> dict[str, Any]:
    """The epoch plan: rows drawn per source, with the planned and the realised token shares."""
    sources = sorted(rows)
    if weights is not None:
        unknown = sorted(set(weights) - set(sources))
        unweighted = sorted(set(sources) - set(weights))
        if unknown:
            # A source may be empty in one run (e.g. all of it filtered out); the others share its weight.
            log.warning(
                "tokenization.mixture names source(s) %s that this run's training data does not "
                "have (its sources are %s); their weight goes to the others",
                unknown,
                sources,
            )
        if unweighted:
            raise ValueError(
                f"source(s) {unweighted} have no weight in tokenization.mixture; give each "
                f"one (0 leaves a source out), the sources are {sources}"
            )
    natural = {s: tokens[s] for s in sources}
    raw = weights if weights is not None else natural
    total_w = sum(raw[s] for s in sources)
    if total_w <= 0:
        raise ValueError("the mixture gives no source a positive weight (or the training split is empty)")
    planned = {s: raw[s] / total_w for s in sources}
    used_tokens = sum(tokens[s] for s in sources if planned[s] > 0)
    epoch_rows = {}
    for s in sources:
        per_row = tokens[s] / rows[s] if rows[s] else 0.0
        # Natural weights give exactly rows[s]; rounding error cannot move it by a whole row.
        epoch_rows[s] = round(planned[s] * used_tokens / per_row) if per_row else 0
        if planned[s] > 0 and rows[s] and epoch_rows[s] == 0:
            epoch_rows[s] = 1  # a positive weight always draws something
    realised = {s: epoch_rows[s] * (tokens[s] / rows[s]) if rows[s] else 0.0 for s in sources}
    total_realised = sum(realised.values()) or 1.0
    return {
        "weights": None if weights is None else dict(weights),
        "missing_sources": sorted(set(weights or {}) - set(sources)),
        "sources": {
            s: {
                "available_rows": rows[s],
                "available_tokens": tokens[s],
                "natural_share": tokens[s] / max(1, sum(natural.values())),
                "planned_share": planned[s],
                "epoch_rows": epoch_rows[s],
                "repeats": epoch_rows[s] / rows[s] if rows[s] else 0.0,
                "realised_tokens": round(realised[s]),
                "realised_share": realised[s] / total_realised,
            }
            for s in sources
        },
        "epoch_rows": sum(epoch_rows.values()),
    }


def epoch_rows(plan: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sources, rows drawn per epoch, rows available) in a fixed order, for the sampler."""
    sources = sorted(plan["sources"])
    return (
        sources,
        np.array([plan["sources"][s]["epoch_rows"] for s in sources], dtype=np.int64),
        np.array([plan["sources"][s]["available_rows"] for s in sources], dtype=np.int64),
    )
