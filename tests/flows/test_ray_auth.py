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


SECRET = "crucible:prefect-secret-0123"
JOBS = (  # a client of the cluster asks its dashboard (named: no guessing which cluster) for the jobs
    "import ray, sys; ctx = ray.init(address=sys.argv[1]); from ray.util.state import list_jobs; "
    "print(repr([j.runtime_env for j in list_jobs(address='http://' + ctx.dashboard_url, detail=True)]))"
)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray as `crucible run` starts it, from a process that holds Prefect credentials."""
    import ray

    mp = pytest.MonkeyPatch()
    mp.delenv("RAY_AUTH_MODE", raising=False)  # the session's token (tests/conftest.py): not this user's
    mp.delenv("RAY_AUTH_TOKEN", raising=False)
    mp.delenv("RAY_ADDRESS", raising=False)
    mp.setenv("PREFECT_API_AUTH_STRING", SECRET)
    assert not ray.is_initialized()
    assert connect_ray(RuntimeConfig(ray_num_cpus=1), "http://127.0.0.1:9/api")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        mp.undo()


def test_the_prefect_credentials_reach_workers_but_not_rays_job_records(local_ray):
    import ray

    # Workers inherit them, and the API's URL, from the process that started Ray...
    env = ray.get(ray.remote(num_cpus=0)(lambda: dict(os.environ)).remote())
    assert env["PREFECT_API_AUTH_STRING"] == SECRET and env["PREFECT_API_URL"] == "http://127.0.0.1:9/api"
    # ...and no cluster client reads them back from the job's records (they were once in its runtime_env).
    jobs = subprocess.run([sys.executable, "-c", JOBS, local_ray], capture_output=True, text=True, timeout=120)
    assert jobs.returncode == 0, jobs.stderr[-2000:]
    assert jobs.stdout.strip() not in ("", "[]") and SECRET not in jobs.stdout


def test_a_client_without_the_clusters_token_is_refused(tmp_path, local_ray):
    address = local_ray
    # The same machine, another user's home: no ~/.ray/auth_token to read.
    stranger = _client(address, HOME=str(tmp_path / "stranger"))
    assert stranger.returncode != 0 and "AuthenticationError" in stranger.stderr
    # A client that brings a token, the wrong one, is refused by the cluster itself.
    forger = _client(address, HOME=str(tmp_path / "forger"), RAY_AUTH_TOKEN="0" * 32)
    assert forger.returncode != 0 and "connected" not in forger.stdout
    owner = _client(address)  # this user's token, which the cluster was started with
    assert owner.returncode == 0 and "connected 1.0" in owner.stdout, owner.stderr[-2000:]
