"""Convert a trained Keras model into the edge's verified TFLite model and its contract.

``python -m fer_edge.convert`` (``make tflite``). Exit codes: 0 written, 1 parity gate failed,
2 bad input (config, model, data).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fer_edge import __version__  # noqa: E402
from fer_edge.common.config import ConfigError, exit_on_config_error, load_config  # noqa: E402
from fer_edge.common.helptext import summary  # noqa: E402
from fer_edge.common.invocation import prog  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=prog("convert"), description=summary(__doc__))
    ap.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    ap.add_argument("--config", type=Path, default=None, help="config file (default: config.yaml)")
    ap.add_argument("--model", help="a .keras file (overrides convert.model; default: newest finished run)")
    ap.add_argument("--precision", choices=("int8", "float32"), help="overrides convert.precision")
    ap.add_argument("--data", help="FER-2013 root for calibration and verification (overrides data.root)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any config key, e.g. convert.eval_max_images=1000")
    args = ap.parse_args(argv)
    overrides = list(args.set)
    if args.model:
        overrides.append(("convert.model", str(Path(args.model).resolve())))
    if args.precision:
        overrides.append(("convert.precision", args.precision))
    if args.data:
        overrides.append(("data.root", str(Path(args.data).resolve())))
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        exit_on_config_error(exc)

    from fer_edge.convert.errors import ConvertInputError, ParityError
    from fer_edge.convert.conversion import convert, print_error
    try:
        convert(cfg)
    except ConvertInputError as exc:
        print_error(exc)
        return 2
    except ParityError as exc:
        print_error(exc)
        return 1
    except OSError as exc:              # e.g. a read-only or full convert.output_dir
        where = f" {exc.filename}" if exc.filename else ""
        print_error(f"cannot write{where}: {exc.strerror or exc}. Make convert.output_dir writable "
                    "(or pass --set convert.output_dir=DIR); nothing was replaced")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
