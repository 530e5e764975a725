"""The console scripts ``fer-train`` and ``fer-convert``: they need TensorFlow, which the ``edge`` extra
leaves out, so an edge install says how to get it (one line, exit 2) instead of a ModuleNotFoundError."""
from __future__ import annotations

import importlib.util
import sys

from fer_edge.common.invocation import TRAIN_EXTRA


def need_tensorflow(script: str) -> None:
    """Exit 2 naming the train extra when TensorFlow or Keras is not installed."""
    missing = [m for m in ("tensorflow", "keras") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"{script}: error: {' and '.join(missing)} not installed: {script} trains and converts models on a "
              f"workstation; install it with `{TRAIN_EXTRA}` (the edge set runs models only)", file=sys.stderr)
        sys.exit(2)


def train() -> int:
    need_tensorflow("fer-train")
    from fer_edge.train.cli import main
    return main()


def convert() -> int:
    need_tensorflow("fer-convert")
    from fer_edge.convert.__main__ import main
    return main()
