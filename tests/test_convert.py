"""The converter on real models and real FER faces: full-int8 output, the parity gate, and the
rejection of bad inputs with exit code 2 and a message that names the file and the fix."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fer_edge.common.contract import load_contract, sha256_file
from fer_edge.common.labels import LABELS
from tests.conftest import CACHE_DIR, ROOT, TINY_CONVERT, TINY_TRAIN


def _cli_args(fer_root: Path, out_dir: Path, *extra: str) -> list[str]:
    """`python -m fer_edge.convert` arguments converting into out_dir with the tiny fixture's settings."""
    sets = {**TINY_CONVERT, "data.cache_dir": str(CACHE_DIR), "data.max_per_class": TINY_TRAIN["data.max_per_class"],
            "convert.output_dir": str(out_dir)}
    args = ["--data", str(fer_root)]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    return args + list(extra)


def _convert(*args: str) -> int:
    from fer_edge.convert.__main__ import main
    return main(list(args))


# ------------------------------------------------------------------ a good model
def test_tiny_model_converts_to_full_int8_with_a_valid_contract(tiny_tflite, tiny_keras_model):
    from fer_edge.common.interpreter import make_interpreter
    c = load_contract(tiny_tflite)                     # parses and checks the sha256
    raw = json.loads(c.path.read_text())
    assert c.labels == LABELS and c.precision == "int8"
    assert (c.height, c.width, c.channels) == (48, 48, 1)
    assert c.input.dtype == c.output.dtype == "int8" and c.input.scale > 0 and c.output.scale > 0
    assert raw["input"]["pixels"] == "grayscale 0-255, raw (the model rescales)"
    assert raw["tflite"]["file"] == tiny_tflite.name
    assert raw["tflite"]["sha256"] == sha256_file(tiny_tflite)
    assert raw["tflite"]["size_bytes"] == tiny_tflite.stat().st_size
    names = {op["name"] for op in raw["tflite"]["ops"]}
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= names
    assert all(isinstance(op["version"], int) and op["version"] >= 1 for op in raw["tflite"]["ops"])
    assert raw["tflite"]["min_runtime_version"][0].isdigit()
    assert raw["source"]["arch"] == "tiny" and raw["source"]["keras_sha256"] == sha256_file(tiny_keras_model)
    cal = raw["calibration"]
    assert cal["images"] == 140 == sum(cal["per_class"].values())
    assert set(cal["per_class"]) == set(LABELS) and min(cal["per_class"].values()) == 20   # balanced
    assert raw["created"] and raw["tools"]["ai-edge-litert"]

    # Full integer: every tensor the interpreter holds is an integer (no dynamic-range float ops).
    interp = make_interpreter(tiny_tflite)
    float_tensors = [t["name"] for t in interp.get_tensor_details() if np.dtype(t["dtype"]).kind == "f"]
    assert float_tensors == []
    detail = interp.get_input_details()[0]
    assert tuple(detail["shape"]) == (1, 48, 48, 1)
    assert detail["quantization"] == pytest.approx((c.input.scale, c.input.zero_point))


def test_parity_gate_passes_and_metrics_are_recorded(tiny_tflite):
    m = load_contract(tiny_tflite).metrics
    assert m["test_images"] == 956                      # 150 per class, disgust has only 56 test faces
    for key in ("float", "int8"):
        assert 0 < m[key]["accuracy"] <= 1 and 0 <= m[key]["macro_f1"] <= 1
        assert set(m[key]["per_class_f1"]) == set(LABELS)
        # flip TTA (mean of the face's and its mirror's probabilities) is reported next to single-pass
        assert 0 < m[key]["accuracy_flip_tta"] <= 1 and 0 <= m[key]["macro_f1_flip_tta"] <= 1
        assert set(m[key]["per_class_f1_flip_tta"]) == set(LABELS)
        assert all(0 <= v <= 1 for v in m[key]["per_class_f1_flip_tta"].values())
    assert m["top1_agreement"] >= TINY_CONVERT["convert.min_agreement"]
    assert m["top1_drop_points"] <= TINY_CONVERT["convert.max_top1_drop"]
    assert m["top1_drop_points"] == pytest.approx((m["float"]["accuracy"] - m["int8"]["accuracy"]) * 100, abs=0.01)
    assert m["gate"] == {"max_top1_drop": 3.0, "min_agreement": 0.9}


def _exploding_copy(keras_path: Path, out: Path, gain: float = 1000.0) -> Path:
    """The same network with one channel of the last conv block `gain` times larger and the head's
    weights for it `gain` times smaller. ReLU and average pooling are linear for positive
    factors, so the float model predicts what the original does; int8, with one scale per
    activation tensor, must stretch that tensor's range over the exploding channel and rounds
    every other channel to zero."""
    import keras
    m = keras.models.load_model(keras_path, compile=False)
    bn = m.get_layer("s3_bn")
    gamma, beta, mean, var = bn.get_weights()
    gamma[0] *= gain
    beta[0] *= gain
    bn.set_weights([gamma, beta, mean, var])
    head = m.get_layer("probs")
    w, b = head.get_weights()
    w[0] /= gain
    head.set_weights([w, b])
    m.save(out)
    return out


def test_parity_gate_rejects_a_model_whose_activations_explode(tiny_keras_model, fer_root, tmp_path, capsys):
    broken = _exploding_copy(tiny_keras_model, tmp_path / "exploding.keras")
    out_dir = tmp_path / "models"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("an older model would stay")
    rc = _convert("--model", str(broken), *_cli_args(fer_root, out_dir))
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "failed the parity gate" in err and "agreement" in err and str(broken) in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["keep.txt"]   # no model, no contract, no temp file


def test_float32_precision_writes_a_float_contract(tiny_keras_model, fer_root, tmp_path):
    rc = _convert("--model", str(tiny_keras_model), "--precision", "float32", *_cli_args(fer_root, tmp_path))
    assert rc == 0
    c = load_contract(tmp_path / "emotion_float32.tflite")
    assert c.precision == "float32" and c.input.dtype == c.output.dtype == "float32"
    assert (c.input.scale, c.input.zero_point, c.output.scale, c.output.zero_point) == (0.0, 0, 0.0, 0)
    assert c.raw["calibration"] is None
    assert c.metrics["top1_agreement"] >= 0.99          # float32 TFLite = Keras up to rounding


# ------------------------------------------------------------------ bad inputs -> exit 2
def _keras_model(path: Path, input_shape: tuple, outputs: int) -> Path:
    import keras
    from keras import layers
    inp = keras.Input(input_shape)
    x = layers.Conv2D(4, 3)(layers.Rescaling(1 / 255)(inp))
    out = layers.Dense(outputs, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    keras.Model(inp, out).save(path)
    return path


@pytest.mark.parametrize("shape,outputs,message", [
    ((64, 64, 3), 7, "model input is 64x64x3, the edge feeds 48x48x1"),
    ((48, 48, 1), 5, "model output shape (5,) does not match the 7 labels"),
])
def test_wrong_shape_models_are_rejected(shape, outputs, message, fer_root, tmp_path, capsys):
    model = _keras_model(tmp_path / "wrong.keras", shape, outputs)
    rc = _convert("--model", str(model), *_cli_args(fer_root, tmp_path / "out"))
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and str(model) in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_and_corrupt_keras_files_are_rejected(fer_root, tmp_path, capsys):
    missing = tmp_path / "nope.keras"
    assert _convert("--model", str(missing), *_cli_args(fer_root, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert f"Keras model {missing} not found" in err and "MODEL=" in err

    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive" + os.urandom(256))
    assert _convert("--model", str(corrupt), *_cli_args(fer_root, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert f"cannot load Keras model {corrupt}" in err and "re-train" in err


def test_missing_calibration_data_is_rejected(tiny_keras_model, tmp_path, capsys):
    nowhere = tmp_path / "no-fer-here"
    rc = _convert("--model", str(tiny_keras_model), "--data", str(nowhere),
                  "--set", f"convert.output_dir={tmp_path / 'out'}")
    err = capsys.readouterr().err
    assert rc == 2
    assert "calibration data" in err and str(nowhere) in err and "DATA=" in err


def test_an_output_dir_that_cannot_be_written_is_one_line_and_exit_2(tiny_keras_model, fer_root, tmp_path, capsys):
    """convert.output_dir under a file: exit 2 and one line naming the folder and the fix, no traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out_dir = blocker / "models"
    rc = _convert("--model", str(tiny_keras_model), *_cli_args(fer_root, out_dir))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err == (f"error: cannot write {out_dir}: Not a directory. Make convert.output_dir writable "
                   "(or pass --set convert.output_dir=DIR); nothing was replaced\n")


def test_cli_process_exit_code_for_bad_config(tmp_path):
    """The real `python -m fer_edge.convert` process: config errors exit 2 naming the key."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    r = subprocess.run([sys.executable, "-m", "fer_edge.convert", "--set", "convert.calibration_size=3"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "convert.calibration_size" in r.stderr


# ------------------------------------------------------------------ model choice and calibration
def _run(runs: Path, name: str, status: str | None, model: bool = True) -> Path:
    d = runs / name
    d.mkdir(parents=True)
    if status is not None:
        (d / "state.json").write_text(json.dumps({"status": status}))
    if model:
        (d / "model.keras").write_bytes(b"x")
    return d


def test_auto_model_is_the_newest_finished_run(tmp_path):
    from fer_edge.convert.errors import ConvertInputError
    from fer_edge.convert.source import newest_finished_run
    runs = tmp_path / "runs"
    with pytest.raises(ConvertInputError, match="no finished training run"):
        newest_finished_run(runs)
    _run(runs, "20260101-000000-default", "finished")
    want = _run(runs, "20260301-000000-tiny", "finished")
    _run(runs, "20260401-000000-default", "training")           # still running
    _run(runs, "20260501-000000-default", "finished", model=False)
    _run(runs, "20260601-000000-default", None)                 # no state.json
    assert newest_finished_run(runs) == want / "model.keras"


# ------------------------------------------------------------------ the mirror inside the model
def _test_faces(fer_root: Path, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    from fer_edge.train.data import load_split
    from tests.conftest import tiny_config
    test = load_split(tiny_config(fer_root, Path("/nonexistent")).data, "test")
    idx = np.random.default_rng(0).permutation(len(test))[:n]
    return test.x[idx], test.y[idx]


def test_mirror_inside_answers_for_a_face_and_its_mirror_in_one_invoke(mirrored_tflite, tiny_tflite,
                                                                        tiny_keras_model, fer_root):
    import keras

    from fer_edge.common.interpreter import make_interpreter
    from fer_edge.common.model_runner import TfliteModel
    from fer_edge.train.metrics import predict_probs
    c, raw = load_contract(mirrored_tflite), json.loads(mirrored_tflite.with_suffix(".json").read_text())
    assert c.mirror_inside and raw["mirror_choice"]["mode"] == "true"
    assert not load_contract(tiny_tflite).mirror_inside
    # The interface of the plain model: one face in, one row out, full int8.
    interp = make_interpreter(mirrored_tflite)
    assert tuple(interp.get_input_details()[0]["shape"]) == (1, 48, 48, 1)
    assert tuple(interp.get_output_details()[0]["shape"]) == (1, len(LABELS))
    assert [t["name"] for t in interp.get_tensor_details() if np.dtype(t["dtype"]).kind == "f"] == []
    assert {"REVERSE_V2", "CONCATENATION", "MEAN"} <= {op["name"] for op in raw["tflite"]["ops"]}

    x, _ = _test_faces(fer_root)
    model = TfliteModel(mirrored_tflite)
    for face in x[:50]:
        # A face and its mirror make the same batch of two: the same int8 answer, to the bit.
        np.testing.assert_array_equal(model.run(model.quantize(face)),
                                      model.run(model.quantize(np.ascontiguousarray(face[:, ::-1]))))
    # The answer is the float model's mean over the face and its mirror, within int8's resolution.
    keras_model = keras.models.load_model(tiny_keras_model, compile=False)
    want = (predict_probs(keras_model, x) + predict_probs(keras_model, np.ascontiguousarray(x[:, :, ::-1]))) / 2
    got = model.probs_batch(x)
    assert (got.argmax(1) == want.argmax(1)).mean() >= TINY_CONVERT["convert.min_agreement"]
    assert np.abs(got - want).mean() < 0.01, np.abs(got - want).mean()
    # It differs from the plain model's single pass (the mirror really is in there).
    assert not np.array_equal(got.argmax(1), TfliteModel(tiny_tflite).probs_batch(x).argmax(1))

    # Its metrics are single-pass metrics of the mirrored model; no flip TTA on top.
    m = c.metrics
    assert "accuracy_flip_tta" not in m["int8"] and 0 < m["int8"]["accuracy"] <= 1
    assert m["top1_agreement"] >= TINY_CONVERT["convert.min_agreement"]


def test_mirror_auto_is_decided_on_the_validation_hold_out(tiny_keras_model, fer_root):
    import keras

    from fer_edge.convert.mirror import choose
    from fer_edge.train.data import load_split
    from fer_edge.train.metrics import predict_probs
    from tests.conftest import tiny_config
    model = keras.models.load_model(tiny_keras_model, compile=False)
    val = load_split(tiny_config(fer_root, Path("/nonexistent")).data, "val")
    got = choose("auto", model, val, predict_probs)
    plain = predict_probs(model, val.x).argmax(1)
    both = (predict_probs(model, val.x) + predict_probs(model, np.ascontiguousarray(val.x[:, :, ::-1]))).argmax(1)
    acc, acc_mirror = float((plain == val.y).mean()), float((both == val.y).mean())
    assert got.evidence == {"mode": "auto", "val_images": len(val), "val_accuracy": round(acc, 4),
                            "val_accuracy_mirror": round(acc_mirror, 4)}
    assert got.inside == (acc_mirror > acc)
    none = choose("auto", model, None, predict_probs)
    assert not none.inside and "data.val_fraction" in none.reason
    assert choose(True, model, None, predict_probs).inside and not choose(False, model, val, predict_probs).inside


def test_a_final_fit_takes_the_mirror_choice_of_a_converted_model(mirrored_tflite, tiny_tflite, tiny_keras_model,
                                                                   fer_root, tmp_path):
    """convert.mirror set to a converted model: its choice, and the contract says whose it was."""
    from fer_edge.common.config import display_path
    from fer_edge.convert.conversion import convert
    from fer_edge.convert.mirror import inherited
    from tests.conftest import tiny_config
    cfg = tiny_config(fer_root, tmp_path, **{"convert.model": str(tiny_keras_model),
                                             "convert.mirror": str(mirrored_tflite)})
    out = convert(cfg, log=lambda *_: None).tflite
    c, raw = load_contract(out), json.loads(out.with_suffix(".json").read_text())
    donor = json.loads(mirrored_tflite.with_suffix(".json").read_text())
    assert c.mirror_inside
    assert {"REVERSE_V2", "CONCATENATION", "MEAN"} <= {op["name"] for op in raw["tflite"]["ops"]}
    choice = raw["mirror_choice"]
    assert choice["mode"] == "inherited" and choice["from"] == display_path(mirrored_tflite)
    assert choice["from_sha256"] == donor["tflite"]["sha256"] and choice["from_choice"] == {"mode": "true"}
    assert choice["reason"] == f"the choice of {display_path(mirrored_tflite)} (convert.mirror is true)"
    # A plain model's choice is no mirror.
    plain = inherited(tiny_tflite)
    assert not plain.inside and plain.evidence["from_choice"] == {"mode": "false"}


def test_auto_does_not_decide_the_mirror_on_faces_a_final_fit_trained_on(tiny_keras_model, fer_root, tmp_path):
    """A final fit (val_fraction 0) saw the hold-out: auto leaves the mirror out and says how to choose."""
    from fer_edge.convert.conversion import convert
    from tests.conftest import as_final_fit, tiny_config
    final = as_final_fit(tiny_keras_model, tmp_path / "final-fit")
    cfg = tiny_config(fer_root, tmp_path / "out", **{"convert.model": str(final), "convert.mirror": "auto"})
    lines = []
    raw = json.loads(convert(cfg, log=lines.append).tflite.with_suffix(".json").read_text())
    assert raw["mirror_average"] is False and raw["source"]["val_images"] == 0
    assert raw["mirror_choice"]["mode"] == "auto" and raw["mirror_choice"]["final_fit"] is True
    assert "a final fit" in raw["mirror_choice"]["reason"] and ".tflite" in raw["mirror_choice"]["reason"]
    assert any("no mirror averaging inside the model (the model trained on the validation hold-out" in x for x in lines)


def test_a_mirror_choice_from_a_missing_or_unknown_source_is_rejected(tiny_keras_model, fer_root, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "emotion_int8.tflite"
    rc = _convert("--model", str(tiny_keras_model), *_cli_args(fer_root, tmp_path / "out"),
                  "--set", f"convert.mirror={missing}")
    err = capsys.readouterr().err
    assert rc == 2 and "convert.mirror" in err and str(missing) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(SystemExit) as exit_:
        _convert("--set", "convert.mirror=sometimes")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "convert.mirror" in err and "'sometimes'" in err and ".tflite" in err


def test_calibration_indices_are_balanced_and_fill_from_big_classes():
    from fer_edge.convert.calibration import balanced_indices
    idx = balanced_indices(np.repeat(np.arange(7), 500), 140, seed=1)
    assert np.bincount(np.repeat(np.arange(7), 500)[idx], minlength=7).tolist() == [20] * 7
    y = np.repeat(np.arange(7), [500, 10, 500, 500, 500, 500, 500])   # a rare class like disgust
    idx = balanced_indices(y, 700, seed=1)
    counts = np.bincount(y[idx], minlength=7)
    assert counts[1] == 10 and counts.sum() == 700 and counts.max() - counts[[0, 2, 3, 4, 5, 6]].min() <= 1
    assert len(np.unique(idx)) == idx.size


def test_the_contract_names_the_calibration_faces(tiny_tflite, fer_root):
    """Two conversions calibrated on other faces (e.g. a final fit's split) differ in their contracts."""
    from fer_edge.convert.calibration import load_calibration
    from tests.conftest import tiny_config
    data = tiny_config(fer_root, Path("/nonexistent")).data
    cal = json.loads(tiny_tflite.with_suffix(".json").read_text())["calibration"]
    again = load_calibration(data, fer_root, cal["images"])
    assert cal["faces_sha256"] == again.sha256 and cal["source"] == again.source
    assert "the 0.1 validation hold-out excluded" in cal["source"] and f"data.seed {data.seed}" in cal["source"]
    everything = load_calibration(replace(data, val_fraction=0.0), fer_root, cal["images"])
    assert everything.sha256 != again.sha256 and "data.val_fraction is 0" in everything.source
    assert everything.per_class == again.per_class      # same counts: only the hash tells them apart
