"""`crucible export` of a tracked run: the exported Hugging Face folder becomes a new version
of the registered model (tracking.mlflow.model_name), its files logged to the run first."""

from __future__ import annotations

from pathlib import Path

from tasks.tracking.client import mlflow_client
from tasks.tracking.run_record import active_record

ARTIFACT_PATH = "hf_model"  # where the folder lies among the MLflow run's artifacts


def register_export(run_root: Path, folder: Path) -> str | None:
    """Register `folder` as a model version of the run directory's MLflow run and say so;
    None when the run is not tracked. A tracking server that is down is a line saying so,
    not a failed export."""
    record = active_record(run_root)
    if record is None:
        return None
    try:
        client = mlflow_client(record.uri, record.timeout_s)
        client.log_artifacts(record.run_id, str(folder), ARTIFACT_PATH)
        source = f"{client.get_run(record.run_id).info.artifact_uri.rstrip('/')}/{ARTIFACT_PATH}"
        if not client.search_registered_models(filter_string=f"name = '{record.model_name}'"):
            client.create_registered_model(record.model_name)
        version = client.create_model_version(
            record.model_name, source, run_id=record.run_id, tags={"crucible.run_dir": str(run_root)}
        )
    except Exception as exc:  # best effort: the export itself has succeeded
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return f"warning: not registered in MLflow ({type(exc).__name__}: {first})"
    return f"registered in MLflow as {record.model_name} version {version.version} ({record.url()})"
