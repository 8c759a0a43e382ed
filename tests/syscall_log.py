"""Watching a process publish files: which paths it fsyncs and renames, in order."""

from __future__ import annotations

import os


def record_fsyncs_and_renames(monkeypatch) -> list[tuple[str, str]]:
    """The order of fsyncs and renames, each with the path it acted on."""
    calls = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("rename", str(dst)))
        real_replace(src, dst)

    def rename(src, dst):
        calls.append(("rename", str(dst)))
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    return calls
