"""Run directories (``runs/<timestamp>-<arch>/``) and the files that say where a run stands.

Read by training (resume, extend, finish) and by the converter (the newest finished run's model).
"""
from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

STATE_FILE = "state.json"      # status, epochs done, best epoch, timings, callback state
BEST_FILE = "model.keras"      # the best (or averaged) model; float32 once the run is finished
LAST_FILE = "last.keras"       # the last epoch with its optimizer: what a resumed run loads
CONFIG_FILE = "config.yaml"    # the run's own config (a resumed run trains on with it)


def read_state(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def find_resumable(runs_dir: Path, arch: str, finished: bool = False) -> Path | None:
    """The newest run of ``arch`` whose state says it has not finished (``finished``: that has)."""
    if not runs_dir.is_dir():
        return None
    for d in sorted((p for p in runs_dir.iterdir() if p.is_dir() and p.name.endswith(f"-{arch}")), reverse=True):
        state = read_state(d)
        if state is not None and (d / LAST_FILE).is_file() and (state.get("status") == "finished") == finished:
            return d
    return None


def newest_finished_model(runs_dir: Path) -> Path | None:
    """model.keras of the newest run (any architecture) whose state.json says "finished". Run
    directories are named <YYYYmmdd-HHMMSS>-<arch>, so sorting by name sorts by start time."""
    if runs_dir.is_dir():
        for d in sorted((p for p in runs_dir.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True):
            state = read_state(d)          # None: a run being written right now; older ones may still qualify
            if state is not None and state.get("status") == "finished" and (d / BEST_FILE).is_file():
                return d / BEST_FILE
    return None


def new_run_dir(runs_dir: Path, arch: str) -> Path:
    d = runs_dir / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{arch}"
    d.mkdir(parents=True, exist_ok=False)
    return d


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def trim_history(path: Path, epochs_done: int) -> None:
    """Drop history rows of epochs after the last saved checkpoint (a kill between the CSV row and
    the checkpoint would otherwise leave a duplicate row when the epoch is trained again)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if ln.split(",", 1)[0].isdigit() and int(ln.split(",", 1)[0]) < epochs_done]
    if keep != lines:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(keep))
        os.replace(tmp, path)
