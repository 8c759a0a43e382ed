"""Debian packages that some slow tests drive (a browser, PostgreSQL): installed on demand
where this process may (root, apt-get reachable), else the test is skipped with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def ensure(packages: list[str], binaries: list[str]) -> None:
    """Install `packages` unless every path or command in `binaries` exists already."""
    if all(shutil.which(b) or os.path.exists(b) for b in binaries):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(
            f"needs the Debian package(s) {', '.join(packages)}: run `apt-get install {' '.join(packages)}` as root"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900, env=env)
        if done.returncode != 0:
            pytest.skip(
                f"could not install {', '.join(packages)} ({' '.join(step)} exited "
                f"{done.returncode}): {done.stderr.strip()[-300:]}"
            )
