"""Training checkpoints you can trust: written under a temporary name, sealed by a SHA-256
manifest written last, published by a rename, verified at resume, with fallback.

Layout of `checkpoints/`:
    step120/              a published checkpoint: DeepSpeed's files, one rng-rankN.pt per
      manifest.json       rank, and the manifest (every file's size and SHA-256, the step,
                          the world size, the resolved config, the validation loss)
    tmp-step140/          a save in progress (or one a crash interrupted): never resumed
    latest                the newest published tag, for people and DeepSpeed's tools
    universal-step120/    a converted copy for a resume on another number of ranks

DeepSpeed writes `latest` before its final barrier and straight to the final path, so a
crash mid-save can leave a pointer to a half-written tag. Here nothing is published until
every rank has finished and the manifest is written; a resume walks the published tags
from the newest and takes the first whose files all match their manifest.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.core.storage import fsync_dir, fsync_tree, read_json, sha256_file, write_json, write_text

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1
_TAG = re.compile(r"^step(\d+)$")


def tag_for(step: int) -> str:
    return f"step{step}"


def tmp_tag_for(step: int) -> str:
    return f"tmp-step{step}"


def universal_tag_for(step: int) -> str:
    return f"universal-step{step}"


@dataclass(frozen=True)
class Published:
    """A checkpoint that passed verification."""

    tag: str
    step: int
    manifest: dict[str, Any]

    @property
    def world_size(self) -> int:
        return int(self.manifest["world_size"])


def published_steps(root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every published-looking tag, newest first."""
    found = []
    for p in root.glob("step*"):
        m = _TAG.match(p.name)
        # A link is not a checkpoint this run wrote: resuming from it, or deleting through it
        # at retention, would act on another folder.
        if m and p.is_dir() and not p.is_symlink():
            found.append((int(m.group(1)), p))
    return sorted(found, reverse=True)


def files_to_seal(folder: Path) -> list[str]:
    """Every file of a checkpoint folder, relative, sorted; the manifest itself excluded."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def hash_files(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    return {n: {"bytes": (folder / n).stat().st_size, "sha256": sha256_file(folder / n)} for n in names}


def write_manifest(
    folder: Path, step: int, world_size: int, files: dict[str, dict[str, Any]], extra: dict[str, Any]
) -> None:
    from tasks.training.checkpoint_key import sign

    manifest = {"format": FORMAT, "step": step, "world_size": world_size, "files": files, "written_at": time.time()}
    write_json(folder / MANIFEST, sign({**manifest, **extra}))  # signed: see checkpoint_key.py


def read_seal(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(manifest, None) for a sealed folder, else (None, why not)."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return None, f"{manifest_path} is missing (the save did not finish)"
    try:
        manifest = read_json(manifest_path)
        manifest["files"].items()
    except (ValueError, KeyError, AttributeError) as exc:
        return None, f"{manifest_path} is unreadable ({exc})"
    return manifest, None


def check_files(folder: Path, files: dict[str, dict[str, Any]]) -> str | None:
    """None if each of `files` (a share of a manifest's) matches, else why not, naming the file."""
    for name, want in sorted(files.items()):
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != want["bytes"]:
            return f"{path} is {size} bytes, the manifest says {want['bytes']} (truncated or altered)"
        if sha256_file(path) != want["sha256"]:
            return f"{path}: SHA-256 differs from the manifest (corrupt)"
    return None


def publish(root: Path, step: int, renamed: Callable[[], None] = lambda: None) -> None:
    """Rename the sealed temporary folder to its tag and move `latest` to it (rank 0, after
    every rank's files and the manifest are written). `renamed` runs between the two (a fault
    drill's kill point)."""
    tmp, final = root / tmp_tag_for(step), root / tag_for(step)
    fsync_tree(tmp)  # on disk before its name says it is finished: retention then deletes older ones
    if final.exists():  # an older, replaced save of the same step (after a roll-back)
        discard(final)
    tmp.rename(final)
    fsync_dir(root)
    renamed()
    write_text(root / "latest", final.name)


def discard(folder: Path) -> None:
    """Remove a checkpoint, its manifest first, so a crash midway leaves it unpublished; a
    symbolic link is removed itself, never what it points to."""
    if folder.is_symlink():
        folder.unlink()
        return
    (folder / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def retain(root: Path, keep_last: int, keep_best: bool, current: int) -> list[str]:
    """Delete published checkpoints beyond the newest `keep_last` up to step `current` (the one
    just published), keeping the one with the lowest validation loss when `keep_best`; returns
    the tags removed. Later steps (unusable ones a resume fell back past) are left to be
    replaced when training reaches them."""
    steps = [(n, p) for n, p in published_steps(root) if n <= current]
    keep = {p for _, p in steps[:keep_last]}
    if keep_best:
        scored = []
        for _, p in steps:
            try:
                loss = read_json(p / MANIFEST).get("val_loss")
            except (OSError, ValueError):
                continue
            # NaN compares false with everything, so min() could pick it: a diverged
            # evaluation is no one's best.
            if isinstance(loss, (int, float)) and math.isfinite(loss):
                scored.append((loss, p))
        if scored:
            keep.add(min(scored)[1])
    removed = []
    for _, p in steps:
        if p not in keep:
            discard(p)
            removed.append(p.name)
    for p in root.glob("tmp-step*"):  # interrupted saves: never published, never resumed
        shutil.rmtree(p, ignore_errors=True)
    newest = universal_tag_for(steps[0][0]) if steps else None
    for p in root.glob("universal-step*"):  # conversions are needed only until the next save
        if p.name != newest:
            shutil.rmtree(p, ignore_errors=True)
    if not any(root.glob("universal-step*")):
        (root / "latest_universal").unlink(missing_ok=True)  # written by DeepSpeed's converter
    return removed


def to_universal(root: Path, ckpt: Published, log_fn: Callable[[str], None] = log.info) -> str:
    """Convert a checkpoint to DeepSpeed's universal format (world-size independent) once;
    returns the tag to load with `checkpoint.load_universal`."""
    from argparse import Namespace

    from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal

    out = root / universal_tag_for(ckpt.step)
    if (out / "done").is_file():
        return out.name
    shutil.rmtree(out, ignore_errors=True)
    log_fn(f"converting {ckpt.tag} (written by {ckpt.world_size} ranks) to a universal checkpoint")
    ds_to_universal(
        Namespace(
            input_folder=str(root / ckpt.tag),
            output_folder=str(out),
            num_extract_workers=1,
            num_merge_workers=1,
            keep_temp_folder=False,
            strict=True,
            inject_missing_state=False,
        )
    )
    write_text(out / "done", ckpt.tag)
    return out.name
