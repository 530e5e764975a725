"""The validator: a YAML mapping (and ``key.path=value`` overrides) checked against ``SCHEMA``, key by key,
with one-line errors that name the key path and the value."""
from __future__ import annotations

import copy
import math
from typing import Any, Iterable

import yaml

from fer_edge.common.config.fields import ConfigError, F
from fer_edge.common.config.schema import MOVED, PLUGIN_POINTS, SCHEMA, schema_at
from fer_edge.common.yamlsafe import LimitedLoader, YamlLimit, short


def _as_given(prefix: str, raw: dict[str, Any], unknown: list[str]) -> dict[str, Any]:
    """Sub-sections of a plugin point whose plugins this process has not registered: kept unchecked."""
    if prefix not in PLUGIN_POINTS or schema_at(prefix)[PLUGIN_POINTS[prefix]].choices is not None:
        return {}
    return {k: copy.deepcopy(raw[k]) for k in unknown if isinstance(raw[k], dict)}


def refuse_moved(path: str) -> None:
    if path in MOVED:
        raise ConfigError(f"config key '{path}' is now '{MOVED[path]}': set that one instead")


def defaults(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The default config as a plain nested dict."""
    schema = SCHEMA if schema is None else schema
    return {k: defaults(v) if isinstance(v, dict) else copy.deepcopy(v.default) for k, v in schema.items()}


def with_defaults(saved: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """``saved`` (e.g. a run's own config.yaml, written by an older version) with the keys it lacks
    filled in from SCHEMA's defaults; keys it has are kept as they are."""
    schema = SCHEMA if schema is None else schema
    out = dict(saved)
    for k, spec in schema.items():
        if isinstance(spec, dict):
            out[k] = with_defaults(saved.get(k) or {}, spec)
        elif k not in saved:
            out[k] = copy.deepcopy(spec.default)
    return out


def _type_name(t: type | tuple[type, ...]) -> str:
    ts = t if isinstance(t, tuple) else (t,)
    names = {int: "integer", float: "number", str: "string", bool: "true/false"}
    return " or ".join(names.get(x, x.__name__) for x in ts)


def _check_value(path: str, spec: F, value: Any) -> Any:
    if value is None and spec.nullable:
        return None
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok and float in types and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(f"config key '{path}': {short(value)} is a {type(value).__name__}, expected {_type_name(spec.type)}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"config key '{path}': {short(value)} is not one of {', '.join(map(repr, spec.choices))}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{path}': {short(value)} is not a finite number; give a value between "
                          f"{spec.min} and {spec.max}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if spec.min is not None and value < spec.min:
            raise ConfigError(f"config key '{path}': {short(value)} is below the minimum {spec.min}")
        if spec.max is not None and value > spec.max:
            raise ConfigError(f"config key '{path}': {short(value)} is above the maximum {spec.max}")
    return value


def validate(raw: Any, schema: dict[str, Any] | None = None, prefix: str = "") -> dict[str, Any]:
    """Validate ``raw`` against ``schema``; missing keys take their defaults."""
    schema = SCHEMA if schema is None else schema
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        where = f"config key '{prefix}'" if prefix else "config file"
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(raw).__name__} {short(raw)}")
    unknown = sorted(set(raw) - set(schema))
    for k in unknown:
        refuse_moved(f"{prefix}.{k}" if prefix else k)
    out = _as_given(prefix, raw, unknown)
    unknown = [k for k in unknown if k not in out]
    if unknown:
        p = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown config key '{p}{unknown[0]}' (value {short(raw[unknown[0]])}); "
                          f"known keys here: {', '.join(sorted(schema))}")
    for key, spec in schema.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(spec, dict):
            out[key] = validate(raw.get(key), spec, path)
        else:
            out[key] = _check_value(path, spec, raw[key]) if key in raw else copy.deepcopy(spec.default)
    return out


def parse_override(item: str) -> tuple[str, Any]:
    """'train.epochs=5' -> ('train.epochs', 5); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"override {short(item)}: expected KEY.PATH=VALUE, e.g. train.epochs=5")
    key, value = item.split("=", 1)
    key = key.strip()
    try:
        parsed = yaml.load(value, Loader=LimitedLoader) if value.strip() != "" else ""
    except YamlLimit as exc:
        raise ConfigError(f"override {short(key)}: {exc}") from None
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str | tuple[str, Any]]) -> dict[str, Any]:
    raw = copy.deepcopy(raw) if raw else {}
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        refuse_moved(key.strip())
        node, schema = raw, SCHEMA
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(schema, dict) or part not in schema:
                known = f"; known keys here: {', '.join(sorted(schema))}" if isinstance(schema, dict) else ""
                raise ConfigError(f"unknown config key '{'.'.join(parts[:i + 1])}' in override {key}={short(value)}{known}")
            schema = schema[part]
            if i == len(parts) - 1:
                if isinstance(schema, dict):
                    raise ConfigError(f"config key '{key}' is a section; set one of its keys: {', '.join(schema)}")
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"config key '{'.'.join(parts[:i + 1])}' must be a mapping")
    return raw
