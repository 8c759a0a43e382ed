"""A size-limited tmpfs that a root test mounts for a real full disk (skipped otherwise)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(at: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (mount's syntax: 256k, 96m) mounted on the new folder `at`."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    at.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "crucible-test-disk", str(at)], check=True)
    try:
        yield at
    finally:
        subprocess.run(["umount", "-l", str(at)], check=False)
