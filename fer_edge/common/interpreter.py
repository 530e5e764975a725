"""The one place that builds a TFLite interpreter.

Runtimes are tried lazily in this order: ``ai_edge_litert`` (the maintained LiteRT wheel, what
the edge installs), ``tflite_runtime`` (older Pi images), then ``tensorflow.lite`` (a training
workstation). The edge never needs TensorFlow: it is imported only when both small runtimes are
missing.
"""
from __future__ import annotations

import importlib
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import numpy as np

from fer_edge.common.invocation import convert_hint, edge_install_hint, model_option

# (module to import, name reported by runtime_name()) in order of preference.
_RUNTIMES: tuple[tuple[str, str], ...] = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)

_chosen: tuple[Any, str] | None = None
# The runtime's own notes on stderr ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.") are
# dropped unless this is True (python -m fer_edge.edge --verbose); anything else it prints is passed on.
SHOW_RUNTIME_NOTES = False
RUNTIME_NOTE = "INFO: Created TensorFlow Lite"


@contextmanager
def _runtime_notes_filtered() -> Iterator[None]:
    """Route file descriptor 2 (where the C++ runtime writes) through a temporary file for the
    duration of the block, then pass on every line but the runtime's INFO notes."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):      # a stderr without a descriptor (tests' capsys)
        yield
        return
    if SHOW_RUNTIME_NOTES:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode(errors="replace").splitlines(True) if not ln.startswith(RUNTIME_NOTE)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class ModelLoadError(ValueError):
    """A .tflite file is missing, corrupt or cannot be loaded; the message names it and the fix."""


class RuntimeMissingError(ImportError):
    """No TFLite runtime is installed."""


def _interpreter_class() -> tuple[Any, str]:
    """Import the first available runtime once and return (Interpreter class, runtime name)."""
    global _chosen
    if _chosen is None:
        errors = []
        for module, name in _RUNTIMES:
            try:
                mod = importlib.import_module(module)
            except ImportError as exc:
                errors.append(f"{module}: {exc}")
                continue
            _chosen = (mod.Interpreter, name)
            break
        else:
            raise RuntimeMissingError(
                "no TFLite runtime found (" + "; ".join(errors) + "). Install the edge requirements: "
                f"{edge_install_hint()} (ai-edge-litert).")
    return _chosen


def runtime_name() -> str:
    """Which runtime ``make_interpreter`` uses: 'ai-edge-litert', 'tflite-runtime' or 'tensorflow'."""
    return _interpreter_class()[1]


def loaded_runtime() -> str | None:
    """The runtime's name once one was imported (``runtime_name``), else None; imports nothing."""
    return _chosen[1] if _chosen is not None else None


def runtime_version() -> str:
    """Version string of the runtime package in use (for contracts and benchmark tables)."""
    name = runtime_name()
    dist = {"ai-edge-litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime",
            "tensorflow": "tensorflow-cpu"}[name]
    from importlib import metadata
    for candidate in (dist, "tensorflow") if name == "tensorflow" else (dist,):
        try:
            return metadata.version(candidate)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def make_interpreter(model_path: str | Path, num_threads: int = 1) -> Any:
    """Load ``model_path`` (a .tflite file), allocate its tensors and return the Interpreter.

    Raises ModelLoadError (a ValueError) naming the file when it is missing, not a TFLite
    flatbuffer, or uses ops the runtime cannot run.
    """
    path = Path(model_path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} not found. Run {convert_hint()} (or pass {model_option()}).")
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    cls, name = _interpreter_class()
    try:
        with _runtime_notes_filtered():
            interp = cls(model_path=str(path), num_threads=int(num_threads))
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        # The runtimes raise ValueError/RuntimeError with a C++ message; add what to do.
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load TFLite model {path} with {name}: {msg}. The file is corrupt, "
                             f"truncated or not a .tflite model: re-run {convert_hint()} (or copy the "
                             ".tflite and its .json again).") from exc
    return interp


def quantize(x: Any, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """Float values -> a tensor of ``dtype`` the way TFLite expects: round(x / scale) + zero_point,
    clipped to the type's range. float32 tensors (scale 0) are passed through as float32."""
    import numpy as np
    if dtype == "float32" or scale == 0:
        return np.asarray(x, dtype=np.float32)
    info = np.iinfo(np.dtype(dtype))
    q = np.round(np.asarray(x, dtype=np.float32) / np.float32(scale)) + zero_point
    out: np.ndarray = np.clip(q, info.min, info.max).astype(dtype)
    return out


def dequantize(q: Any, scale: float, zero_point: int) -> np.ndarray:
    """A raw output tensor -> float32: (q - zero_point) * scale; float tensors (scale 0) unchanged."""
    import numpy as np
    if scale == 0:
        return np.asarray(q, dtype=np.float32)
    return (np.asarray(q, dtype=np.float32) - zero_point) * np.float32(scale)
