"""The local Ray that Crucible starts: its processes listen on every interface (Ray 2.60 has
no setting to keep them on loopback), so it must refuse clients without its token."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flows.cluster import connect_ray
from flows.config import RuntimeConfig

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PROBE = "import ray, sys; ray.init(address=sys.argv[1]); print('connected', ray.cluster_resources()['CPU'])"


def _client(address: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE, address], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


def test_a_client_without_the_clusters_token_is_refused(tmp_path, monkeypatch):
    import ray

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # the session's token (tests/conftest.py): not this user's
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    assert connect_ray(RuntimeConfig(ray_num_cpus=1), None)
    try:
        address = ray.get_runtime_context().gcs_address
        # The same machine, another user's home: no ~/.ray/auth_token to read.
        stranger = _client(address, HOME=str(tmp_path / "stranger"))
        assert stranger.returncode != 0 and "AuthenticationError" in stranger.stderr
        # A client that brings a token, the wrong one, is refused by the cluster itself.
        forger = _client(address, HOME=str(tmp_path / "forger"), RAY_AUTH_TOKEN="0" * 32)
        assert forger.returncode != 0 and "connected" not in forger.stdout
        owner = _client(address)  # this user's token, which the cluster was started with
        assert owner.returncode == 0 and "connected 1.0" in owner.stdout, owner.stderr[-2000:]
    finally:
        ray.shutdown()
