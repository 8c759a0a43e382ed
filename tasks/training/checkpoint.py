"""The final model (`checkpoints/final/`): fp32 weights and the config that rebuilds them,
which evaluation and export load. Training checkpoints are in `checkpoint_store.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from infra.core.storage import atomic_path, read_json, write_json
from models.config import ModelConfig
from models.gpt import GPT

FINAL = "final"


def save_state_dict(
    state: dict[str, torch.Tensor], model_cfg: ModelConfig, vocab_size: int, seq_len: int, step: int, dest_dir: Path
) -> None:
    """Write fp32 weights plus the config needed to rebuild the model (weights first, so a
    model.json never describes weights that are not there)."""
    state = {k: v.detach().float().cpu().contiguous() for k, v in state.items()}
    with atomic_path(dest_dir / "model.pt") as tmp:
        torch.save(state, tmp)
    write_json(
        dest_dir / "model.json",
        {"model": model_cfg.model_dump(), "vocab_size": vocab_size, "seq_len": seq_len, "step": step},
    )


def save_model(
    model: torch.nn.Module, model_cfg: ModelConfig, vocab_size: int, seq_len: int, step: int, dest_dir: Path
) -> None:
    save_state_dict(model.state_dict(), model_cfg, vocab_size, seq_len, step, dest_dir)


def load_model(src_dir: Path, device: str = "cpu") -> tuple[GPT, dict[str, Any]]:
    meta_path = src_dir / "model.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"no trained model in {src_dir}; run `crucible train` for this run first")
    meta = read_json(meta_path)
    model = GPT(ModelConfig(**meta["model"]), meta["vocab_size"], meta["seq_len"])
    # weights_only: never unpickle arbitrary objects from a file on disk.
    try:
        state = torch.load(src_dir / "model.pt", map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, OSError) as exc:  # a cut or damaged file (torch names no fix)
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ValueError(
            f"{src_dir / 'model.pt'} cannot be read ({first[:160]}); it is damaged "
            f"or cut short: write it again with `crucible train` for this run (it resumes from its last checkpoint)"
        ) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # names differ: written by another version of models/gpt.py
        raise ValueError(
            f"{src_dir / 'model.pt'} does not fit the model that {meta_path.name} describes "
            f"({str(exc).splitlines()[1].strip()[:200]}); it was written by another version of "
            f"Crucible: re-train with `crucible train`"
        ) from None
    return model.to(device).eval(), meta
