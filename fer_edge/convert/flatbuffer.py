"""Facts read from a .tflite flatbuffer: the operators it uses and the runtime it needs.

Uses the schema bindings shipped with ai-edge-litert (no TensorFlow needed).
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _builtin_names() -> dict[int, str]:
    from ai_edge_litert.schema_py_generated import BuiltinOperator
    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _model(buf: bytes):
    from ai_edge_litert.schema_py_generated import Model
    return Model.GetRootAs(bytearray(buf), 0)


def operator_codes(buf: bytes) -> list[dict]:
    """[{name, version}] of every operator code, in the file's order.

    Newer files keep large codes in ``builtin_code`` and older ones in ``deprecated_builtin_code``
    (capped at 127); the larger of the two is the real one.
    """
    model, names, ops = _model(buf), _builtin_names(), []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        custom = oc.CustomCode()
        name = custom.decode() if custom else names.get(code, f"BUILTIN_{code}")
        ops.append({"name": name, "version": int(oc.Version())})
    return ops


def metadata(buf: bytes) -> dict[str, bytes]:
    """The flatbuffer's metadata entries: name -> raw buffer bytes."""
    model, out = _model(buf), {}
    for i in range(model.MetadataLength()):
        m = model.Metadata(i)
        data = model.Buffers(m.Buffer()).DataAsNumpy()
        out[m.Name().decode()] = bytes(data) if not isinstance(data, int) else b""
    return out


def min_runtime_version(buf: bytes) -> str | None:
    """The converter's "min_runtime_version" entry (e.g. '2.3.0'), or None when absent."""
    raw = metadata(buf).get("min_runtime_version")
    return raw.split(b"\0", 1)[0].decode(errors="replace").strip() if raw is not None else None
