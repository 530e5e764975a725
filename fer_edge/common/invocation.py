"""How the user started the program, so that usage lines and hints name commands they can type.

Three ways: an installed console script (``fer-edge``, ``fer-convert``...: hints say ``fer-convert``,
``fer-edge --source FILE``), a checkout with its Makefile (``make tflite``, ``make run SOURCE=FILE``,
also for ``python -m`` there), or ``python -m fer_edge...`` from an installed package.
"""
from __future__ import annotations

import sys
from pathlib import Path

from fer_edge.common.config import PACKAGE_DIR

# command -> (console script, module, make target)
COMMANDS = {
    "edge": ("fer-edge", "fer_edge.edge", "make run"),
    "web": ("fer-web", "fer_edge.edge.web", "make web"),
    "check": ("fer-check", "fer_edge.tools.check", ""),
    "report": ("fer-report", "fer_edge.tools.report", "make report"),
    "convert": ("fer-convert", "fer_edge.convert", "make tflite"),
    "train": ("fer-train", "fer_edge.train", "make train"),
}
TRAIN_EXTRA = "pip install 'fer-edge[train]'"


def script_name() -> str:
    """The console script this process was started as ('fer-edge'...), or '' (python -m, tests)."""
    name = Path(sys.argv[0] if sys.argv else "").name
    return name if name in {c[0] for c in COMMANDS.values()} else ""


def mode() -> str:
    """'script' (an installed console script), 'make' (a checkout with its Makefile) or 'module'."""
    if script_name():
        return "script"
    return "make" if (PACKAGE_DIR.parent / "Makefile").is_file() else "module"


def prog(command: str) -> str:
    """The name --help and usage lines show: the console script's own, else ``python -m <module>``."""
    script, module, _ = COMMANDS[command]
    return script if script_name() == script else f"python -m {module}"


def command(name: str, args: str = "", make_args: str = "") -> str:
    """A command line to suggest, in backticks, in the form the user started this program with."""
    script, module, target = COMMANDS[name]
    m = mode()
    if m == "make" and target:
        line = f"{target} {make_args}".strip()
    else:
        line = f"{script if m == 'script' else 'python -m ' + module} {args}".strip()
    return f"`{line}`"


def convert_hint() -> str:
    """How to make a model with its contract: `make tflite`, or fer-convert (needs the train extra)."""
    hint = command("convert")
    return hint if mode() == "make" else f"{hint} (on a machine with `{TRAIN_EXTRA}`)"


def model_option() -> str:
    """How to name another model: MODEL=PATH under make, fer-check's argument, else --model PATH."""
    if mode() == "make":
        return "MODEL=PATH"
    return "another .tflite as its argument" if script_name() == "fer-check" else "--model PATH"


def edge_install_hint() -> str:
    """How to install the edge runtime's packages."""
    return "`make setup-edge`" if mode() == "make" else "`pip install 'fer-edge[edge]'`"
