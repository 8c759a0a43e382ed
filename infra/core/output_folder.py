"""Folders that a command writes whole and may replace: an export, a noisy corpus.

A command given `--out DIR` replaces what it wrote there before, and nothing else. It leaves a
marker file in each folder it writes, and refuses a folder that is neither empty nor marked,
since `--out ~` or `--out ..` would otherwise delete a home or a project. `--force` lets a
user replace an unmarked folder on purpose, but never one that holds the current directory or
the user's home: no typo is worth those.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class OutputFolderRefused(ValueError):
    """The folder is not ours to replace; the message names it and the way out."""


def _holds(folder: Path, path: Path) -> bool:
    return path == folder or folder in path.parents


def claim(dest: Path, marker: str, what: str, force: bool = False) -> None:
    """Check that `dest` may be written as `what`: absent, empty, marked with `marker` by an
    earlier write, or `force`d. Raises OutputFolderRefused otherwise."""
    dest = Path(dest)
    if not dest.exists():
        return
    if not dest.is_dir():
        raise OutputFolderRefused(f"{dest} is a file, not a folder; choose a folder for the {what}")
    real = dest.resolve()
    for precious in (Path.cwd().resolve(), Path.home().resolve()):
        if _holds(real, precious):
            raise OutputFolderRefused(
                f"refusing to replace {dest}: it holds {precious}; choose a new folder for the {what}"
            )
    if force or (dest / marker).is_file() or not any(dest.iterdir()):
        return
    raise OutputFolderRefused(
        f"refusing to write the {what} into {dest}: it is not empty and was not written by Crucible "
        f"(no {marker} file in it), and writing would replace what is there; choose an empty or new "
        f"folder, or pass --force to replace its contents"
    )


def mark(folder: Path, marker: str, **about: object) -> None:
    """Leave the marker that lets a later write replace `folder`."""
    (Path(folder) / marker).write_text(json.dumps(about, sort_keys=True, default=str) + "\n", encoding="utf-8")


def replace_folder(tmp: Path, dest: Path) -> None:
    """Put the finished folder `tmp` at `dest`, replacing a folder already there, so readers
    see the old folder or the new one whole, never a mix. The old one is deleted last."""
    import shutil
    import tempfile

    dest = Path(dest)
    if not dest.exists():
        os.replace(tmp, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
    os.replace(dest, old / dest.name)
    os.replace(tmp, dest)
    shutil.rmtree(old)
