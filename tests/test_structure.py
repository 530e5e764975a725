"""The shape of the code: data flows train -> convert -> models/ -> edge -> tools (the offline model check
and report) one way, no module of fer_edge imports, even inside a function, a module that imports it
back, and no module is over 350 lines or function over 60."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "fer_edge"


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    mods = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods]
                names = subs if len(subs) == len(node.names) else [node.module, *subs]
            for name in names:
                if name in mods and name != mod and name != "fer_edge":
                    graph[mod].add(name)
    return graph


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [m, n] if n in stack else [m, n])
            elif n not in state:
                visit(n, stack + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, cycles


def test_data_flows_one_way():
    allowed = {"common": {"common"}, "train": {"common", "train"}, "convert": {"common", "train", "convert"},
               "edge": {"common", "edge"}, "models": set(),
               "tools": {"common", "edge", "tools"},          # offline: the model check, the report of a CSV log
               "launch": {"common", "train", "convert"}}     # the fer-train/fer-convert console scripts
    for mod, deps in import_graph().items():
        part = mod.split(".")[1] if "." in mod else None
        if part is None:
            continue
        bad = {d for d in deps if d.split(".")[1] not in allowed[part]}
        assert not bad, f"{mod} imports {sorted(bad)}"


def test_resumable_callbacks_find_the_keras_state_they_restore():
    """The one place that touches Keras' private callback attributes: if an upgrade renames them,
    this fails (and a resumed run says so) instead of silently restarting the patience counters."""
    import pytest

    from fer_edge.train.callbacks import Resumable, ResumableEarlyStopping, ResumableReduceLROnPlateau
    for cls in (ResumableEarlyStopping, ResumableReduceLROnPlateau):
        saved = {name: (0.5 if name == "best" else 3) for name in cls.RESTORED}
        cb = cls(monitor="val_loss", key="k", saved=saved)
        cb.on_train_begin()
        assert cb.snapshot() == saved
        fresh = cls(monitor="val_loss", key="k", saved=None)
        fresh.on_train_begin()
        assert set(fresh.snapshot()) == set(cls.RESTORED) and fresh.wait == 0

    import keras

    class Renamed(Resumable, keras.callbacks.EarlyStopping):
        RESTORED = ("wait", "patience_left")          # what a renamed attribute looks like
    with pytest.raises(RuntimeError, match="patience_left"):
        Renamed(monitor="val_loss", key="k", saved=None).on_train_begin()


MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60


def _sized_modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def test_every_module_is_at_most_350_lines():
    long = {str(p.relative_to(PKG.parent)): n for p in _sized_modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them): {long}"


def test_every_function_is_at_most_60_lines():
    long = {}
    for p in _sized_modules():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{p.relative_to(PKG.parent)}:{node.lineno} {node.name}"] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them): {long}"


def test_the_size_checks_see_the_whole_package():
    sized = _sized_modules()
    assert len(sized) >= 60 and PKG / "edge" / "pipeline.py" in sized and PKG / "train" / "fit.py" in sized
