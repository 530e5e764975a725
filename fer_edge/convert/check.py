"""Check a shipped model against its contract: ``python -m fer_edge.convert.check [MODEL.tflite]``.

What the edge relies on, without TensorFlow: the contract parses, the file's sha256 matches it,
the runtime loads the file, and the interpreter's input/output shape, dtype and quantisation are
the ones the contract promises. Exit 0 when all hold, 2 (with what to do) when one does not.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fer_edge.common.contract import ContractError, ModelContract, load_contract
from fer_edge.common.interpreter import ModelLoadError, make_interpreter, runtime_name


def _mismatch(model: Path, what: str, file_has, contract_says) -> ContractError:
    return ContractError(f"{model}: {what} is {file_has} in the model but {contract_says} in its contract. "
                         "The two files do not belong together: re-run `make tflite`.")


def check_model(model_path: str | Path, num_threads: int = 1) -> ModelContract:
    """Load ``model_path`` and its contract and cross-check them; returns the contract.

    Raises ContractError or ModelLoadError (both ValueError) naming the file and the fix.
    """
    model_path = Path(model_path)
    c = load_contract(model_path, verify_sha256=True)
    interp = make_interpreter(model_path, num_threads)
    inp, out = interp.get_input_details(), interp.get_output_details()
    if len(inp) != 1 or len(out) != 1:
        raise ContractError(f"{model_path}: {len(inp)} inputs / {len(out)} outputs, the edge needs 1 / 1")
    inp, out = inp[0], out[0]
    shape = tuple(int(v) for v in inp["shape"][1:])
    if shape != (c.height, c.width, c.channels):
        raise _mismatch(model_path, "the input shape", shape, (c.height, c.width, c.channels))
    if int(out["shape"][-1]) != len(c.labels):
        raise _mismatch(model_path, "the number of outputs", int(out["shape"][-1]), f"{len(c.labels)} labels")
    for name, detail, q in (("input", inp, c.input), ("output", out, c.output)):
        dtype = np.dtype(detail["dtype"]).name
        scale, zp = detail["quantization"]
        if dtype != q.dtype:
            raise _mismatch(model_path, f"the {name} dtype", dtype, q.dtype)
        if not np.isclose(scale, q.scale, rtol=1e-6, atol=0) or int(zp) != q.zero_point:
            raise _mismatch(model_path, f"the {name} quantisation", (scale, int(zp)), (q.scale, q.zero_point))
    return c


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_edge.convert.check", description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help="a .tflite file (default: edge.model from the config)")
    ap.add_argument("--config", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.model:
        model = Path(args.model)
    else:
        from fer_edge.common.config import ConfigError, exit_on_config_error, load_config, resolve_path
        try:
            model = resolve_path(load_config(args.config)["edge"]["model"])
        except ConfigError as exc:
            exit_on_config_error(exc)
    try:
        c = check_model(model)
    except (ContractError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = c.metrics
    acc = m.get(c.precision, {}).get("accuracy")
    print(f"ok: {model} ({c.precision}, {c.height}x{c.width}x{c.channels} {c.input.dtype}, "
          f"{len(c.labels)} labels, {runtime_name()})"
          + (f"; test accuracy {acc * 100:.2f}%, agreement {m.get('top1_agreement')}" if acc is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
