"""Debian packages that some slow tests drive (a browser, PostgreSQL, iproute2). `.ci/run`
installs them before the tests start; elsewhere they are installed on demand where this
process may (root, apt-get reachable), one worker at a time, else the test is skipped with
the reason."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from filelock import FileLock

from tests.services import shared_dir


def missing(packages: list[str], binaries: list[str]) -> str | None:
    """Install `packages` unless every path or command in `binaries` exists already; the
    reason they cannot be had, or None once they are there."""
    if all(shutil.which(b) or os.path.exists(b) for b in binaries):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"needs the Debian package(s) {', '.join(packages)}: run `apt-get install {' '.join(packages)}` as root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]]
    with FileLock(str(shared_dir() / "apt.lock")):  # dpkg takes one installer at a time
        if all(shutil.which(b) or os.path.exists(b) for b in binaries):
            return None
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900, env=env)
            if done.returncode != 0:
                return (
                    f"could not install {', '.join(packages)} ({' '.join(step)} exited "
                    f"{done.returncode}): {done.stderr.strip()[-300:]}"
                )
    return None


def ensure(packages: list[str], binaries: list[str]) -> None:
    """`missing`, skipping the calling test with the reason."""
    why = missing(packages, binaries)
    if why:
        pytest.skip(why)
