"""Checkpoint locations and the exported model that evaluation loads."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from infra.storage import atomic_path, read_json, write_json
from models.config import ModelConfig
from models.gpt import GPT

FINAL = "final"


def latest_tag(ckpt_dir: Path) -> str | None:
    """The tag DeepSpeed's `latest` file points at, or None for a fresh run."""
    latest = ckpt_dir / "latest"
    return latest.read_text().strip() if latest.is_file() else None


def save_model(model: torch.nn.Module, model_cfg: ModelConfig, vocab_size: int, seq_len: int,
               step: int, dest_dir: Path) -> None:
    """Write fp32 weights plus the config needed to rebuild the model."""
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    with atomic_path(dest_dir / "model.pt") as tmp:
        torch.save(state, tmp)
    write_json(dest_dir / "model.json", {"model": model_cfg.model_dump(), "vocab_size": vocab_size,
                                         "seq_len": seq_len, "step": step})


def load_model(src_dir: Path, device: str = "cpu") -> tuple[GPT, dict[str, Any]]:
    meta_path = src_dir / "model.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"no trained model in {src_dir}; run `crucible train` for this run first")
    meta = read_json(meta_path)
    model = GPT(ModelConfig(**meta["model"]), meta["vocab_size"], meta["seq_len"])
    # weights_only: never unpickle arbitrary objects from a file on disk.
    state = torch.load(src_dir / "model.pt", map_location=device, weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # names differ: written by another version of models/gpt.py
        raise ValueError(
            f"{src_dir / 'model.pt'} does not fit the model that {meta_path.name} describes "
            f"({str(exc).splitlines()[1].strip()[:200]}); it was written by another version of "
            f"Crucible: re-train with `crucible train`"
        ) from None
    return model.to(device).eval(), meta
