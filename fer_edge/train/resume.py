"""Resuming a run: its own config, the changes a resume may make (EPOCHS=N, EXTEND=N, --set of the safe
keys), and the state it goes on from."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from fer_edge.common.config import Config, from_saved, with_defaults
from fer_edge.train.average import prune
from fer_edge.train.errors import TrainError
from fer_edge.train.progress import resume_line
from fer_edge.train.rundir import CONFIG_FILE, STATE_FILE, trim_history, write_json_atomic

# keys that change how a resumed run goes on, not what it is: patience, progress output, extra exports,
# where the decoded arrays are cached, where runs are kept (a run folder moved elsewhere); and the
# convert/edge sections, which training does not read
RESUME_SAFE = ("train.early_stopping_patience", "train.plateau_patience", "train.verbose",
               "train.export_seed_format", "train.average_last", "train.tensorboard", "data.cache_dir",
               "train.runs_dir")


def _get(cfg: dict, key: str):
    node: Any = cfg
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def resume_overrides(saved: dict, cfg: Config, set_keys: tuple[str, ...], run_dir: Path) -> list[dict]:
    """Apply ``--set`` values to a resumed run's saved config; return the changes made.

    A resumed run trains on with its own config.yaml. Keys in RESUME_SAFE (and the convert/edge
    sections) take the new value for the rest of the run; any other train/data key whose value differs
    from the run's is refused, naming the key, instead of being silently ignored. ``train.epochs`` is
    handled by the caller (EPOCHS=N changes the run's length).
    """
    changes, given = [], cfg.to_dict()
    for key in dict.fromkeys(set_keys):
        new, old = _get(given, key), _get(saved, key)
        if key == "train.epochs" or new == old:
            continue
        if key in RESUME_SAFE or key.split(".")[0] not in ("train", "data", "teacher"):
            section, *mid, leaf = key.split(".")
            node = saved.setdefault(section, {})
            for part in mid:
                node = node.setdefault(part, {})
            node[leaf] = new
            changes.append({"key": key, "from": old, "to": new})
        else:
            raise TrainError(f"--set {key}={new!r} cannot change the run being resumed, {run_dir}, which was "
                            f"started with {old!r}; drop the --set to resume it, or start a new run with it "
                            f"(`make train FRESH=1`). On a resumed run --set may change: {', '.join(RESUME_SAFE)}")
    return changes


def reopen(run_dir: Path, cfg: Config, set_keys: tuple[str, ...], new_epochs: int | None, extend: int | None,
           finish: bool) -> tuple[Config, dict]:
    """The resumed run's config (its own, with the allowed changes) and state; writes the changes back
    and tidies what an interruption may have left (history rows and kept epochs after the checkpoint)."""
    saved = with_defaults(yaml.safe_load((run_dir / CONFIG_FILE).read_text()))   # keys added since: defaults
    state = json.loads((run_dir / STATE_FILE).read_text())
    old_epochs = saved["train"]["epochs"]
    changes = resume_overrides(saved, cfg, set_keys, run_dir)   # before anything is written
    rewrite = bool(changes)
    if extend:
        if extend <= state["epoch"]:
            raise TrainError(f"{run_dir} has already run {state['epoch']} epochs; EXTEND={extend} must be more")
        print(f"extending finished run {run_dir} from {state['epoch']} to {extend} epochs")
        state["status"] = "training"
        for key in ("test_accuracy", "early_stopping", "plateau"):   # patience counts from the restart
            state.pop(key, None)
    if new_epochs and new_epochs != old_epochs and not finish:
        if new_epochs <= state["epoch"]:
            raise TrainError(f"{run_dir} has already run {state['epoch']} epochs; EPOCHS={new_epochs} would "
                             "end it before now. Use `make train FINISH=1` to stop it where it is.")
        saved["train"]["epochs"] = new_epochs
        rewrite = True
        state.setdefault("schedule_changes", []).append(
            {"after_epoch": state["epoch"], "epochs_from": old_epochs, "epochs_to": new_epochs,
             **({"extended": True} if extend else {})})
        print(f"note: run length changed from {old_epochs} to {new_epochs} epochs")
    elif cfg.train.epochs != old_epochs and not extend:
        print(f"note: resuming with train.epochs={old_epochs} from the run's own config "
              "(EPOCHS=N changes it)")
    for c in changes:
        print(f"note: {c['key']} changed from {c['from']!r} to {c['to']!r} for the rest of the run")
    state.setdefault("config_changes", []).extend({"after_epoch": state["epoch"], **c} for c in changes)
    if rewrite:
        (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(saved, sort_keys=False))
        write_json_atomic(run_dir / STATE_FILE, state)
    resumed = from_saved(saved)
    epochs = resumed.train.epochs
    trim_history(run_dir / "history.csv", state["epoch"])
    prune(run_dir, resumed.train.average_last, state["epoch"])
    print(f"resuming {run_dir} after epoch {state['epoch']}/{epochs} (make train FRESH=1 starts over)")
    line = resume_line(state, epochs)
    if line:
        print(line)
    return resumed, state
