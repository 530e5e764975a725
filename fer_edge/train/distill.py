"""The distillation recipe, end to end and resumable: ``python -m fer_edge.train.distill [RECIPE]``
(``make distill``).

The recipe (``distill.yaml``) names each teacher by the config keys that make it differ from
config.yaml (``common:`` keys apply to every member). In order, each step skipped when already done:

1. each teacher trains in ``<runs_dir>/<name>/`` (``python -m fer_edge.train``; an unfinished run there
   resumes);
2. the teachers and their ensemble are measured on the validation hold-out (``ensemble-val.txt``) and,
   for the report only, on the test split (``ensemble-test.txt``);
3. the student trains in ``<runs_dir>/student/`` on the ensemble's soft targets (``teacher.models``);
4. the student is converted into ``<runs_dir>/model/`` (``convert.mirror`` decides on validation);
5. with a ``final:`` section (the final fit, e.g. ``data.val_fraction: 0``): the same student once more
   with those keys on top, in ``<runs_dir>/final/``, converted into ``<runs_dir>/final-model/`` with the
   mirror choice the student made on validation.

Each step is its own process, so an interruption anywhere loses at most the epoch in progress. The
summary gives each member's validation accuracy and training time, for the model card.
"""
from __future__ import annotations

import logging
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from fer_edge.common.config import ROOT, ConfigError, display_path, load_config, resolve_path
from fer_edge.common.contract import sha256_file
from fer_edge.common.helptext import summary
from fer_edge.train.rundir import STATE_FILE, newest_finished_model, read_state

log = logging.getLogger(__name__)

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
STUDENT, MODEL_DIR, FINAL, FINAL_MODEL_DIR = "student", "model", "final", "final-model"
RESERVED = (STUDENT, MODEL_DIR, FINAL, FINAL_MODEL_DIR)


class RecipeError(ValueError):
    """The recipe file is missing or malformed (exit 2)."""


def load_recipe(path: Path, config: Path | None) -> dict:
    """The recipe, checked whole before anything trains: every member's keys must make a valid config."""
    where = display_path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecipeError(f"recipe {where}: {exc.strerror or exc}; pass a recipe file (see distill.yaml)") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict) or set(raw) - {"runs_dir", "common", "teachers", "student", FINAL}:
        raise RecipeError(f"recipe {where}: expected the keys runs_dir, common, teachers, student, final")
    teachers = raw.get("teachers")
    if not isinstance(teachers, dict) or not teachers:
        raise RecipeError(f"recipe {where}: 'teachers' must name at least one teacher")
    members = {**teachers, STUDENT: raw.get("student") or {}}
    if raw.get(FINAL) is not None:
        members[FINAL] = raw[FINAL]
    for name, keys in members.items():
        if not isinstance(name, str) or not NAME.match(name) or (name in RESERVED and name in teachers):
            raise RecipeError(f"recipe {where}: teacher name {name!r}: use lower-case letters, digits and '-' "
                              f"(and none of {', '.join(RESERVED)})")
        if not isinstance(keys, dict):
            raise RecipeError(f"recipe {where}: '{name}' must map config keys to values, e.g. train.seed: 2028")
        if name in teachers and any(k.startswith("teacher.") for k in keys):
            raise RecipeError(f"recipe {where}: teacher '{name}' sets teacher.* keys; only the student has teachers")
    common = raw.get("common") or {}
    if not isinstance(common, dict):
        raise RecipeError(f"recipe {where}: 'common' must map config keys to values")
    runs_dir = resolve_path(str(raw.get("runs_dir") or "runs/distill"))
    recipe = {"path": path, "config": config, "runs_dir": runs_dir, "members": {}, "final_keys": members.get(FINAL, {})}
    for name, keys in members.items():
        own = {**members[STUDENT], **keys} if name == FINAL else keys      # the final fit is the student, and more
        sets = [*common.items(), *own.items(), ("train.runs_dir", display_path(runs_dir / name))]
        try:
            load_config(config, sets)
        except ConfigError as exc:
            raise RecipeError(f"recipe {where}, {name}: {exc}") from None
        recipe["members"][name] = sets
    return recipe


def _set_args(sets: list) -> list[str]:
    out = []
    for key, value in sets:
        out += ["--set", f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"]
    return out


def _run(cmd: list[str], log: Path, mode: str = "w") -> int:
    """Run ``cmd`` from the checkout, its output shown and written to ``log``."""
    print("$ " + " ".join(cmd[2:] if cmd[0] == sys.executable else cmd), flush=True)
    with open(log, mode, encoding="utf-8") as fh:
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert p.stdout is not None             # stdout=PIPE
        for line in p.stdout:
            print(line, end="", flush=True)
            fh.write(line)
        return p.wait()


def _status(member_dir: Path) -> str:
    if newest_finished_model(member_dir) is not None:
        return "finished"
    runs = sorted(member_dir.glob(f"*/{STATE_FILE}"), reverse=True) if member_dir.is_dir() else []
    s = read_state(runs[0].parent) if runs else None
    return f"at epoch {s.get('epoch', 0)}" if s else "not started"


def _train(recipe: dict, name: str, extra: list | None = None) -> Path:
    """Train (or resume) one member; its finished model.keras."""
    member_dir = recipe["runs_dir"] / name
    done = newest_finished_model(member_dir)
    if done is not None:
        print(f"{name}: finished ({display_path(done)})")
        return done
    cmd = [sys.executable, "-m", "fer_edge.train", *(["--config", str(recipe["config"])] if recipe["config"] else []),
           *_set_args(recipe["members"][name] + (extra or []))]
    member_dir.mkdir(parents=True, exist_ok=True)
    code = _run(cmd, member_dir / "train.log", "a")        # every sitting appended
    done = newest_finished_model(member_dir)
    if code != 0 or done is None:
        raise SystemExit(code or 1)
    return done


def _summary_rows(models: dict[str, Path]) -> list[str]:
    rows = ["| member | run | epochs | validation accuracy (best epoch) | training time |", "|---|---|---|---|---|"]
    for name, model in models.items():
        s = json.loads((model.parent / STATE_FILE).read_text())
        secs = float(s.get("train_seconds", 0))
        val = s.get("best_val_accuracy")
        val = f"{100 * float(val):.2f}% ({s.get('best_epoch')})" if val is not None else "none (a final fit)"
        rows.append(f"| {name} | `{display_path(model.parent)}` | {s.get('epoch')} | {val} | {secs / 3600:.1f} h |")
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    from fer_edge import __version__
    ap = argparse.ArgumentParser(prog="python -m fer_edge.train.distill", description=summary(__doc__))
    ap.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    ap.add_argument("recipe", nargs="?", type=Path, default=ROOT / "distill.yaml", help="the recipe (default: distill.yaml)")
    ap.add_argument("--config", type=Path, default=None, help="the base config (default: config.yaml)")
    ap.add_argument("--status", action="store_true", help="say where each step stands, and train nothing")
    args = ap.parse_args(argv)
    try:
        recipe = load_recipe(args.recipe, args.config)
    except RecipeError as exc:
        log.error("%s", exc)
        return 2
    runs_dir = recipe["runs_dir"]
    teachers = [n for n in recipe["members"] if n not in (STUDENT, FINAL)]
    students = [n for n in (STUDENT, FINAL) if n in recipe["members"]]
    print(f"distillation recipe {display_path(args.recipe)} in {display_path(runs_dir)}: "
          + ", ".join(f"{n} {_status(runs_dir / n)}" for n in [*teachers, *students]), flush=True)
    if args.status:
        return 0
    runs_dir.mkdir(parents=True, exist_ok=True)
    models = {n: _train(recipe, n) for n in teachers}

    config = ["--config", str(recipe["config"])] if recipe["config"] else []
    data_sets = _set_args([kv for kv in recipe["members"][teachers[0]] if kv[0].startswith("data.")])
    for split in ("val", "test"):         # the choices on val; test for the report
        ensemble = runs_dir / f"ensemble-{split}.txt"
        if not ensemble.is_file():
            tmp = ensemble.with_suffix(".txt.tmp")
            code = _run([sys.executable, "-m", "fer_edge.train.teachers", *map(str, models.values()), "--split", split,
                         *config, *data_sets], tmp)
            if code != 0:
                return code
            tmp.replace(ensemble)
        print(f"{split}: " + ensemble.read_text(encoding="utf-8").strip().splitlines()[-1], flush=True)

    teacher_list = [("teacher.models", [display_path(m) for m in models.values()])]
    models[STUDENT] = _train(recipe, STUDENT, teacher_list)
    outs = {STUDENT: runs_dir / MODEL_DIR, FINAL: runs_dir / FINAL_MODEL_DIR}
    contracts = {STUDENT: _convert(recipe, STUDENT, models[STUDENT], outs[STUDENT], config)}
    if FINAL in students:
        models[FINAL] = _train(recipe, FINAL, teacher_list)
        # The final fit has no hold-out to choose on: it takes the student's choice unless it sets its own.
        chosen = [("convert.mirror", str(outs[STUDENT] / "emotion_int8.tflite"))]
        contracts[FINAL] = _convert(recipe, FINAL, models[FINAL], outs[FINAL], config,
                                    [] if "convert.mirror" in recipe["final_keys"] else chosen)
    lines = ["", *_summary_rows(models), ""]
    for name, contract in contracts.items():
        m = contract["metrics"]
        lines.append(f"{name}, converted: {display_path(outs[name] / 'emotion_int8.tflite')}: int8 top-1 "
                     f"{100 * m['int8']['accuracy']:.2f}%, macro-F1 {m['int8']['macro_f1']:.3f} on the test split, "
                     f"agreement with its float model {100 * m['top1_agreement']:.2f}%, mirror inside: "
                     f"{'yes' if contract['mirror_average'] else 'no'}")
    lines.append(f"to ship it: cp {display_path(outs[students[-1]])}/emotion_int8.* models/")
    print("\n".join(lines))
    return 0


def _convert(recipe: dict, name: str, model: Path, out: Path, config: list, extra: list | None = None) -> dict:
    """Convert one member's model.keras into ``out`` unless that was done for this very file; its contract."""
    contract = out / "emotion_int8.json"
    if not (contract.is_file() and json.loads(contract.read_text()).get("source", {}).get("keras_sha256")
            == sha256_file(model)):
        out.mkdir(parents=True, exist_ok=True)
        sets = [kv for kv in recipe["members"][name] if kv[0].startswith(("data.", "convert."))] + (extra or [])
        code = _run([sys.executable, "-m", "fer_edge.convert", *config, *_set_args(sets),
                     "--set", f"convert.model={model}", "--set", f"convert.output_dir={out}"], out / "convert.log")
        if code != 0:
            raise SystemExit(code)
    return json.loads(contract.read_text())


if __name__ == "__main__":
    sys.exit(main())
