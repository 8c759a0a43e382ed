"""Loading the pipeline configuration: a preset or YAML file plus `--set` overrides, validated.

Problems are gathered and raised together, each naming the key and the fix, before any
server, Ray worker or DeepSpeed engine starts.
"""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from flows.config import PipelineConfig


class ConfigError(ValueError):
    """A configuration problem the user must fix; the message lists every problem found."""


PRESETS = ("demo", "debug", "web-demo")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def preset_path(name: str) -> Path:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; valid presets: {', '.join(PRESETS)}")
    return Path(str(resources.files("infra.app") / "presets" / f"{name}.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            f"config file {path} not found; pass an existing YAML file or a preset name ({', '.join(PRESETS)})"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def _apply_override(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{item}' must look like section.key=value")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{item}': '{part}' is a value, not a section")
        node = child
    # YAML parsing gives ints, floats, bools, null and lists the same meaning as in files.
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""


def _describe(err: ErrorDetails, model: type[BaseModel]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        parent: Any = model
        for part in err["loc"][:-1]:
            field = (
                parent.model_fields.get(str(part))
                if isinstance(parent, type) and issubclass(parent, BaseModel)
                else None
            )
            parent = field.annotation if field is not None else None
        valid = sorted(parent.model_fields) if isinstance(parent, type) and issubclass(parent, BaseModel) else []
        hint = f"; valid keys here: {', '.join(valid)}" if valid else ""
        return f"unknown key '{loc}'{hint}"
    return f"'{loc}': {err['msg']} (got {err.get('input')!r})"


def _expand_model_preset(data: dict[str, Any]) -> None:
    """`model: {preset: NAME, ...}` becomes the preset's fields, with explicit keys on top."""
    model = data.get("model")
    if not isinstance(model, dict) or "preset" not in model:
        return
    from models.presets import get_preset

    try:
        base = get_preset(str(model["preset"])).model.model_dump()
    except ValueError as exc:
        raise ConfigError(f"'model.preset': {exc}") from None
    data["model"] = {**base, **{k: v for k, v in model.items() if k != "preset"}}


def load_config(source: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """Load a preset name or YAML path (default: the demo preset), apply `--set` overrides, validate."""
    source = source or "demo"
    path = preset_path(str(source)) if str(source) in PRESETS else Path(source)
    data = copy.deepcopy(_read_yaml(path))
    for item in overrides or []:
        _apply_override(data, item)
    _expand_model_preset(data)
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e, PipelineConfig) for e in exc.errors()]
        raise ConfigError(f"invalid configuration from {path}:\n  - " + "\n  - ".join(problems)) from None
    if cfg.run_id is not None and not _RUN_ID.match(cfg.run_id):
        raise ConfigError(f"run_id '{cfg.run_id}' may hold only letters, digits, '.', '_' and '-'")
    return cfg
