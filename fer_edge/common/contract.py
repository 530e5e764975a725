"""The model contract: the sidecar JSON the converter writes (``ModelContract.new(...).stage()``) and
everything downstream reads (``load_contract``). Its keys are written and read here only.

``models/emotion_int8.tflite`` comes with ``models/emotion_int8.json``. The edge takes labels,
input geometry and quantisation from here (cross-checked against the interpreter), never from a
constant of its own.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fer_edge.common.invocation import convert_hint, model_option

SCHEMA_VERSION = 1
PIXELS = "grayscale 0-255, raw (the model rescales)"     # what the input tensor takes

# CPython's built-in SHA-256 (as the stdlib's own `random` module does for SHA-512): hashlib would load
# OpenSSL's libcrypto, about 3 MB of resident memory on the edge, for one hash at start.
try:
    from _sha2 import sha256 as _sha256  # Python >= 3.12
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # Python <= 3.11
    except ImportError:
        from hashlib import sha256 as _sha256


class ContractError(ValueError):
    """The contract JSON is missing, malformed, or does not match its model file."""


@dataclass(frozen=True)
class Quant:
    dtype: str            # "int8" | "uint8" | "float32"
    scale: float          # 0.0 for float tensors
    zero_point: int


@dataclass(frozen=True)
class ModelContract:
    """A model's contract: read with ``load_contract``, made by the converter with ``ModelContract.new``."""
    path: Path                       # the JSON file itself
    model_file: Path                 # the .tflite next to it
    labels: tuple[str, ...]
    height: int
    width: int
    channels: int
    input: Quant
    output: Quant
    sha256: str
    precision: str
    raw: dict[str, Any] = field(repr=False, compare=False)     # the whole JSON, as read or to be written

    @property
    def metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = self.raw.get("metrics", {})
        return metrics

    @property
    def mirror_inside(self) -> bool:
        """The model averages each face with its mirror image itself (``convert.mirror``)."""
        return self.raw.get("mirror_average", False) is True

    @classmethod
    def new(cls, model_file: Path, *, labels: tuple[str, ...], label_source: str, output_adjust: dict[str, Any],
            shape: tuple[int, int, int], input: Quant, output: Quant, precision: str, sha256: str, size_bytes: int,
            ops: list[dict[str, Any]], min_runtime_version: str | None, mirror_inside: bool,
            mirror_choice: dict[str, Any], source: dict[str, Any], calibration: dict[str, Any] | None,
            metrics: dict[str, Any], tools: dict[str, str], created: str | None = None) -> ModelContract:
        """The contract of a model just converted into ``model_file`` (the converter's): ``shape`` is the
        input's (height, width, channels); ``output_adjust``, ``mirror_choice``, ``source``, ``calibration``,
        ``metrics`` and ``tools`` record how it was made. Checked as every reader checks it."""
        height, width, channels = shape
        raw: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "labels": list(labels),
            "label_source": label_source,
            "output_adjust": output_adjust,
            "input": {"height": height, "width": width, "channels": channels, **_quant_json(input), "pixels": PIXELS},
            "output": _quant_json(output),
            "tflite": {"file": Path(model_file).name, "sha256": sha256, "size_bytes": size_bytes, "ops": ops,
                       "min_runtime_version": min_runtime_version},
            "precision": precision,
            "mirror_average": mirror_inside,
            "mirror_choice": mirror_choice,
            "source": source,
            "calibration": calibration,
            "metrics": metrics,
            "created": created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tools": tools,
        }
        return parse_contract(raw, contract_path_for(model_file), model_file=Path(model_file))

    def to_json(self) -> str:
        return json.dumps(self.raw, indent=2) + "\n"

    def stage(self) -> Path:
        """Write the contract to a temporary file beside ``path`` and return that file's path (the
        caller renames it to ``path`` after the model it describes)."""
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        return tmp


LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,63}")


def sha256_file(path: str | Path) -> str:
    h = _sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return str(h.hexdigest())


def contract_path_for(model_path: str | Path) -> Path:
    """models/emotion_int8.tflite -> models/emotion_int8.json"""
    return Path(model_path).with_suffix(".json")


def _require(d: dict[str, Any], key: str, typ: type, where: str, path: Path) -> Any:
    if key not in d:
        raise ContractError(f"{path}: missing '{where}{key}'. Re-create it with {convert_hint()}.")
    val = d[key]
    if typ is float and isinstance(val, int) and not isinstance(val, bool):
        val = float(val)
    if not isinstance(val, typ) or (typ is int and isinstance(val, bool)):
        raise ContractError(f"{path}: '{where}{key}' = {val!r} should be {typ.__name__}. Re-create it with {convert_hint()}.")
    return val


def _quant_json(q: Quant) -> dict[str, Any]:
    return {"dtype": q.dtype, "scale": q.scale, "zero_point": q.zero_point}


def _quant(d: dict[str, Any], where: str, path: Path) -> Quant:
    return Quant(dtype=_require(d, "dtype", str, where, path),
                 scale=_require(d, "scale", float, where, path),
                 zero_point=_require(d, "zero_point", int, where, path))


def parse_contract(raw: dict[str, Any], path: Path, model_file: Path | None = None) -> ModelContract:
    if not isinstance(raw, dict):
        raise ContractError(f"{path}: expected a JSON object")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ContractError(f"{path}: schema_version {version!r} is not {SCHEMA_VERSION}; re-create it with {convert_hint()}")
    labels = _require(raw, "labels", list, "", path)
    if not labels or not all(isinstance(x, str) and x for x in labels) or len(set(labels)) != len(labels):
        raise ContractError(f"{path}: 'labels' must be a list of distinct non-empty names, got {labels!r}"[:400])
    bad = [x for x in labels if not LABEL.fullmatch(x)]
    if bad:                          # each label is a CSV column (prob_<label>), a topic payload, a chart legend
        raise ContractError(f"{path}: label {bad[0][:40]!r} cannot name a CSV column: use 1-64 letters, digits, "
                            "'_', '-', '.' or spaces (no comma, quote or line break); re-create it with `make tflite`")
    inp = _require(raw, "input", dict, "", path)
    out = _require(raw, "output", dict, "", path)
    tfl = _require(raw, "tflite", dict, "", path)
    fname = _require(tfl, "file", str, "tflite.", path)
    mf = model_file if model_file is not None else path.parent / fname
    c = ModelContract(
        path=path, model_file=mf, labels=tuple(labels),
        height=_require(inp, "height", int, "input.", path),
        width=_require(inp, "width", int, "input.", path),
        channels=_require(inp, "channels", int, "input.", path),
        input=_quant(inp, "input.", path), output=_quant(out, "output.", path),
        sha256=_require(tfl, "sha256", str, "tflite.", path),
        precision=_require(raw, "precision", str, "", path), raw=raw)
    if not isinstance(raw.get("mirror_average", False), bool):
        raise ContractError(f"{path}: 'mirror_average' = {raw['mirror_average']!r} should be true or false. "
                            f"Re-create it with {convert_hint()}.")
    if c.channels != 1 or c.height < 8 or c.width < 8:
        raise ContractError(f"{path}: input {c.height}x{c.width}x{c.channels} is not a grayscale image input")
    return c


def load_contract(model_path: str | Path, verify_sha256: bool = True) -> ModelContract:
    """Load and check the contract next to ``model_path`` (a .tflite file)."""
    model_path = Path(model_path)
    cpath = contract_path_for(model_path)
    if not model_path.is_file():
        raise ContractError(f"model file {model_path} not found. Run {convert_hint()} or pass {model_option()}.")
    if not cpath.is_file():
        raise ContractError(f"model contract {cpath} not found next to {model_path}. "
                            f"Models must be made with {convert_hint()}, which writes both files.")
    try:
        raw = json.loads(cpath.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ContractError(f"{cpath}: not UTF-8 text (a damaged or binary file). Re-create it with {convert_hint()} "
                            "or copy it again with the .tflite.") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ContractError(f"{cpath}: not readable JSON ({exc}). Re-create it with {convert_hint()}.") from exc
    c = parse_contract(raw, cpath, model_file=model_path)
    if verify_sha256:
        actual = sha256_file(model_path)
        if actual != c.sha256:
            raise ContractError(f"{model_path} does not match its contract {cpath}: sha256 {actual[:12]}... "
                                f"!= {c.sha256[:12]}... The model file was changed or corrupted; "
                                f"copy both files again or re-run {convert_hint()}.")
    return c
