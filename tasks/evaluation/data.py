"""Benchmark items: read from a local folder in the Hugging Face schemas, or from the hub.

A local folder holds one JSONL file per dataset and split, `<dir>/<dataset>/<split>.jsonl`.
When a file is missing and the hub is allowed and reachable, the split is loaded with
`datasets`; otherwise the error names the file and the command that makes it. Reachable is
checked once per process with one TCP connection: offline, `datasets` would otherwise retry
each request with back-off for about half a minute before failing.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from infra.core.storage import decode_utf8


@dataclass(frozen=True)
class HubDataset:
    folder: str  # the local folder name, e.g. "arc_easy"
    path: str  # the hub dataset
    name: str | None  # its configuration


DATASETS = {
    "arc_easy": HubDataset("arc_easy", "allenai/ai2_arc", "ARC-Easy"),
    "arc_challenge": HubDataset("arc_challenge", "allenai/ai2_arc", "ARC-Challenge"),
    "hellaswag": HubDataset("hellaswag", "Rowan/hellaswag", None),
    "mmlu": HubDataset("mmlu", "hails/mmlu_no_train", "all"),
    "truthfulqa": HubDataset("truthfulqa", "truthfulqa/truthful_qa", "multiple_choice"),
    "truthfulqa_gen": HubDataset("truthfulqa_generation", "truthfulqa/truthful_qa", "generation"),
}


class BenchmarkDataError(ValueError):
    """A benchmark file that is missing or does not hold what its schema needs."""


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line; a bad line is an error naming the file and line."""
    with Path(path).open("rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = decode_utf8(raw, path, "fix or re-download the file", first_line=line_no)
            except ValueError as e:
                raise BenchmarkDataError(str(e)) from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise BenchmarkDataError(
                    f"{path}, line {line_no}: not valid JSON ({e.msg}); fix or re-download the file"
                ) from None
            if not isinstance(rec, dict):
                raise BenchmarkDataError(f"{path}, line {line_no}: expected a JSON object, got {type(rec).__name__}")
            yield line_no, rec


def check_fields(path: Path, line_no: int, rec: dict[str, Any], required: tuple[str, ...], schema: str) -> None:
    missing = [k for k in required if k not in rec]
    if missing:
        raise BenchmarkDataError(
            f"{path}, line {line_no}: missing field(s) {', '.join(missing)}; expected the Hugging Face {schema} schema"
        )


def hub_command(ds: HubDataset, split: str, dest: Path) -> str:
    name = f", {ds.name!r}" if ds.name else ""
    return (
        f'python -c "from datasets import load_dataset; load_dataset({ds.path!r}{name}, '
        f'split={split!r}).to_json({str(dest)!r})"'
    )


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@lru_cache(maxsize=1)
def hub_unreachable(timeout_s: float = 3.0) -> str | None:
    """Why the Hugging Face hub cannot be used from here, or None if it can be tried."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").lower() in ("1", "true", "yes", "on"):
            return f"{name} is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    try:
        socket.create_connection((host, endpoint.port or 443), timeout=timeout_s).close()
    except OSError as exc:
        return f"{host} is not reachable ({type(exc).__name__})"
    return None


def load_split(
    dataset: str, split: str, root: Path | None, allow_hub: bool, required: tuple[str, ...]
) -> list[dict[str, Any]]:
    """All records of one split, checked for the fields the task reads."""
    ds = DATASETS[dataset]
    path = Path(root) / ds.folder / f"{split}.jsonl" if root else None
    if path is not None and path.is_file():
        records = []
        for line_no, rec in iter_jsonl(path):
            check_fields(path, line_no, rec, required, ds.path)
            records.append(rec)
        return records
    if allow_hub and (unreachable := hub_unreachable()) is not None:
        hub_error = f" The hub was not tried: {unreachable}."
    elif allow_hub:
        try:
            from datasets import load_dataset

            return [dict(r) for r in load_dataset(ds.path, ds.name, split=split)]
        except Exception as exc:  # offline, or the hub refused: fall through to the local-file advice
            hub_error = f" Loading {ds.path} from the hub failed too ({type(exc).__name__}: {str(exc)[:160]})."
    else:
        hub_error = " The hub is not used (evaluation.allow_hub is false)."
    where = path or Path("<benchmarks_dir>") / ds.folder / f"{split}.jsonl"
    raise BenchmarkDataError(
        f"benchmark file {where} not found.{hub_error} Set evaluation.benchmarks_dir to a folder "
        f"holding {ds.folder}/{split}.jsonl in the Hugging Face {ds.path} schema; on a machine "
        f"with network access: {hub_command(ds, split, where)}"
    )
