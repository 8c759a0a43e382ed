"""Progress bars over Prefect futures, so long stages show how far they are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect.futures import PrefectFuture, as_completed
from tqdm import tqdm


def gather(futures: Sequence[PrefectFuture], desc: str) -> list[Any]:
    """Results in submission order, with a progress bar advancing as tasks finish."""
    index = {id(f): i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    with tqdm(total=len(futures), desc=desc, unit="task") as bar:  # Prefect tasks, whatever each one covers
        for fut in as_completed(list(futures)):
            results[index[id(fut)]] = fut.result()
            bar.update(1)
    return results
