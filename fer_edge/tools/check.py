"""Check a .tflite emotion model against its contract, with the edge's runtime: ``python -m fer_edge.tools.check
[MODEL]`` (``fer-check``). scripts/install.sh runs it on the Pi before a model replaces the installed one.

Exit codes: 0 the model loads, matches its contract (sha256 included) and runs; 2 it does not.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fer_edge.common.config import config_help
from fer_edge.common.contract import ContractError
from fer_edge.common.helptext import summary
from fer_edge.common.interpreter import ModelLoadError, runtime_name
from fer_edge.common.invocation import prog
from fer_edge.common.model_runner import check_model

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    from fer_edge import __version__
    ap = argparse.ArgumentParser(prog=prog("check"), description=summary(__doc__))
    ap.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    ap.add_argument("model", nargs="?", help="a .tflite file (default: edge.model from the config)")
    ap.add_argument("--config", type=Path, default=None,
                    help=config_help() + "; read for edge.model when MODEL is not given")
    args = ap.parse_args(argv)
    if args.model:
        model = Path(args.model)
    else:
        from fer_edge.common.config import ConfigError, exit_on_config_error, load_config, resolve_path
        try:
            model = resolve_path(load_config(args.config).edge.model)
        except ConfigError as exc:
            exit_on_config_error(exc)
    try:
        c = check_model(model)
    except (ContractError, ModelLoadError) as exc:
        log.error("%s", exc)
        return 2
    m = c.metrics
    acc = m.get(c.precision, {}).get("accuracy")
    print(f"ok: {model} ({c.precision}, {c.height}x{c.width}x{c.channels} {c.input.dtype}, "
          f"{len(c.labels)} labels, {runtime_name()})"
          + (f"; test accuracy {acc * 100:.2f}%, agreement {m.get('top1_agreement')}" if acc is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
