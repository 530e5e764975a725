"""The model contract and the shared interpreter helper: a shipped model must load and match its
contract; corrupt or mismatched files are refused with a message naming the file and the fix."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_edge.common.contract import ContractError, load_contract, parse_contract, sha256_file
from fer_edge.common.interpreter import ModelLoadError, dequantize, make_interpreter, quantize, runtime_name
from fer_edge.common.labels import LABEL_SETS, LABELS
from tests.conftest import ROOT

COMMITTED = ROOT / "models" / "emotion_int8.tflite"
REQUIRED = {"labels", "input", "output", "tflite", "precision", "schema_version"}


def _copy_pair(model: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, dest / model.name)
    shutil.copy(model.with_suffix(".json"), dest / model.with_suffix(".json").name)
    return dest / model.name


def _check(*args: str) -> int:
    from fer_edge.tools.check import main
    return main(list(args))


def test_contract_has_every_required_key_and_parses(tiny_tflite):
    raw = json.loads(tiny_tflite.with_suffix(".json").read_text())
    assert REQUIRED <= set(raw)
    assert {"height", "width", "channels", "dtype", "scale", "zero_point", "pixels"} <= set(raw["input"])
    assert {"dtype", "scale", "zero_point"} <= set(raw["output"])
    assert {"file", "sha256", "size_bytes", "ops", "min_runtime_version"} <= set(raw["tflite"])
    assert {"source", "calibration", "metrics", "created", "tools"} <= set(raw)
    c = parse_contract(raw, tiny_tflite.with_suffix(".json"))
    assert c.model_file == tiny_tflite and c.sha256 == sha256_file(tiny_tflite)
    for key in ("labels", "input", "tflite"):          # parse_contract refuses a contract missing one
        broken = {k: v for k, v in raw.items() if k != key}
        with pytest.raises(ContractError, match=key):
            parse_contract(broken, Path("x.json"))


def test_check_accepts_the_converted_model(tiny_tflite, capsys):
    assert _check(str(tiny_tflite)) == 0
    assert "ok:" in capsys.readouterr().out


def test_corrupted_tflite_is_refused(tiny_tflite, tmp_path, capsys):
    model = _copy_pair(tiny_tflite, tmp_path)
    data = bytearray(model.read_bytes())
    model.write_bytes(bytes(data[: len(data) // 3]))                  # a truncated copy
    # The contract still names the original hash: the mismatch is caught before loading.
    assert _check(str(model)) == 2
    err = capsys.readouterr().err
    assert f"{model} does not match its contract" in err and "re-run `make tflite`" in err

    # Even with a contract that matches the damaged bytes, the runtime refuses it with our message.
    contract = model.with_suffix(".json")
    raw = json.loads(contract.read_text())
    raw["tflite"]["sha256"] = sha256_file(model)
    contract.write_text(json.dumps(raw))
    assert _check(str(model)) == 2
    err = capsys.readouterr().err
    assert f"cannot load TFLite model {model}" in err and "re-run `make tflite`" in err


def test_contract_that_lies_about_quantisation_is_refused(tiny_tflite, tmp_path, capsys):
    model = _copy_pair(tiny_tflite, tmp_path)
    contract = model.with_suffix(".json")
    raw = json.loads(contract.read_text())
    raw["input"]["zero_point"] += 1
    contract.write_text(json.dumps(raw))
    assert _check(str(model)) == 2
    assert "input quantisation" in capsys.readouterr().err


def test_contract_mirror_flag_must_be_a_boolean(tiny_tflite, tmp_path, capsys):
    raw = json.loads(load_contract(tiny_tflite).path.read_text())
    assert raw["mirror_average"] is False and not parse_contract(raw, tmp_path / "m.json").mirror_inside
    del raw["mirror_average"]                          # contracts written before the key: no mirror
    assert not parse_contract(raw, tmp_path / "m.json").mirror_inside
    raw["mirror_average"] = "yes"
    with pytest.raises(ContractError, match="'mirror_average' = 'yes' should be true or false"):
        parse_contract(raw, tmp_path / "m.json")


def test_make_interpreter_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.tflite"
    with pytest.raises(ModelLoadError, match="not found"):
        make_interpreter(missing)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError) as info:                         # ModelLoadError is a ValueError
        make_interpreter(junk)
    assert isinstance(info.value, ModelLoadError)
    assert str(junk) in str(info.value) and "re-run `make tflite`" in str(info.value)


def test_runtime_is_ai_edge_litert_without_tensorflow():
    """The edge's runtime order puts ai-edge-litert first, and using it imports no TensorFlow."""
    import subprocess
    code = ("import sys; from fer_edge.common.interpreter import runtime_name; n = runtime_name(); "
            "print(n, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ai-edge-litert", "False", "False"]
    assert runtime_name() == "ai-edge-litert"


def test_quantize_matches_tflite_rules():
    x = np.array([0.0, 1.0, 127.4, 127.6, 255.0, 400.0], np.float32)
    q = quantize(x, "int8", 1.0, -128)
    assert q.dtype == np.int8 and q.tolist() == [-128, -127, -1, 0, 127, 127]    # rounded, clipped
    assert dequantize(np.array([-128, 127], np.int8), 1 / 256, -128).tolist() == [0.0, 255 / 256]
    assert quantize(x, "float32", 0.0, 0).dtype == np.float32


def test_committed_default_model_matches_its_contract():
    if not COMMITTED.is_file():
        pytest.skip(f"{COMMITTED.relative_to(ROOT)} is not committed yet (the lead ships it after training)")
    from fer_edge.common.model_runner import check_model
    c = check_model(COMMITTED)                          # sha256, loadable, shapes/dtypes/quantisation agree
    assert c.labels == LABEL_SETS[c.raw.get("label_source", "fer2013")]      # FER-2013's seven or FER+'s eight
    assert (c.height, c.width, c.channels, c.input.dtype, c.output.dtype) == (48, 48, 1, "int8", "int8")
    assert c.sha256 == sha256_file(COMMITTED)
    m = c.metrics                                       # it passed config.yaml's gate, not the tiny one's
    assert m["top1_agreement"] >= 0.97 and m["top1_drop_points"] <= 1.0
    assert load_contract(COMMITTED).raw["tflite"]["file"] == COMMITTED.name


def _written_again(c, model_file: Path, **changes):
    """``c`` written again by ModelContract.new (the converter's writer) from what it holds."""
    from fer_edge.common.contract import ModelContract
    raw = c.raw
    fields = dict(labels=c.labels, label_source=raw["label_source"], output_adjust=raw["output_adjust"],
                  shape=(c.height, c.width, c.channels), input=c.input, output=c.output, precision=c.precision,
                  sha256=c.sha256, size_bytes=raw["tflite"]["size_bytes"], ops=raw["tflite"]["ops"],
                  min_runtime_version=raw["tflite"]["min_runtime_version"], mirror_inside=c.mirror_inside,
                  mirror_choice=raw["mirror_choice"], source=raw["source"], calibration=raw["calibration"],
                  metrics=raw["metrics"], tools=raw["tools"], created=raw["created"])
    return ModelContract.new(model_file, **{**fields, **changes})


def test_the_shipped_contract_reads_and_the_writer_writes_it_unchanged(tmp_path):
    """One module writes and reads the contract: the shipped models/emotion_int8.json reads, and written
    again from what it holds it comes out byte for byte the same, and reads back as the same contract."""
    if not COMMITTED.is_file():
        pytest.skip(f"{COMMITTED.relative_to(ROOT)} is not committed yet (the lead ships it after training)")
    shipped = load_contract(COMMITTED)
    model = tmp_path / COMMITTED.name
    again = _written_again(shipped, model)
    assert again.to_json() == COMMITTED.with_suffix(".json").read_text(encoding="utf-8")
    assert (again.path, again.model_file) == (tmp_path / "emotion_int8.json", model)
    staged = again.stage()
    assert staged == tmp_path / "emotion_int8.json.tmp" and not again.path.exists()
    staged.rename(again.path)
    shutil.copy(COMMITTED, model)
    back = load_contract(model)
    assert (back.labels, back.input, back.output, back.sha256, back.precision, back.mirror_inside, back.metrics) == \
        (shipped.labels, shipped.input, shipped.output, shipped.sha256, shipped.precision, shipped.mirror_inside,
         shipped.metrics)


def test_the_writer_refuses_what_the_reader_would(tmp_path):
    """ModelContract.new checks what it writes as load_contract will: no contract the edge would refuse."""
    if not COMMITTED.is_file():
        pytest.skip(f"{COMMITTED.relative_to(ROOT)} is not committed yet (the lead ships it after training)")
    shipped = load_contract(COMMITTED)
    with pytest.raises(ContractError, match="not a grayscale image input"):
        _written_again(shipped, tmp_path / "m.tflite", shape=(48, 48, 3))
    with pytest.raises(ContractError, match="cannot name a CSV column"):
        _written_again(shipped, tmp_path / "m.tflite", labels=("happy", "sad,angry"))
