"""The end of a training run: the best checkpoint (or the weight average of the last epochs, when it is
better on validation) as a float32 model.keras, the plots, and the report on the test split.

``python -m fer_edge.train.finalize RUN [--last N]`` (``make average``) does it again for a finished run,
trying the average of another number of kept epochs.
"""
from __future__ import annotations

import logging
import argparse
import json
import os
from pathlib import Path

import yaml

from fer_edge.common.config import Config, display_path, from_saved, with_defaults
from fer_edge.common.helptext import summary
from fer_edge.train.average import kept_epochs, try_average
from fer_edge.train.data import DataError, FerData, load_configured
from fer_edge.train.evaluate import evaluate_model, write_report
from fer_edge.train.model import to_float32
from fer_edge.train.progress import redraw_history
from fer_edge.train.rundir import BEST_FILE, CONFIG_FILE, STATE_FILE, write_json_atomic

log = logging.getLogger(__name__)


def finalize(run_dir: Path, cfg: Config, data: FerData, state: dict) -> None:
    """Best checkpoint -> float32 model.keras, plots, evaluation on the test split."""
    import keras
    best = keras.models.load_model(run_dir / BEST_FILE, compile=False)
    best = to_float32(best)
    earlier = state.get("weight_average")
    best, averaged = try_average(run_dir, best, data, cfg.train.average_last, state["epoch"])
    if averaged:
        if earlier and (earlier["used"] or "earlier" in earlier) and not averaged["used"]:
            averaged["earlier"] = earlier.get("earlier", earlier)   # model.keras may still be that average (EXTEND)
        state["weight_average"] = averaged
    tmp = run_dir / "model.tmp.keras"
    best.save(tmp)
    os.replace(tmp, run_dir / BEST_FILE)
    if (run_dir / "history.csv").is_file():
        redraw_history(run_dir, state)
    report = evaluate_model(best, data.test, split_name=f"test ({data.form}: {display_path(data.source)})",
                            split13=data.test13)
    report["run"] = {"dir": display_path(run_dir), "arch": cfg.train.arch, "epochs_run": state["epoch"],
                     "epochs_planned": cfg.train.epochs, "train_faces": len(data.train),
                     "val_faces": len(data.val),
                     "best_epoch": state.get("best_epoch"), "best_val_accuracy": state.get("best_val_accuracy"),
                     "train_seconds": round(state.get("train_seconds", 0.0), 1), "precision": state.get("precision"),
                     "params": int(best.count_params())}
    for key in ("schedule_changes", "config_changes", "weight_average"):
        if state.get(key):
            report["run"][key] = state[key]
    write_report(report, data.test, run_dir)
    if cfg.train.export_seed_format:
        (run_dir / "model.json").write_text(best.to_json())
        best.save_weights(run_dir / "model.weights.h5")
    state["status"] = "finished"
    state["test_accuracy"] = report["accuracy"]
    write_json_atomic(run_dir / STATE_FILE, state)
    print(f"test accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}; report in {run_dir}")


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_edge.train.finalize RUN [--last N]`` (``make average RUN=...``): try the weight average of a
    finished run's kept epochs now, e.g. with another N; model.keras and the report are replaced only if
    the average beats the best epoch on validation."""
    ap = argparse.ArgumentParser(prog="python -m fer_edge.train.finalize", description=summary(main.__doc__))
    ap.add_argument("run", type=Path, help="a run directory, runs/<timestamp>-<arch>")
    ap.add_argument("--last", type=int, help="average the last N kept epochs (default: the run's train.average_last)")
    args = ap.parse_args(argv)
    run_dir = args.run
    try:
        state = json.loads((run_dir / STATE_FILE).read_text())
        saved = with_defaults(yaml.safe_load((run_dir / CONFIG_FILE).read_text()))
    except (OSError, json.JSONDecodeError, yaml.YAMLError, AttributeError) as exc:
        log.error(f"{run_dir} is not a readable run directory ({exc}); pass RUN=runs/<timestamp>-<arch>")
        return 2
    keep = args.last or from_saved(saved).train.average_last
    kept = [e for e, _ in kept_epochs(run_dir) if state["epoch"] - keep < e <= state["epoch"]]
    problem = ("it has not finished; `make train` finishes it and tries the average then" if state.get("status") != "finished"
               else "its model.keras already is a weight average" if {"used", "earlier"} & {
                   k for k, v in state.get("weight_average", {}).items() if v}
               else f"it has {len(kept)} kept epoch(s) in the last {keep}; at least 2 are needed "
                    "(train.average_last keeps them while training)" if len(kept) < 2 else None)
    if problem:
        log.error(f"cannot average {run_dir}: {problem}")
        return 2
    saved["train"]["average_last"] = keep
    cfg = from_saved(saved)
    try:
        data = load_configured(cfg.data)
    except DataError as exc:
        log.error("%s", exc)
        return 2
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(saved, sort_keys=False))
    finalize(run_dir, cfg, data, state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
