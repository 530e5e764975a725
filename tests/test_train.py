"""A real (tiny) training run on real FER images: every output file, a falling loss, resume after a
kill -9 in the middle of training (--set may change a resumed run's patience, and is refused for what
the run is), ending an unfinished run early (--finish) and training a finished one on (--extend)."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ["--arch", "tiny", "--set", "data.max_per_class=40", "--set", "train.bn_momentum=0.9",
         "--set", "train.batch_size=32", "--set", "train.warmup_epochs=0", "--set", "train.learning_rate=0.01",
         "--set", "train.precision=float32", "--set", "train.verbose=2", "--set", "train.augment.erasing_prob=0",
         "--set", "train.augment.mixup_alpha=0",     # mixup has its own tests; 4 tiny epochs need clean labels
         "--set", "data.labels=fer2013"]             # FER-2013's folders as labels (FER+: tests/test_ferplus.py)


def _train(tmp_path: Path, fer_root: Path, *extra: str, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "fer_edge.train", "--data", str(fer_root), *SMOKE,
           "--set", f"train.runs_dir={tmp_path / 'runs'}", "--set", f"data.cache_dir={ROOT / '.cache' / 'fer2013'}", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _history(run: Path) -> list[dict]:
    with open(run / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_smoke_run_writes_every_output_and_loss_falls(tmp_path, fer_root):
    p = _train(tmp_path, fer_root, "--epochs", "4", "--set", "train.export_seed_format=true",
               "--set", "train.average_last=3")
    lines, pngs = [], []
    for line in p.stdout:                 # as a user watching it: history.png is there after every epoch
        lines.append(line)
        if re.match(r"epoch \d+/4: ", line):
            (run,) = (tmp_path / "runs").iterdir()
            pngs.append(hashlib.sha256((run / "history.png").read_bytes()).hexdigest())
    out = "".join(lines)
    assert p.wait(600) == 0, out
    (run,) = (tmp_path / "runs").iterdir()
    assert len(pngs) == 4 and len(set(pngs)) == 4, "history.png must be redrawn after every epoch"
    # One line per epoch whatever train.verbose says, with the time left for the whole run.
    state = json.loads((run / "state.json").read_text())
    epoch_lines = re.findall(r"^epoch (\d)/4: val_accuracy ([\d.]+) \(best ([\d.]+), epoch (\d)\), (\d+) s/epoch, "
                             r"about (\d+) s left$", out, re.M)
    assert [int(e[0]) for e in epoch_lines] == [1, 2, 3, 4], out
    for done, _, _, _, per, left in epoch_lines:
        assert abs(int(left) - int(per) * (4 - int(done))) <= 4 - int(done) + 1     # median x epochs left
    assert len(state["epoch_seconds"]) == 4 and state["eta_seconds"] == 0
    # TensorBoard: the epoch scalars, learning rate included.
    import tensorflow as tf
    tags: dict[str, list[float]] = {}
    for ev_file in (run / "tb").rglob("events.out.tfevents.*"):
        for ev in tf.compat.v1.train.summary_iterator(str(ev_file)):
            for v in ev.summary.value:
                tags.setdefault(f"{ev_file.parent.name}/{v.tag}", []).append(float(tf.make_ndarray(v.tensor)))
    for tag in ("train/epoch_loss", "train/epoch_accuracy", "train/epoch_learning_rate", "validation/epoch_accuracy"):
        assert len(tags.get(tag, [])) == 4, (tag, sorted(tags))
    for name in ("model.keras", "last.keras", "history.csv", "config.yaml", "class_distribution.png",
                 "history.png", "report.json", "report.md", "confusion_matrix.png", "correct.png",
                 "misclassified.png", "state.json", "model.json", "model.weights.h5"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, f"{name} missing"
    hist = _history(run)
    assert [int(r["epoch"]) for r in hist] == [0, 1, 2, 3]
    assert float(hist[-1]["loss"]) < float(hist[0]["loss"]), hist
    report = json.loads((run / "report.json").read_text())
    assert report["n"] == 280 and 0 <= report["accuracy"] <= 1
    assert set(report["per_class"]) == {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
    assert len(report["confusion_matrix"]) == 7 and sum(map(sum, report["confusion_matrix"])) == 280
    assert json.loads((run / "state.json").read_text())["status"] == "finished"
    assert "Evaluation on test" in (run / "report.md").read_text()
    # weight averaging: the last 3 epochs' weights kept, their average tried and judged on validation
    assert sorted(f.name for f in (run / "epochs").iterdir()) == [f"epoch-00{e}.weights.h5" for e in (2, 3, 4)]
    with h5py.File(run / "epochs" / "epoch-004.weights.h5", "r") as kept:     # the model's weights only
        assert "layers" in kept and "optimizer" not in kept, list(kept)
    avg = report["run"]["weight_average"]
    assert avg["epochs"] == [2, 4] and avg["count"] == 3 and avg["used"] == (avg["val_accuracy"] > avg["best_epoch_val_accuracy"])
    assert ("using the average" if avg["used"] else "keeping the best epoch") in out
    # make average: try it again on the finished run with the last 2 epochs
    again = subprocess.run([sys.executable, "-m", "fer_edge.train.finalize", str(run), "--last", "2"], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
                           capture_output=True, text=True, timeout=600)
    if avg["used"]:
        assert again.returncode == 2 and "already is a weight average" in again.stderr, again.stderr
    else:
        assert again.returncode == 0, again.stdout + again.stderr
        assert json.loads((run / "report.json").read_text())["run"]["weight_average"]["epochs"] == [3, 4]


def test_final_fit_trains_on_every_face_and_uses_the_average(tmp_path, fer_root):
    """data.val_fraction=0: no validation split, the whole schedule runs, the average is the model."""
    p = _train(tmp_path, fer_root, "--epochs", "3", "--set", "data.val_fraction=0", "--set", "train.average_last=2",
               "--set", "train.early_stopping_patience=1")      # nothing to monitor: must not stop it
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    assert "final fit: no validation split" in out and "all 280 training faces" in out
    (run,) = (tmp_path / "runs").iterdir()
    hist = _history(run)
    assert [int(r["epoch"]) for r in hist] == [0, 1, 2] and {r.get("val_accuracy", "NA") for r in hist} == {"NA"}
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "finished" and state["best_epoch"] == 3 and "best_val_accuracy" not in state
    assert state["data"]["val"] == [0] * 7 and sum(state["data"]["train"]) == 280
    report = json.loads((run / "report.json").read_text())
    assert report["run"]["weight_average"] == {"epochs": [2, 3], "count": 2, "val_accuracy": None,
                                               "best_epoch_val_accuracy": None, "used": True}
    assert "no validation split (a final fit) -> using the average" in out
    assert report["run"]["train_faces"] == 280 and report["run"]["val_faces"] == 0
    assert (run / "history.png").stat().st_size > 0 and report["n"] == 280
    ev = subprocess.run([sys.executable, "-m", "fer_edge.train.evaluate", "--model", str(run / "model.keras"), "--split", "val",
                         "--data", str(fer_root), "--set", "data.val_fraction=0", "--set", "data.max_per_class=40"],
                        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert ev.returncode == 2 and "validation split is empty" in ev.stderr, ev.stderr


def _kill_after(tmp_path: Path, fer_root: Path, epochs: int, min_done: int) -> tuple[Path, int]:
    """Start a fresh run of ``epochs``, kill -9 it once ``min_done`` epochs are saved; (run dir, epochs done)."""
    p = _train(tmp_path, fer_root, "--epochs", str(epochs), "--fresh", start_new_session=True)
    state = None
    deadline = time.time() + 600
    while time.time() < deadline and p.poll() is None:
        runs = list((tmp_path / "runs").glob("*/state.json"))
        if runs:
            try:
                state = json.loads(runs[0].read_text())
            except json.JSONDecodeError:
                state = None
            if state and state.get("epoch", 0) >= min_done:
                break
        time.sleep(0.2)
    assert p.poll() is None, "training ended before it could be interrupted:\n" + p.communicate()[0]
    os.killpg(p.pid, signal.SIGKILL)                    # a power cut, not a polite Ctrl-C
    p.wait()
    (run,) = (tmp_path / "runs").iterdir()
    done = json.loads((run / "state.json").read_text())["epoch"]
    assert min_done <= done < epochs
    return run, done


def _decay_steps(checkpoint: Path) -> int:
    """The cosine schedule's length saved with the optimizer in a .keras file."""
    with zipfile.ZipFile(checkpoint) as z:
        return int(re.search(r'"decay_steps": *(\d+)', z.read("config.json").decode()).group(1))


def test_killed_run_resumes_from_last_epoch(tmp_path, fer_root):
    run, done = _kill_after(tmp_path, fer_root, 5, 2)
    steps_5 = _decay_steps(run / "last.keras")

    saved = (run / "config.yaml").read_text()
    refused = _train(tmp_path, fer_root, "--set", "train.learning_rate=0.02")   # would change what the run is
    out, _ = refused.communicate(timeout=600)
    assert refused.returncode == 2 and "--set train.learning_rate=0.02 cannot change the run being resumed" in out, out
    assert (run / "config.yaml").read_text() == saved                          # nothing written

    patience = yaml.safe_load(saved)["train"]["early_stopping_patience"]
    p2 = _train(tmp_path, fer_root, "--epochs", "5", "--set", f"train.early_stopping_patience={patience + 5}")
    out, _ = p2.communicate(timeout=600)
    assert p2.returncode == 0, out
    assert f"resuming {run} after epoch {done}/5" in out
    assert re.search(rf"where it stands: best val_accuracy [\d.]+ at epoch \d, \d+ s/epoch, about .* left for the "
                     rf"remaining {5 - done} epochs", out), out
    assert f"train.early_stopping_patience changed from {patience} to {patience + 5} for the rest of the run" in out
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["early_stopping_patience"] == patience + 5
    assert json.loads((run / "report.json").read_text())["run"]["config_changes"] == [
        {"after_epoch": done, "key": "train.early_stopping_patience", "from": patience, "to": patience + 5}]
    assert f"Epoch {done + 1}/5" in out and "Epoch 1/5" not in out
    assert f"seeded with {1337 + done} (train.seed + {done} epochs done)" in out   # no replay of epoch 1's stream
    assert list((tmp_path / "runs").iterdir()) == [run]          # no second run directory
    assert [int(r["epoch"]) for r in _history(run)] == [0, 1, 2, 3, 4]
    assert json.loads((run / "state.json").read_text())["status"] == "finished"
    assert _decay_steps(run / "last.keras") == steps_5

    p3 = _train(tmp_path, fer_root, "--epochs", "1", "--fresh")  # FRESH=1 starts a new run
    out, _ = p3.communicate(timeout=600)
    assert p3.returncode == 0, out and "new run:" in out
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_epochs_changes_the_length_of_an_unfinished_run(tmp_path, fer_root):
    run, done = _kill_after(tmp_path, fer_root, 5, 2)
    steps_5 = _decay_steps(run / "last.keras")

    short = _train(tmp_path, fer_root, "--epochs", str(done))   # would end before now: refused
    out, _ = short.communicate(timeout=600)
    assert short.returncode == 2 and "FINISH=1" in out, out

    p = _train(tmp_path, fer_root, "--epochs", str(done + 1))
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    assert f"run length changed from 5 to {done + 1} epochs" in out and f"Epoch {done + 1}/{done + 1}" in out
    assert [int(r["epoch"]) for r in _history(run)] == list(range(done + 1))
    assert _decay_steps(run / "last.keras") * 5 == steps_5 * (done + 1)    # the cosine schedule was rebuilt
    report = json.loads((run / "report.json").read_text())
    assert report["run"]["epochs_planned"] == done + 1
    assert report["run"]["schedule_changes"] == [{"after_epoch": done, "epochs_from": 5, "epochs_to": done + 1}]


def test_finish_ends_an_unfinished_run_with_its_best_checkpoint(tmp_path, fer_root):
    run, done = _kill_after(tmp_path, fer_root, 8, 1)
    p = _train(tmp_path, fer_root, "--epochs", "8", "--finish")
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    assert f"finishing {run} after epoch {done}/8" in out and "Epoch " not in out   # no further training
    assert len(_history(run)) == done
    report = json.loads((run / "report.json").read_text())
    assert report["run"]["epochs_run"] == done and report["run"]["epochs_planned"] == 8
    assert (run / "model.keras").is_file() and (run / "confusion_matrix.png").is_file()
    assert json.loads((run / "state.json").read_text())["status"] == "finished"

    again = _train(tmp_path, fer_root, "--finish")          # nothing left to finish: a clear error
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 2 and "no unfinished tiny run" in out, out


def test_extend_trains_a_finished_run_on_with_a_rebuilt_schedule(tmp_path, fer_root):
    p = _train(tmp_path, fer_root, "--epochs", "2")
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    (run,) = (tmp_path / "runs").iterdir()
    before = json.loads((run / "state.json").read_text())
    steps_2 = _decay_steps(run / "last.keras")

    short = _train(tmp_path, fer_root, "--extend", "2")          # not longer than what has run: refused
    out, _ = short.communicate(timeout=600)
    assert short.returncode == 2 and "EXTEND=2 must be more" in out, out

    p = _train(tmp_path, fer_root, "--extend", "4")
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    assert f"extending finished run {run} from 2 to 4 epochs" in out and "Epoch 3/4" in out and "Epoch 1/4" not in out
    assert list((tmp_path / "runs").iterdir()) == [run]          # the same run, trained on
    assert [int(r["epoch"]) for r in _history(run)] == [0, 1, 2, 3]
    assert _decay_steps(run / "last.keras") == 2 * steps_2        # the cosine schedule now spans 4 epochs
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "finished" and state["epoch"] == 4
    assert state["best_val_accuracy"] >= before["best_val_accuracy"]   # model.keras only replaced by a better epoch
    report = json.loads((run / "report.json").read_text())
    assert report["run"]["epochs_run"] == 4 and report["run"]["epochs_planned"] == 4
    assert report["run"]["schedule_changes"] == [{"after_epoch": 2, "epochs_from": 2, "epochs_to": 4, "extended": True}]


def test_missing_dataset_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fer_edge.train", "--data", str(tmp_path / "nowhere"), "--arch", "tiny",
                        "--set", f"train.runs_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert r.returncode == 2
    assert "does not exist" in r.stderr and "DATA=" in r.stderr


def test_distillation_from_cached_teachers(tmp_path, fer_root, tiny_keras_model, tiny_tflite):
    """A student trained on the softened mean of two teachers (a .keras and a .tflite): the teachers run
    once, a second run reads their outputs from the cache, and the targets are proper distributions."""
    cache = tmp_path / "teachers"
    teach = ["--set", f"teacher.models=[{tiny_keras_model}, {tiny_tflite}]", "--set", "teacher.temperature=3",
             "--set", "teacher.hard_weight=0.3", "--set", f"teacher.cache_dir={cache}"]
    p = _train(tmp_path, fer_root, "--epochs", "1", *teach)
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0, out
    assert "computing the soft targets of 2 model(s)" in out and "distilling from 2 teacher(s)" in out, out
    (soft_file,) = cache.glob("soft-*.npy")
    soft = np.load(soft_file)
    assert soft.ndim == 2 and soft.shape[1] == 7 and np.allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    assert soft.max(axis=1).mean() < 0.9                   # softened: the temperature spreads them
    (run,) = (tmp_path / "runs").iterdir()
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "finished" and state["teacher"]["temperature"] == 3 and state["teacher"]["mirror"] is True
    p = _train(tmp_path, fer_root, "--fresh", "--epochs", "1", *teach)
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0 and "from the cache" in out and "computing" not in out, out
    # the ensemble measured on the validation hold-out, each model and the mean of their probabilities
    r = subprocess.run([sys.executable, "-m", "fer_edge.train.teachers", str(tiny_keras_model), str(tiny_tflite),
                        "--data", str(fer_root), "--set", "data.max_per_class=40", "--split", "val"],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    accs = re.findall(r"accuracy ([\d.]+)%", r.stdout)
    assert len(accs) == 6 and "ensemble of 2 (mean of probabilities)" in r.stdout, r.stdout
    assert r.stdout.count("with the mirror accuracy") == 3


def test_mirrored_teachers_answer_the_same_for_a_face_and_its_mirror(tiny_keras_model, tiny_tflite, fer_root):
    """teacher.mirror: a face's target is the same whether the augmentation mirrors it or not."""
    from fer_edge.train.data import load_split
    from fer_edge.train.teachers import model_probs
    from tests.conftest import tiny_config
    x = load_split(tiny_config(fer_root, Path("/nonexistent")).data, "train").x[:64]
    flipped = np.ascontiguousarray(x[:, :, ::-1])
    for teacher in (tiny_keras_model, tiny_tflite):
        np.testing.assert_allclose(model_probs(teacher, x, mirror=True), model_probs(teacher, flipped, mirror=True), atol=1e-6)
        assert np.abs(model_probs(teacher, x) - model_probs(teacher, flipped)).max() > 1e-3


def test_a_teacher_that_trained_on_the_validation_faces_is_flagged(tmp_path, tiny_keras_model, tiny_tflite):
    """A final fit (val_fraction 0) saw the hold-out: its validation figures would read high."""
    from fer_edge.train.teachers import saw_validation, validation_warning
    from tests.conftest import as_final_fit
    assert saw_validation(tiny_keras_model) is False and validation_warning(tiny_keras_model) is None
    assert json.loads(tiny_tflite.with_suffix(".json").read_text())["source"]["val_images"] > 0
    assert saw_validation(tiny_tflite) is False
    final = as_final_fit(tiny_keras_model, tmp_path / "final-fit").parent
    assert saw_validation(final / "model.keras") is True
    assert "trained on the validation hold-out too" in validation_warning(final / "model.keras")
    (final / "state.json").unlink()
    assert saw_validation(final / "model.keras") is None
    assert "cannot tell" in validation_warning(final / "model.keras")


def test_measuring_a_final_fit_on_validation_warns_then_measures_every_model(tmp_path, tiny_keras_model, fer_root,
                                                                           capsys):
    """`teachers --split val` with a model that trained on those faces: its warning, then each model's
    figures and the ensemble's, as for any other models."""
    from fer_edge.train.teachers import main
    from tests.conftest import as_final_fit
    final = as_final_fit(tiny_keras_model, tmp_path / "final-fit")
    rc = main([str(final), str(tiny_keras_model), "--data", str(fer_root), "--set", "data.max_per_class=40",
               "--set", f"data.cache_dir={ROOT / '.cache' / 'fer2013'}", "--split", "val"])
    out = capsys.readouterr().out
    assert rc == 0, out
    warned = [i for i, line in enumerate(out.splitlines()) if "trained on the validation hold-out too" in line]
    measured = [i for i, line in enumerate(out.splitlines()) if "with the mirror accuracy" in line]
    assert len(warned) == 1 and len(measured) == 3 and warned[0] < measured[0], out
    assert out.count(f"{final}: accuracy") == 1 and "ensemble of 2 (mean of probabilities)" in out


def _distill(recipe: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fer_edge.train.distill", str(recipe)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=900)


def test_distillation_recipe_runs_end_to_end_and_resumes_where_it_stopped(tmp_path, fer_root):
    """Two tiny teachers, their ensemble on validation, the student on their soft targets, its conversion,
    the final fit with the student's mirror choice; run again, nothing is trained or converted twice."""
    common = {"data.root": str(fer_root), "data.cache_dir": str(ROOT / ".cache" / "fer2013"), "train.epochs": 3,
              "train.average_last": 0, "teacher.cache_dir": str(tmp_path / "teachers"),
              "convert.calibration_size": 70, "convert.min_agreement": 0.5, "convert.max_top1_drop": 20}
    for arg in SMOKE:
        if "=" in arg:
            k, v = arg.split("=", 1)
            common[k] = yaml.safe_load(v)
    common["train.arch"] = "tiny"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"runs_dir": str(tmp_path / "distill"), "common": common,
                                      "teachers": {"t-one": {"train.seed": 1}, "t-two": {"train.seed": 2}},
                                      "student": {"train.seed": 3, "teacher.temperature": 2.0},
                                      "final": {"data.val_fraction": 0}}))
    r = _distill(recipe)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "t-one not started, t-two not started, student not started, final not started" in r.stdout
    out = tmp_path / "distill"
    for split in ("val", "test"):
        assert "ensemble of 2 (mean of probabilities)" in (out / f"ensemble-{split}.txt").read_text()
    assert (out / "t-one" / "train.log").is_file() and (out / "model" / "convert.log").is_file()
    (student,) = (d for d in (out / "student").iterdir() if d.is_dir())
    teachers = [next(d for d in (out / t).iterdir() if d.is_dir()) / "model.keras" for t in ("t-one", "t-two")]
    state = json.loads((student / "state.json").read_text())
    assert state["status"] == "finished" and state["teacher"]["temperature"] == 2.0
    assert [Path(m).resolve() for m in state["teacher"]["models"]] == [t.resolve() for t in teachers]
    contract = json.loads((out / "model" / "emotion_int8.json").read_text())
    assert Path(contract["source"]["keras_file"]).name == "model.keras" and student.name in contract["source"]["run_dir"]
    assert re.search(r"\| t-one \| .* \| 3 \| [\d.]+% \(\d\) \| [\d.]+ h \|", r.stdout), r.stdout[-2000:]
    (final,) = (d for d in (out / "final").iterdir() if d.is_dir())
    state = json.loads((final / "state.json").read_text())
    assert state["status"] == "finished" and state["teacher"]["temperature"] == 2.0    # the student's keys, and
    assert state["data"]["val"] == [0] * 7 and "| final | " in r.stdout               # all the faces train
    final_contract = json.loads((out / "final-model" / "emotion_int8.json").read_text())
    assert final.name in final_contract["source"]["run_dir"]
    # no hold-out to choose the mirror on: the student's choice, made on validation, is passed on
    assert contract["mirror_choice"]["mode"] == "auto" and final_contract["mirror_average"] == contract["mirror_average"]
    inherited = final_contract["mirror_choice"]
    assert inherited["mode"] == "inherited" and inherited["from"] == str(out / "model" / "emotion_int8.tflite")
    assert inherited["from_sha256"] == contract["tflite"]["sha256"]
    assert inherited["from_choice"] == {k: v for k, v in contract["mirror_choice"].items() if k != "reason"}
    assert contract["mirror_choice"]["reason"] in inherited["reason"]
    assert f"to ship it: cp {out / 'final-model'}/emotion_int8.* models/" in r.stdout, r.stdout[-2000:]
    r = _distill(recipe)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "t-one finished, t-two finished, student finished, final finished" in r.stdout
    assert "-m fer_edge.train " not in r.stdout and "-m fer_edge.convert" not in r.stdout
    assert "-m fer_edge.train.teachers" not in r.stdout


def test_distillation_recipe_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "recipe.yaml"
    for text, message in (("teachers: {}\n", "'teachers' must name at least one teacher"),
                          ("teachers: {a: {train.sed: 1}}\n", "recipe " + str(bad) + ", a: "),
                          ("teachers: {a: {teacher.temperature: 3}}\n", "only the student has teachers"),
                          ("teachers: {model: {}}\n", "teacher name 'model'"),
                          ("teachers: {final: {}}\n", "teacher name 'final'"),
                          ("teachers: {a: {}}\nfinal: [1]\n", "'final' must map config keys"),
                          ("teachers: [\n", "not valid YAML")):
        bad.write_text(text)
        r = _distill(bad)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (text, r.stderr)
    r = _distill(tmp_path / "missing.yaml")
    assert r.returncode == 2 and "missing.yaml" in r.stderr


def test_teacher_keys_cannot_change_a_resumed_run(tmp_path):
    from fer_edge.common.config import load_config
    from fer_edge.train.errors import TrainError
    from fer_edge.train.resume import resume_overrides
    saved = load_config(None)
    cfg = load_config(None, ["teacher.temperature=5"])
    with pytest.raises(TrainError, match="teacher.temperature"):
        resume_overrides(saved, cfg, ("teacher.temperature",), tmp_path)


def test_teacher_that_does_not_exist_is_refused(tmp_path, fer_root):
    p = _train(tmp_path, fer_root, "--epochs", "1", "--set", "teacher.models=[no/such/teacher.keras]")
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 2 and "teacher.models" in out and "no/such/teacher.keras" in out, out
    p = _train(tmp_path, fer_root, "--epochs", "1", "--set", "teacher.models=[notes.txt]")
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 2 and "each teacher is a .keras or a .tflite file" in out, out
