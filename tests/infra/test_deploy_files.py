"""The deployment files in infra/deploy: each is checked against what reads it (Prefect's
project-file model and parameter schema, Ray's cluster-launcher validation, KubeRay's
conventions, Crucible's own CLI), without a server, a cluster or the network."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import itertools
import os
import re
import shlex
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "infra" / "deploy"
PREFECT_FILE = DEPLOY / "prefect.yaml"
RAY_CLUSTER_FILE = DEPLOY / "ray-cluster.yaml"
KUBERAY_CLUSTER_FILE = DEPLOY / "kuberay" / "raycluster.yaml"
KUBERAY_JOB_FILE = DEPLOY / "kuberay" / "rayjob.yaml"


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} must hold a mapping"
    return data


def _header(path: Path) -> str:
    """The leading comment block, without the '#' markers."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return "\n".join(lines)


def _deployment() -> dict[str, Any]:
    deployments = _load(PREFECT_FILE)["deployments"]
    assert len(deployments) == 1
    return deployments[0]


# --- every file ---------------------------------------------------------------------------


def test_every_deploy_yaml_parses_to_a_mapping() -> None:
    found = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert {PREFECT_FILE, RAY_CLUSTER_FILE, KUBERAY_CLUSTER_FILE, KUBERAY_JOB_FILE} <= set(found)
    for path in found:
        _load(path)


# --- prefect.yaml ---------------------------------------------------------------------------


def test_prefect_file_passes_prefect_deploys_own_validation() -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(_load(PREFECT_FILE))
    assert [d.name for d in model.deployments] == ["weekly"]
    # Nothing to build or push: the workers run the checkout they were started in.
    assert not model.build and not model.push
    assert not model.deployments[0].build and not model.deployments[0].push


def test_entrypoint_is_the_pipeline_flow() -> None:
    from prefect import Flow

    entrypoint = _deployment()["entrypoint"]
    file, func = entrypoint.split(":")
    assert (ROOT / file).is_file()  # `prefect deploy` resolves it from the repository root
    module = importlib.import_module(file.removesuffix(".py").replace("/", "."))
    flow = getattr(module, func)
    assert isinstance(flow, Flow)
    assert flow.name == "pipeline"
    assert f"{flow.name}/{_deployment()['name']}" == "pipeline/weekly"


def test_parameters_are_the_flows_and_cfg_validates() -> None:
    from flows.config import PipelineConfig
    from flows.pipeline import pipeline_flow
    from models.presets import get_preset

    params = _deployment()["parameters"]
    assert set(params) == {"cfg", "run_dir"}
    # A served deployment needs a run directory per flow run; a fixed one would make every
    # weekly run resume the first.
    assert params["run_dir"] is None
    assert "run_id" not in params["cfg"]
    cfg = PipelineConfig.model_validate(params["cfg"])
    assert cfg.runs_dir == "runs"
    assert cfg.curation.input_path == "demo"
    # The comment names the `tiny` preset; the fields must be that preset's shape.
    assert cfg.model == get_preset("tiny").model
    # What the flow run does with them: the engine turns the mapping into the typed config.
    validated = pipeline_flow.validate_parameters(dict(params))
    assert isinstance(validated["cfg"], PipelineConfig)


def test_parameters_pass_the_servers_schema_check() -> None:
    """The server refuses a flow run (or a re-deploy) whose parameters fail the flow's JSON schema."""
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools import ValidationError, validate

    from flows.pipeline import pipeline_flow

    schema = parameter_schema(pipeline_flow).model_dump(exclude_unset=True)
    validate(_deployment()["parameters"], schema, raise_on_error=True)
    with pytest.raises(ValidationError):  # the check is real: a preset reference fails it
        validate({"cfg": {"model": {"preset": "tiny"}}, "run_dir": None}, schema, raise_on_error=True)


def test_work_pool_is_the_process_pool_the_header_creates() -> None:
    from prefect.workers.process import ProcessWorker

    pool = _deployment()["work_pool"]
    assert pool["name"] == "crucible"
    header = _header(PREFECT_FILE)
    create = re.search(r"prefect work-pool create (\S+) --type (\S+)", header)
    assert create and create.groups() == (pool["name"], ProcessWorker.type)
    assert f"prefect worker start -p {pool['name']}" in header
    assert f"prefect deploy --prefect-file {PREFECT_FILE.relative_to(ROOT)} --all" in header
    # Job variables, if any, must be ones a process pool's job template has.
    allowed = ProcessWorker.get_default_base_job_template()["variables"]["properties"]
    assert set(pool.get("job_variables", {})) <= set(allowed)


def test_pull_step_sets_the_working_directory_from_the_workers_environment(monkeypatch) -> None:
    from prefect.utilities.templating import apply_values

    steps = _deployment()["pull"]
    assert len(steps) == 1
    ((name, inputs),) = steps[0].items()
    assert name == "prefect.deployments.steps.set_working_directory"
    var = re.fullmatch(r"\{\{ *\$(\w+) *\}\}", inputs["directory"])
    assert var, "the directory must be an environment placeholder, filled in on the worker"
    assert f"export {var.group(1)}=" in _header(PREFECT_FILE)
    # Resolved as the worker resolves it, before running the step.
    monkeypatch.setenv(var.group(1), str(ROOT))
    assert apply_values(inputs, os.environ) == {"directory": str(ROOT)}


def test_schedule_is_weekly_cron_in_utc() -> None:
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.server.schemas.schedules import CronSchedule as ServerCronSchedule

    (schedule,) = _deployment()["schedules"]
    CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    assert schedule["timezone"] == "UTC"
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    dates = asyncio.run(ServerCronSchedule(cron=schedule["cron"], timezone="UTC").get_dates(n=3, start=start))
    assert [b - a for a, b in pairwise(dates)] == [dt.timedelta(days=7)] * 2


# --- ray-cluster.yaml ---------------------------------------------------------------------


def _commands(cmds: list[str]) -> list[list[str]]:
    """Each command's words, without the VAR=value assignments in front of it."""
    return [list(itertools.dropwhile(lambda w: re.fullmatch(r"[A-Z_]+=.*", w), shlex.split(c))) for c in cmds]


def _assignments(cmd: str) -> dict[str, str]:
    words = shlex.split(cmd)
    return dict(w.split("=", 1) for w in itertools.takewhile(lambda w: re.fullmatch(r"[A-Z_]+=.*", w), words))


def test_ray_cluster_passes_the_cluster_launchers_validation() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _load(RAY_CLUSTER_FILE)
    assert config["provider"]["type"] == "local"
    # Fixed machines: with fewer than all of them, some would never get Ray.
    n = len(config["provider"]["worker_ips"])
    assert config["min_workers"] == config["max_workers"] == n >= 1
    validate_config(prepare_config(config))  # what `ray up` does before it connects to a node


def test_ray_cluster_start_commands() -> None:
    config = _load(RAY_CLUSTER_FILE)
    head, workers = _commands(config["head_start_ray_commands"]), _commands(config["worker_start_ray_commands"])
    for cmds in (head, workers):
        assert Path(cmds[0][0]).name == "ray" and cmds[0][1:] == ["stop"]  # restarts cleanly on re-run
        assert Path(cmds[-1][0]).name == "ray" and cmds[-1][1] == "start"
    head_start, worker_start = head[-1], workers[-1]
    assert "--head" in head_start and "--port=6379" in head_start
    assert "--dashboard-host=127.0.0.1" in head_start
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_start  # how workers get started
    assert "--head" not in worker_start and "--address=$RAY_HEAD_IP:6379" in worker_start
    for cmd in head + workers:
        hosts = [a.split("=", 1)[1] for a in cmd if a.startswith("--dashboard-host")]
        assert hosts in ([], ["127.0.0.1"])


def test_ray_cluster_requires_rays_token_and_hands_prefect_credentials_to_nodes_not_argv() -> None:
    config = _load(RAY_CLUSTER_FILE)
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if " start " in c]
    assert len(starts) == 2
    for cmd in starts:
        env = _assignments(cmd)
        assert env["RAY_AUTH_MODE"] == "token"  # the GCS, dashboard and job API refuse strangers
        # Read by the node's shell from a copied file: in Ray's environment, on no command line.
        assert env["PREFECT_API_AUTH_STRING"].startswith("$(cat ")
    mounts = config["file_mounts"]
    assert mounts["~/.ray/auth_token"] == "~/.ray/auth_token"  # one token on every node
    assert "~/.config/crucible/prefect-auth" in mounts


def test_ray_cluster_runs_ray_from_the_environment_it_installs_crucible_into() -> None:
    config = _load(RAY_CLUSTER_FILE)
    pip = next(c for c in _commands(config["setup_commands"]) if Path(c[0]).name == "pip")
    assert "install" in pip and "-e" in pip
    checkout = pip[pip.index("-e") + 1]
    bin_dir = Path(pip[0]).parent
    assert Path(checkout).is_absolute()
    for cmd in _commands(config["head_start_ray_commands"] + config["worker_start_ray_commands"]):
        assert Path(cmd[0]).parent == bin_dir, cmd


# --- kuberay/ ---------------------------------------------------------------------------


def _containers(pod_template: dict[str, Any]) -> list[dict[str, Any]]:
    return pod_template["spec"]["containers"]


def _pvc_mounts(pod_template: dict[str, Any], claim: str) -> list[str]:
    volumes = {
        v["name"]
        for v in pod_template["spec"].get("volumes", [])
        if v.get("persistentVolumeClaim", {}).get("claimName") == claim
    }
    return [
        m["mountPath"] for c in _containers(pod_template) for m in c.get("volumeMounts", []) if m["name"] in volumes
    ]


def test_raycluster_head_ports_and_ray_version() -> None:
    import ray

    cluster = _load(KUBERAY_CLUSTER_FILE)
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert cluster["spec"]["rayVersion"] == ray.__version__  # the pinned Ray
    (head,) = _containers(cluster["spec"]["headGroupSpec"]["template"])
    ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    assert ports["gcs"] == 6379 and ports["dashboard"] == 8265 and ports["client"] == 10001


def test_raycluster_requires_rays_token_and_gives_every_pod_the_prefect_secret() -> None:
    spec = _load(KUBERAY_CLUSTER_FILE)["spec"]
    assert spec["authOptions"] == {"mode": "token"}  # KubeRay makes the token Secret and sets it in each pod
    templates = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    for template in templates:
        for container in _containers(template):
            env = {e["name"]: e for e in container.get("env", [])}
            ref = env["PREFECT_API_AUTH_STRING"]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "crucible-prefect-auth" and ref["key"] == "auth_string"
            assert "value" not in env["PREFECT_API_AUTH_STRING"]


def test_raycluster_shares_the_runs_volume_and_sizes_every_pod() -> None:
    spec = _load(KUBERAY_CLUSTER_FILE)["spec"]
    templates = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    assert len(templates) >= 2
    images = set()
    for template in templates:
        assert _pvc_mounts(template, "crucible-runs") == ["/runs"]
        for container in _containers(template):
            images.add(container["image"])
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert len(images) == 1  # every node must run the same code


def test_rayjob_runs_crucible_on_the_raycluster() -> None:
    from infra.app.cli import _parser
    from infra.app.config import load_config

    cluster, job = _load(KUBERAY_CLUSTER_FILE), _load(KUBERAY_JOB_FILE)
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    # KubeRay takes the cluster's name from this one key; any other selector is an error.
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert "rayClusterSpec" not in job["spec"]

    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["crucible", "run"]
    args = _parser().parse_args(argv[1:])
    cfg = load_config("demo", args.overrides)  # the overrides name real keys with valid values
    head = cluster["spec"]["headGroupSpec"]["template"]
    assert cfg.runs_dir in _pvc_mounts(head, "crucible-runs")
    # The config file is read on the head (where Ray runs a job's entrypoint), from the ConfigMap.
    config_mounts = [
        m["mountPath"]
        for c in _containers(head)
        for m in c.get("volumeMounts", [])
        if m["name"] in {v["name"] for v in head["spec"]["volumes"] if "configMap" in v}
    ]
    assert any(Path(args.config).parent == Path(m) for m in config_mounts)
