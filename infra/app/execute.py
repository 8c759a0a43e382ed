"""Running a flow from the command line: the checks before anything starts, the embedded
runtime, the run directory's lock and stage keys, and the message at the end."""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from flows.config import PipelineConfig, dump_config
from flows.stage import SHARD_STAGES, get_stage, skips, stage_names
from infra.core.storage import DISK_FULL, RunDir, write_text

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.client.schemas.objects import State

    from flows.stages import StageKey
    from infra.app.runtime import Runtime
    from infra.app.startup import Clock
    from tasks.tracking.pipeline_tracker import PipelineTracker


def flow_call(command: str, cfg: PipelineConfig, run: RunDir) -> tuple[Callable[..., Any], tuple]:
    """The flow a command runs and its arguments: the pipeline, or one stage's flow as the
    pipeline would call it."""
    # Flows import Prefect, Ray and torch: only after the runtime is up and the config is valid.
    if command == "run":
        from flows.pipeline import pipeline_flow

        return pipeline_flow, (cfg, str(run.root))
    if command == "sweep":
        from flows.sweep import sweep_flow

        return sweep_flow, (cfg, str(run.root))
    stage = get_stage(command)
    return stage.load_flow(), stage.arguments(cfg, str(run.root))


def preflight(command: str, cfg: PipelineConfig, run: RunDir) -> dict[str, str]:
    """Input and config problems found before any server, Ray worker or DeepSpeed engine starts:
    each stage the command runs checks its own (flows/stage.py). Returns what each stage would
    do (flows/stages.py)."""
    from flows import stages

    wanted = stage_names() if command == "run" else (command,)
    if command == "sweep":
        if problems := cfg.sweep.problems():
            raise ValueError("; ".join(problems))
        wanted = SHARD_STAGES
        get_stage("train").preflight(cfg, run, {})  # the grid runs' shared settings
    actions: dict[str, str] = {}
    if run.root.exists():
        # A change under a finished or started training is refused here, before config.yaml changes.
        actions = stages.plan(run, cfg, wanted)
    for name in wanted:
        get_stage(name).preflight(cfg, run, actions)
    return actions


def finish_message(rt: Runtime, flow_run_id: str) -> str:
    """Where to see the run in the UI once this command has ended."""
    url = rt.flow_run_url(flow_run_id)
    if not rt.owns_server:
        return f"flow run: {url}"
    port = rt.api_url.rsplit(":", 1)[1].split("/")[0]
    return (
        f"flow run: {url}\nThe Prefect server this command started has stopped; to open the run in the UI, "
        f"start it again with `crucible server --port {port}` and open the link above."
    )


def _print_tracking_link(cfg: PipelineConfig, run: RunDir) -> None:
    """The MLflow run's page, when this command tracked the run (tracking.mlflow)."""
    from tasks.tracking.run_record import link_line

    if cfg.tracking.mlflow.enabled and (line := link_line(run.root)) is not None:
        print(line, flush=True)


def _stage_tracker(command: str, cfg: PipelineConfig, run: RunDir, flow_run_id: str) -> PipelineTracker | None:
    """A stage command's view of the run's MLflow run (the pipeline flow opens its own): it
    continues the run's MLflow run, or with tracking off stops training's rank 0 logging to it."""
    if command in ("run", "sweep"):
        return None
    from tasks.tracking.pipeline_tracker import PipelineTracker

    return PipelineTracker.open(cfg.tracking.mlflow, run, cfg.runs_dir, cfg.model_dump(mode="json"), flow_run_id)


def _new_flow_run(fn: Any, parameters: dict[str, Any]) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.create_flow_run(fn, parameters=parameters)


def _run_flow_run(
    run: RunDir, key: StageKey | None, fn: Any, made: Any, parameters: dict[str, Any], stopping: Callable[[], bool]
) -> State[Any] | None:
    """Run the flow run to its end and return its state; a stage command runs it as the
    pipeline runs a stage (flows/stages.py:run_stage), between its two records. None when a
    stop signal (`stopping()`) interrupted it."""
    from prefect.flow_engine import run_flow

    from flows.stages import run_stage

    def call() -> State[Any]:
        # Every command's function is a synchronous flow: asked for its state, it returns just that.
        return cast(
            "State[Any]",
            run_flow(cast("Flow[..., Any]", fn), flow_run=made, parameters=parameters, return_type="state"),
        )

    try:
        return call() if key is None else run_stage(run, key, call, finished=lambda state: state.is_completed())
    except KeyboardInterrupt:
        if not stopping():
            raise  # Ctrl-C: main() reports it
        return None


# Ray Train (training, and a sweep's grid runs) reads Ray's state API, which the dashboard
# serves; the other stages' tasks need no dashboard, and a local Ray starts faster without it.
RAY_TRAIN_COMMANDS = ("train", "sweep")


def execute(
    command: str,
    cfg: PipelineConfig,
    run: RunDir,
    flow_run: Callable[[RunDir], Any] | None = None,
    actions: dict[str, str] | None = None,
) -> int:
    """Run a flow in the embedded runtime and report how it ended. `flow_run` may return an
    existing flow run (set up for a retry) to continue instead of creating a new one. `actions`
    (preflight's) let the pipeline's Ray start beside the Prefect server when a stage has work.
    Its last line, on stderr, says where the start-up time went (infra/app/startup.py)."""
    from flows import cluster
    from infra.app.startup import take

    clock, connected = take(), cluster.last_connection()
    clock.end_checks()
    try:
        return _execute(command, cfg, run, flow_run, clock, actions)
    finally:
        if cluster.last_connection() is not connected and "Ray" not in clock.parts:
            _ray_in_flow(clock)
        print(clock.line(command), file=sys.stderr, flush=True)


def _ray_in_flow(clock: Clock) -> None:
    """The pipeline connects to Ray inside its flow: its time is part of the flow's, said apart."""
    from flows import cluster

    c = cluster.last_connection()
    if c is not None and clock.flow_s is not None:
        how = f"joined the cluster at {c.address}" if c.how == "joined" else "started a local instance"
        clock.flow_note = f"Ray {c.seconds:.1f} s of it: {how}"


def _checked_flow_call(
    command: str, cfg: PipelineConfig, run: RunDir, clock: Clock
) -> tuple[Callable[..., Any], tuple]:
    """`flow_call`, its imports made while every node of the cluster answers the probe
    (flows/cluster.py); the pipeline probes the cluster itself, once Ray is needed."""
    if command == "run":
        with clock.part("imports"):
            return flow_call(command, cfg, run)
    from flows.cluster import start_check

    with clock.part("cluster check"):
        check = start_check(run.root)
    try:
        with clock.part("imports"):
            called = flow_call(command, cfg, run)
    except BaseException:
        check.discard()
        raise
    with clock.part("cluster check"):
        check.result()
    return called


def _ray_needs(command: str, actions: dict[str, str] | None) -> tuple[bool, bool]:
    """Whether the command starts Ray before its flow, and with the dashboard. The pipeline
    connects to Ray itself when a stage has work; a `crucible run` whose plan (preflight's
    `actions`, none on a new run directory) has work starts it beforehand, beside the Prefect
    server, and an unchanged re-run still starts none."""
    if command != "run":
        return True, command in RAY_TRAIN_COMMANDS
    if actions is None or (actions and all(map(skips, actions.values()))):
        return False, True
    return True, not skips(actions.get("train"))


def _execute(
    command: str,
    cfg: PipelineConfig,
    run: RunDir,
    flow_run: Callable[[RunDir], Any] | None,
    clock: Clock,
    actions: dict[str, str] | None,
) -> int:
    from flows import stages
    from flows.run_lock import run_lock
    from infra.app.crashed import mark_crashed_runs
    from infra.app.runtime import embedded_runtime
    from infra.app.stop import Stopper, mark_cancelled
    from tasks.report import write_report

    run.root.mkdir(parents=True, exist_ok=True)
    start_ray, dashboard = _ray_needs(command, actions)
    with embedded_runtime(cfg.runtime, run.root / "logs", start_ray, dashboard, clock) as rt:
        with clock.part("checks"):
            mark_crashed_runs(Path(cfg.runs_dir))
        fn, fn_args = _checked_flow_call(command, cfg, run, clock)
        print(f"Prefect UI: {rt.ui_url}", flush=True)
        stopper = Stopper(run, cfg.training.stop_grace_s, rt.api_url)
        # The pipeline flow locks the run directory itself (deployment runs go through it too).
        with contextlib.nullcontext() if command == "run" else run_lock(run), stopper:
            key = stages.expected_keys(cfg).get(command)
            if key is not None:
                write_text(run.config, dump_config(cfg))
            parameters = inspect.signature(getattr(fn, "fn", fn)).bind(*fn_args).arguments
            # Made before it runs, so its id is known here: Cancel in the UI is watched for by id.
            with clock.part("Prefect flow run"):
                existing = flow_run(run) if flow_run is not None else None
                made = existing if existing is not None else _new_flow_run(fn, parameters)
            stopper.flow_run_id = made.id
            tracker = _stage_tracker(command, cfg, run, str(made.id))
            with clock.flow():
                state = _run_flow_run(run, key, fn, made, parameters, lambda: stopper.reason is not None)
            if tracker is not None and state is not None and state.is_completed():
                tracker.stage(command, run, "ran")
                tracker.finish(run)
        if stopper.reason is not None and (state is None or not state.is_completed()):
            message = stopper.cancelled_message()
            mark_cancelled(rt.api_url, made.id, message)
            print(finish_message(rt, str(made.id)), flush=True)
            _print_tracking_link(cfg, run)
            print(f"cancelled: {message}", file=sys.stderr)
            return 143 if stopper.reason == "SIGTERM" else 1
        assert state is not None
        print(finish_message(rt, str(state.state_details.flow_run_id)), flush=True)
        _print_tracking_link(cfg, run)
        if not state.is_completed():
            print(f"error: {command} failed: {state.message or state.result(raise_on_failure=False)}", file=sys.stderr)
            if any(marker in str(state.message) for marker in DISK_FULL):
                print(f"the disk holding {run.root} is full: free space first", file=sys.stderr)
            print(f"continue it from where it stopped: crucible resume {run.root.name}", file=sys.stderr)
            return 1
    with clock.shutdown():
        report = write_report(run.root)
    print(f"done: {run.root} (report: {report})")
    return 0
