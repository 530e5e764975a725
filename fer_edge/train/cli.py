"""Train an emotion CNN on FER-2013: ``python -m fer_edge.train`` (``make train``, ``fer-train``).

Reads top to bottom: config -> data -> model -> fit (with resume) -> float32 export -> report.
A run lives in ``runs/<timestamp>-<arch>/``. After every epoch the last checkpoint (model and
optimizer), the callbacks' state and history are written atomically, so an interrupted run
(Ctrl-C, power cut) continues from the last finished epoch the next time ``make train`` runs;
``--fresh`` (``make train FRESH=1``) starts a new run. The modes: a new run (``--fresh``, or when
nothing is unfinished), a resumed one (the default), ``--finish`` and ``--extend N``.
"""
from __future__ import annotations

import logging
import argparse
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fer_edge import __version__  # noqa: E402
from fer_edge.common.config import ConfigError, exit_on_config_error, load_config, parse_override  # noqa: E402
from fer_edge.common.helptext import summary  # noqa: E402
from fer_edge.train.data import DataError  # noqa: E402
from fer_edge.train.errors import TrainError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_edge.train", description=summary(__doc__))
    ap.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    ap.add_argument("--config", type=Path, default=None, help="config file (default: config.yaml)")
    ap.add_argument("--data", help="dataset root or fer2013.csv (overrides data.root)")
    ap.add_argument("--arch", help="architecture name (overrides train.arch)")
    ap.add_argument("--epochs", type=int,
                    help="overrides train.epochs; when resuming, changes the unfinished run's length")
    ap.add_argument("--fresh", action="store_true", help="start a new run instead of resuming")
    ap.add_argument("--finish", action="store_true",
                    help="stop the unfinished run where it is: evaluate its best checkpoint, write the outputs")
    ap.add_argument("--extend", type=int, metavar="N",
                    help="continue the newest finished run to N epochs in all (warm restart of the cosine schedule)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key, e.g. train.batch_size=64")
    args = ap.parse_args(argv)
    overrides = list(args.set)
    if args.data:
        overrides.append(("data.root", str(Path(args.data).resolve())))
    if args.arch:
        overrides.append(("train.arch", args.arch))
    if args.epochs is not None:
        overrides.append(("train.epochs", args.epochs))
    if sum(map(bool, (args.fresh, args.finish, args.extend))) > 1:     # before the config is read
        ap.error("--fresh, --finish and --extend exclude each other")
    if args.extend and args.epochs is not None:
        ap.error("--extend N sets the run's new length: leave out --epochs")
    try:
        cfg = load_config(args.config, overrides)
        set_keys = tuple(parse_override(item)[0] for item in args.set)
    except ConfigError as exc:
        exit_on_config_error(exc)
    if "train.epochs" in set_keys and args.epochs is None:      # --set train.epochs=N is --epochs N
        args.epochs = cfg.train.epochs
    from fer_edge.train.fit import run
    try:
        run(cfg, fresh=args.fresh, finish=args.finish, new_epochs=args.epochs, extend=args.extend, set_keys=set_keys)
    except (DataError, TrainError) as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
