"""Load and validate config.yaml once, at start.

Every setting of the project is declared in ``SCHEMA`` (type, range, choices). ``load_config``
reads the YAML file, applies ``key.path=value`` overrides (from CLI flags or make variables),
rejects unknown keys, wrong types and out-of-range values with a ``ConfigError`` that names the
key path and the value, and returns a frozen-ish nested dict. Entry points turn a ConfigError
into a message on stderr and exit code 2 (``exit_on_config_error``).
"""
from __future__ import annotations

import copy
import logging
import math
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import yaml

from fer_edge.common.yamlsafe import LimitedLoader, YamlLimit, short

PACKAGE_DIR = Path(__file__).resolve().parent.parent      # fer_edge/: in a checkout, or installed by pip


def _root() -> Path:
    """In a checkout or an installed service (config.yaml beside the package) relative paths are relative
    to that folder; a package installed by pip has none, so they are relative to the current directory."""
    checkout = PACKAGE_DIR.parent
    if (checkout / "config.yaml").is_file():
        return checkout
    return Path.cwd()


ROOT = _root()
DEFAULT_CONFIG = ROOT / "config.yaml"   # absent for an installed package run outside a checkout: the defaults apply


def config_help() -> str:
    """What --help says of --config: the checkout's config.yaml, or the current folder's outside one."""
    if ROOT == PACKAGE_DIR.parent:
        return f"config file (default: {DEFAULT_CONFIG})"
    return "config file (default: ./config.yaml when the current folder has one, else the built-in defaults)"


class ConfigError(ValueError):
    """A config problem; the message names the key path, the value and what is allowed."""


@dataclass(frozen=True)
class F:
    """One setting: its type(s), default and allowed values."""
    type: type | tuple[type, ...]
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False


# Every setting of the project. config.yaml holds the same keys, commented.
SCHEMA: dict[str, Any] = {
    "data": {
        "root": F(str, "../shared/data/fer2013"),
        "cache_dir": F(str, ".cache/fer2013"),
        "val_fraction": F(float, 0.1, min=0.0, max=0.5),
        "test_subset": F(str, "all", choices=("all", "PublicTest", "PrivateTest")),
        "max_per_class": F(int, 0, min=0),
        "seed": F(int, 1337, min=0),
        "labels": F(str, "fer2013", choices=("fer2013", "ferplus")),
        "ferplus_csv": F(str, ""),
        "label_blend": F((int, float), 0.0, min=0.0, max=1.0),
    },
    "train": {
        "arch": F(str, "default", choices=("default", "seed", "tiny")),
        "runs_dir": F(str, "runs"),
        "epochs": F(int, 50, min=1, max=10000),
        "batch_size": F(int, 128, min=1, max=4096),
        "optimizer": F(str, "adamw", choices=("adam", "adamw")),
        "learning_rate": F(float, 0.002, min=1e-7, max=1.0),
        "weight_decay": F(float, 0.0005, min=0.0, max=1.0),
        "lr_schedule": F(str, "cosine", choices=("cosine", "plateau")),
        "warmup_epochs": F(int, 2, min=0),
        "min_lr": F(float, 1e-6, min=0.0, max=1.0),
        "plateau_factor": F(float, 0.5, min=0.01, max=0.99),
        "plateau_patience": F(int, 4, min=1),
        "early_stopping_patience": F(int, 15, min=1),
        "average_last": F(int, 0, min=0, max=1000),
        "label_smoothing": F(float, 0.1, min=0.0, max=0.5),
        "class_weight": F(str, "sqrt", choices=("none", "sqrt", "balanced")),
        "dropout": F(float, 0.4, min=0.0, max=0.9),
        "bn_momentum": F(float, 0.99, min=0.0, max=0.9999),
        "precision": F(str, "auto", choices=("auto", "float32", "mixed_bfloat16", "mixed_float16")),
        "seed": F(int, 1337, min=0),
        "verbose": F(int, 1, choices=(0, 1, 2)),
        "export_seed_format": F(bool, False),
        "tensorboard": F(bool, True),
        "augment": {
            "hflip": F(bool, True),
            "rotation_deg": F((int, float), 12.0, min=0, max=90),
            "shear_deg": F((int, float), 8.0, min=0, max=45),
            "zoom": F((int, float), 0.12, min=0, max=0.9),
            "shift": F((int, float), 0.1, min=0, max=0.5),
            "brightness": F((int, float), 0.2, min=0, max=1.0),
            "contrast": F((int, float), 0.2, min=0, max=1.0),
            "erasing_prob": F((int, float), 0.5, min=0, max=1.0),
            "mixup_alpha": F((int, float), 0.0, min=0, max=10.0),
            "cutmix_alpha": F((int, float), 0.0, min=0, max=10.0),
            "mix_prob": F((int, float), 0.5, min=0, max=1.0),
        },
    },
    "teacher": {
        "models": F(list, []),
        "temperature": F((int, float), 2.0, min=0.1, max=20),
        "hard_weight": F((int, float), 0.5, min=0.0, max=1.0),
        "mirror": F(bool, True),
        "cache_dir": F(str, ".cache/teachers"),
    },
    "convert": {
        "model": F(str, "auto"),
        "output_dir": F(str, "models"),
        "name": F(str, "emotion"),
        "precision": F(str, "int8", choices=("int8", "float32")),
        "calibration_size": F(int, 500, min=7, max=100000),
        "max_top1_drop": F((int, float), 1.0, min=0, max=100),
        "min_agreement": F((int, float), 0.97, min=0, max=1),
        "eval_max_images": F(int, 0, min=0),
        "mirror": F((bool, str), "auto"),
        "temperature": F((int, float, str), 1.0),
        "logit_adjust": F((int, float), 0.0, min=-2.0, max=2.0),
    },
    "edge": {
        "model": F(str, "models/emotion_int8.tflite"),
        "source": F((str, int), "auto"),
        "loop": F(bool, False),
        "display": F(str, "auto", choices=("auto", "on", "off")),
        "log": F(str, "logs/emotions.csv"),
        "max_frames": F(int, 0, min=0),
        "threads": F(int, 1, min=1, max=16),
        "flip_tta": F((bool, str), "auto", choices=(True, False, "auto")),
        "max_image_mp": F((int, float), 40.0, min=0.1, max=1000),
        "max_bad_frames": F(int, 250, min=0, max=1000000),
        "camera": {
            "width": F(int, 640, min=16, max=8192),
            "height": F(int, 480, min=16, max=8192),
            "fps": F(int, 30, min=1, max=240),
            "stall_timeout_s": F((int, float), 5.0, min=0.1, max=3600),
            "reconnect_attempts": F(int, 0, min=0, max=100000),
            "reconnect_backoff_s": F((int, float), 1.0, min=0.0, max=600),
            "reconnect_backoff_max_s": F((int, float), 30.0, min=0.0, max=3600),
        },
        "detector": {           # + one section per backend, declared by its module (see PLUGIN_POINTS)
            "backend": F(str, "haar"),
            "min_size": F(int, 24, min=8, max=4096),
            "max_faces": F(int, 5, min=1, max=100),
            "detect_width": F(int, 320, min=0, max=8192),
            "margin": F(float, 0.0, min=-0.5, max=1.0),
            "full_scan_every": F(int, 15, min=1, max=10000),
        },
        "tracking": {
            "iou_threshold": F(float, 0.3, min=0.0, max=1.0),
            "max_missed": F(int, 10, min=0, max=10000),
        },
        "smoothing": {
            "method": F(str, "logema", choices=("none", "ema", "logema", "window")),
            "alpha": F(float, 0.4, min=0.01, max=1.0),
            "window": F(int, 5, min=1, max=1000),
            "hysteresis": F(float, 0.15, min=0.0, max=1.0),
        },
        "csv": {
            "fsync": F(str, "interval", choices=("always", "interval", "never")),
            "fsync_interval_s": F((int, float), 5.0, min=0.0, max=3600),
            "rotate_mb": F((int, float), 50.0, min=0.0, max=1e6),
            "keep": F(int, 5, min=0, max=1000),
            "min_interval_s": F((int, float), 0.0, min=0.0, max=86400),
            "on_error": F(str, "retry", choices=("retry", "exit")),
        },
    },
    "web": {
        "enabled": F(bool, False),
        "host": F(str, "127.0.0.1"),
        "port": F(int, 8080, min=1, max=65535),
        "token": F(str, ""),
        "max_upload_mb": F((int, float), 10.0, min=0.01, max=1024),
        "max_concurrent_predictions": F(int, 2, min=1, max=64),
        "stream_fps": F((int, float), 10.0, min=0.1, max=60),
        "jpeg_quality": F(int, 80, min=10, max=100),
        "history_minutes": F(int, 360, min=0, max=1440),
        "max_connections": F(int, 100, min=4, max=10000),
        "request_timeout_s": F((int, float), 10.0, min=0.5, max=3600),
    },
    "mqtt": {
        "enabled": F(bool, False),
        "host": F(str, "localhost"),
        "port": F(int, 1883, min=1, max=65535),
        "device": F(str, ""),
        "topic_prefix": F(str, "fer"),
        "discovery_prefix": F(str, "homeassistant"),
        "keepalive_s": F(int, 30, min=2, max=3600),
        "qos": F(int, 0, choices=(0, 1)),
        "username": F(str, ""),
        "password_file": F(str, ""),
        "update_interval_s": F((int, float), 5.0, min=0.2, max=3600),
        "queue_size": F(int, 256, min=8, max=100000),
        "tls": {
            "enabled": F(bool, False),
            "ca_file": F(str, ""),
            "cert_file": F(str, ""),
            "key_file": F(str, ""),
        },
    },
}

# Sections whose plugins declare sub-sections of their own, with the key that picks one: each module of
# fer_edge/edge/detect/ adds edge.detector.<backend> when imported (register_plugin). A process that never
# imports them (training, conversion) keeps those sub-sections as given, unchecked.
PLUGIN_POINTS = {"edge.detector": "backend"}
# Keys that moved, old path -> new path: the old one is refused with the new one named.
MOVED = {f"edge.detector.{k}": f"edge.detector.{b}.{k}" for b, keys in (
    ("haar", ("profile", "scale_factor", "min_neighbors", "profile_every")),
    ("blazeface", ("min_score", "model_dir"))) for k in keys}


def _section(where: str) -> dict[str, Any]:
    node = SCHEMA
    for part in where.split("."):
        node = node[part]
    return node


def register_plugin(where: str, name: str, schema: dict[str, Any]) -> None:
    """Add plugin ``name``'s own section ``where.name`` and make ``name`` a choice of the key that picks one."""
    section, key = _section(where), PLUGIN_POINTS[where]
    if name in section and name not in (section[key].choices or ()):
        raise ValueError(f"{where}.{name} is a setting already; a plugin cannot take that name")
    section[name] = schema
    section[key] = replace(section[key], choices=tuple(dict.fromkeys((*(section[key].choices or ()), name))))


def _as_given(prefix: str, raw: dict[str, Any], unknown: list[str]) -> dict[str, Any]:
    """Sub-sections of a plugin point whose plugins this process has not registered: kept unchecked."""
    if prefix not in PLUGIN_POINTS or _section(prefix)[PLUGIN_POINTS[prefix]].choices is not None:
        return {}
    return {k: copy.deepcopy(raw[k]) for k in unknown if isinstance(raw[k], dict)}


def _refuse_moved(path: str) -> None:
    if path in MOVED:
        raise ConfigError(f"config key '{path}' is now '{MOVED[path]}': set that one instead")


TOPIC_WORD = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOPIC_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,7}")


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
        _refuse_moved(f"{prefix}.{k}" if prefix else k)
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
        _refuse_moved(key.strip())
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


class _UniqueKeyLoader(LimitedLoader):
    """yaml.safe_load that refuses a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"config key {short(key)} appears twice (lines {seen[key] + 1} and "
                                  f"{key_node.start_mark.line + 1}): keep one")
            seen[key] = key_node.start_mark.line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep)
        return mapping


def load_config(path: str | Path | None = None, overrides: Iterable[str | tuple[str, Any]] = ()) -> dict[str, Any]:
    """Read, override and validate a config file. Raises ConfigError naming the key and value."""
    if not path and not DEFAULT_CONFIG.is_file() and ROOT != PACKAGE_DIR.parent:
        return check_combinations(validate(apply_overrides({}, overrides)))   # installed, no config.yaml: defaults
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"config file {path} not found: pass --config PATH or copy config.yaml from the repository")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text (a binary file, or saved as UTF-16?): "
                          "save it as UTF-8 or copy config.yaml from the repository") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except YamlLimit as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())[:300]}") from None
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections (data:, train:, edge:, ...), "
                          f"got a YAML {type(raw).__name__}")
    try:
        return check_combinations(validate(apply_overrides(raw or {}, overrides)))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def check_combinations(cfg: dict[str, Any]) -> dict[str, Any]:
    """Settings that are valid alone but not together, and values a type alone cannot check."""
    token = cfg["web"]["token"]
    if token and not (token.isascii() and token.isprintable() and " " not in token):
        raise ConfigError("config key 'web.token': use printable ASCII without spaces (letters, digits, "
                          "punctuation); other characters cannot be sent in an HTTP Authorization header")
    t = cfg["teacher"]["models"]
    if not all(isinstance(x, str) and x for x in t):
        raise ConfigError(f"config key 'teacher.models': {short(t)}: give a list of .keras or .tflite paths")
    if any(not x.endswith((".keras", ".tflite")) for x in t):
        raise ConfigError(f"config key 'teacher.models': {short(t)}: each teacher is a .keras or a .tflite file")
    mirror = cfg["convert"]["mirror"]
    if isinstance(mirror, str) and mirror != "auto" and not mirror.endswith(".tflite"):
        raise ConfigError(f"config key 'convert.mirror': {short(mirror)}: give true, false, auto (decide on the validation "
                          "hold-out) or a converted model's .tflite path (take the choice recorded in its contract)")
    temp = cfg["convert"]["temperature"]
    if isinstance(temp, str) and temp != "auto" or not isinstance(temp, str) and not 0.1 <= temp <= 10:
        raise ConfigError(f"config key 'convert.temperature': {temp!r}: give auto (fit on the validation hold-out) "
                          "or a number from 0.1 to 10 (1 = the model's own confidence)")
    m = cfg["mqtt"]
    if m["device"] and not TOPIC_WORD.fullmatch(m["device"]):
        raise ConfigError(f"config key 'mqtt.device': {short(m['device'])} cannot be a topic level: use 1-64 letters, "
                          "digits, '-' or '_' (e.g. living-room)")
    for key in ("topic_prefix", "discovery_prefix"):
        if not TOPIC_PREFIX.fullmatch(m[key]):
            raise ConfigError(f"config key 'mqtt.{key}': {short(m[key])} is not a topic prefix: use words of letters, "
                              "digits, '-' or '_' separated by '/', without wildcards (e.g. fer)")
    if m["tls"]["key_file"] and not m["tls"]["cert_file"]:
        raise ConfigError("config key 'mqtt.tls.key_file': set mqtt.tls.cert_file too (the client certificate it belongs to)")
    if cfg["data"]["val_fraction"] == 0 and cfg["train"]["lr_schedule"] == "plateau":
        raise ConfigError("config key 'train.lr_schedule': 'plateau' reduces the LR when the validation loss "
                          "stalls, and data.val_fraction 0 (a final fit) leaves no validation split; "
                          "use lr_schedule cosine or a val_fraction above 0")
    return cfg


def resolve_path(p: str | Path, base: Path = ROOT) -> Path:
    """Relative paths in config are relative to the repository root (where config.yaml lives). A file
    the package ships (the default model and its contract, installed by pip) is found in the package
    when the repository (or the current directory) has no such file."""
    p = Path(p).expanduser()
    if p.is_absolute():
        return p
    shipped = PACKAGE_DIR / p
    return shipped if not (base / p).exists() and shipped.is_file() else base / p


def display_path(p: str | Path) -> str:
    """A path as recorded in reports and contracts: relative to the repository (or to the folder it
    sits in, as ``../shared/...``) when it lies there, so that files written here mean the same on
    another machine; otherwise absolute."""
    p = Path(os.path.abspath(Path(p).expanduser()))
    for base, prefix in ((ROOT, Path()), (ROOT.parent, Path(".."))):
        try:
            return str(prefix / p.relative_to(base))
        except ValueError:
            continue
    return str(p)


def exit_on_config_error(exc: ConfigError) -> None:
    """The config's one-line error, then exit 2."""
    logging.getLogger(__name__).error("%s", exc)
    sys.exit(2)
