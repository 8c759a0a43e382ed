"""Loading the pipeline configuration: a preset or YAML file plus `--set` overrides, validated.

Problems are gathered and raised together, each naming the key and the fix, before any
server, Ray worker or DeepSpeed engine starts.
"""

from __future__ import annotations

import copy
import reprlib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from flows.config import PipelineConfig
from infra.core.storage import read_utf8


class ConfigError(ValueError):
    """A configuration problem the user must fix; the message lists every problem found."""


PRESETS = ("demo", "debug", "web-demo", "web-multilingual", "sweep-demo")


def _shown(value: Any) -> str:
    """A value as an error shows it, bounded: a large list or mapping given where a number
    belongs would otherwise print whole."""
    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxdict, r.maxstring, r.maxother = 3, 6, 6, 120, 120
    return r.repr(value)


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
        data = yaml.safe_load(read_utf8(path, "save it as UTF-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, not {type(data).__name__}")
    if _expanded_size(data, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ConfigError(
            f"{path} expands to more than {MAX_CONFIG_VALUES:,} values (YAML aliases that repeat one "
            f"another?); a pipeline config has a few hundred: write the values out"
        )
    return data


MAX_CONFIG_VALUES = 100_000


def _expanded_size(node: Any, limit: int) -> int:
    """How many values `node` holds once its YAML aliases are expanded, counting no further than
    just past `limit` (an alias bomb of 340 bytes expands to billions)."""
    count, stack = 0, [node]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _is_text_field(parts: list[str]) -> bool:
    """Whether the key names a field that holds only text (str or str | None)."""
    model: Any = PipelineConfig
    for part in parts:
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return False
        model = field.annotation
    return model in (str, str | None)


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
    # YAML parsing gives ints, floats, bools, null and lists the same meaning as in files; a
    # text field keeps the text as typed (run_id=20240101 is a name, not a number), but null.
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, (int, float, bool)) and _is_text_field(parts):
        value = raw.strip()
    node[parts[-1]] = value


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
    return f"'{loc}': {err['msg']} (got {_shown(err.get('input'))})"


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


def load_config(
    source: str | Path | None = None, overrides: list[str] | None = None, run_id: str | None = None
) -> PipelineConfig:
    """Load a preset name or YAML path (default: the demo preset), apply `--set` overrides and
    `run_id` (taken as text, never parsed), validate."""
    source = source or "demo"
    path = preset_path(str(source)) if str(source) in PRESETS else Path(source)
    data = copy.deepcopy(_read_yaml(path))
    for item in overrides or []:
        _apply_override(data, item)
    if run_id is not None:
        data["run_id"] = run_id
    _expand_model_preset(data)
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e, PipelineConfig) for e in exc.errors()]
        raise ConfigError(f"invalid configuration from {path}:\n  - " + "\n  - ".join(problems)) from None
    return cfg
