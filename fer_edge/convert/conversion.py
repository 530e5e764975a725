"""Keras model -> verified TFLite model + model contract (``make tflite``).

Order matters: convert into a temporary file, verify it against the float model on the test
split, and only when the parity gate passes move it into the output directory next to its
contract. A failed conversion leaves the previous model untouched and no file that looks valid.
"""
from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.common.config import Config, ConvertConfig, display_path, resolve_path
from fer_edge.common.contract import ContractError, ModelContract, Quant, sha256_file
from fer_edge.common.interpreter import ModelLoadError, make_interpreter, runtime_name, runtime_version
from fer_edge.common.model_runner import check_model
from fer_edge.convert import flatbuffer, output_adjust
from fer_edge.convert.calibration import CalibrationSet, load_calibration
from fer_edge.convert.errors import ConvertInputError, ParityError
from fer_edge.convert.mirror import (
    MirrorChoice,
    choose as choose_mirror,
    inherited as inherited_mirror,
    with_mirror_average,
)
from fer_edge.convert.quantize import to_tflite
from fer_edge.convert.source import load_keras_model, resolve_model_path, run_info
from fer_edge.convert.verify import gate_failures, latency_ms, mirrored, parity_metrics, tflite_predict

logger = logging.getLogger(__name__)

LATENCY_RUNS = 300


@dataclass(frozen=True)
class ConvertResult:
    tflite: Path
    contract: Path
    size_bytes: int
    metrics: dict
    latency_median_ms: float
    latency_p95_ms: float


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _quant(detail: dict) -> Quant:
    scale, zp = detail["quantization"]
    return Quant(np.dtype(detail["dtype"]).name, float(scale), int(zp))


def _test_split(cfg: Config, root: Path):
    from fer_edge.train.data import DataError, load_split
    try:
        test = load_split(cfg.data, "test", root)
    except (DataError, OSError) as exc:
        raise ConvertInputError(f"test data for verification: {exc}. Pass DATA=path/to/fer2013.") from exc
    cap = cfg.convert.eval_max_images
    if cap and len(test) > cap:
        # The split is ordered by class: a seeded random subset keeps every class in.
        idx = np.sort(np.random.default_rng(cfg.data.seed).permutation(len(test))[:cap])
        test = test.take(idx)
    if len(test) == 0:
        raise ConvertInputError(f"no test images under {root} to verify the converted model with")
    return test


def _val_split(cfg: Config, root: Path):
    """The validation hold-out (the ``auto`` mirror choice is made on it), or None when there is none."""
    from fer_edge.train.data import DataError, load_split
    try:
        return load_split(cfg.data, "val", root)
    except DataError:
        return None
    except OSError as exc:
        raise ConvertInputError(f"validation data: {exc}. Pass DATA=path/to/fer2013.") from exc


def _adjustment(c: ConvertConfig, model, source: dict, val, mirror_inside: bool, predict_probs, log) -> dict:
    """The logit adjustment and temperature to fold into the final layer (``convert.logit_adjust`` and
    ``convert.temperature``), with what they were chosen on, for the contract."""
    tau, temp = c.logit_adjust, c.temperature
    counts = source.get("train_counts")
    if tau and not counts:
        raise ConvertInputError(f"convert.logit_adjust = {tau:g} needs the training prior, and the run "
                                f"{source.get('run_dir')} does not record its class counts (state.json data.train); "
                                "set convert.logit_adjust to 0")
    log_prior = output_adjust.log_prior_of(counts or [1] * model.outputs[0].shape[-1])
    out = {"logit_adjust": tau, "train_counts": counts, "temperature": temp if temp != "auto" else None}
    if temp == "auto":
        if val is None or len(val) == 0:
            out["temperature"], out["temperature_choice"] = 1.0, "auto, but no validation hold-out: 1"
        else:
            views = [predict_probs(model, val.x)]
            if mirror_inside:
                views.append(predict_probs(model, np.ascontiguousarray(val.x[:, :, ::-1])))
            targets = val.t if val.t is not None else np.eye(len(val.labels), dtype=np.float32)[val.y]
            out["temperature"] = output_adjust.fit_temperature(views, targets, log_prior, tau)
            out["temperature_choice"] = (f"auto: the lowest cross-entropy to the targets of the {len(val)} validation faces "
                                         + ("(the annotators' votes)" if val.t is not None else "(their labels)"))
    log(f"output: logit adjustment {tau:g}, temperature {out['temperature']:g}"
        + (f" ({out['temperature_choice']})" if "temperature_choice" in out else ""))
    out["_log_prior"] = log_prior
    return out


@dataclass
class _Job:
    """One conversion: the model as it will be converted and the faces it is checked on."""
    cfg: Config                 # with data.labels set to the labels the model learned
    model_path: Path
    source: dict                # its training run (run_info)
    model: Any                  # the float Keras model, output adjustment and mirror folded in
    labels: tuple[str, ...]
    label_set: str
    root: Path                  # the FER-2013 folders
    calib: CalibrationSet | None
    test: Any                   # the test split (train.data.Split)
    mirror: MirrorChoice
    adjust: dict                # the contract's output_adjust
    plain_test: np.ndarray      # the float model's test probabilities before the adjustment

    @property
    def precision(self) -> str:
        return self.cfg.convert.precision


def _open_model(cfg: Config, log) -> tuple[Config, Path, dict, Any, tuple[str, ...], str, MirrorChoice | None]:
    """The Keras model to convert, its run and labels, and a mirror choice taken from another model."""
    c = cfg.convert
    inherited = None
    if isinstance(c.mirror, str) and c.mirror != "auto":
        try:
            inherited = inherited_mirror(resolve_path(c.mirror))
        except ContractError as exc:
            raise ConvertInputError(f"convert.mirror: {exc}") from exc
    model_path = resolve_model_path(c.model, resolve_path(cfg.train.runs_dir))
    log(f"model: {model_path}")
    source = run_info(model_path)
    model, labels = load_keras_model(model_path, source)
    label_set = "ferplus" if "contempt" in labels else "fer2013"
    if cfg.data.labels != label_set:        # verify on the labels the model learned
        cfg = replace(cfg, data=replace(cfg.data, labels=label_set))
    return cfg, model_path, source, model, labels, label_set, inherited


def _prepare(cfg: Config, log) -> _Job:
    """Load the model and the faces, choose the mirror and the output adjustment, and fold both into
    the model."""
    from fer_edge.train.metrics import predict_probs

    cfg, model_path, source, model, labels, label_set, inherited = _open_model(cfg, log)
    c = cfg.convert
    root = resolve_path(cfg.data.root)
    calib: CalibrationSet | None = None
    if c.precision == "int8":
        calib = load_calibration(cfg.data, root, c.calibration_size)
        log(f"calibration: {len(calib.x)} training faces {calib.per_class}")
    test = _test_split(cfg, root)
    final_fit = source.get("val_images") == 0           # it trained on the validation hold-out too
    needs_val = (c.mirror == "auto" or c.temperature == "auto") and not final_fit
    val = _val_split(cfg, root) if needs_val else None
    mirror = inherited or choose_mirror(c.mirror, model, val, predict_probs, final_fit=final_fit)
    adjust = _adjustment(c, model, source, val, mirror.inside, predict_probs, log)
    plain_test = predict_probs(model, test.x)            # the calibration before the adjustment, for the contract
    model = output_adjust.fold_into_model(model, adjust.pop("_log_prior"), adjust["logit_adjust"], adjust["temperature"])
    if mirror.inside:
        model = with_mirror_average(model)
        log(f"mirror averaging built into the model ({mirror.reason}): one invoke per face")
    else:
        log(f"no mirror averaging inside the model ({mirror.reason})")
    return _Job(cfg, model_path, source, model, labels, label_set, root, calib, test, mirror, adjust, plain_test)


def _write_tflite(job: _Job, tmp: Path) -> tuple[bytes, dict, dict]:
    """Convert into ``tmp``; the model bytes and its input and output tensor details."""
    precision = job.precision
    try:
        buf = to_tflite(job.model, precision, job.calib.x if job.calib else None)
    except Exception as exc:  # noqa: BLE001 - the converter raises ConverterError and others
        msg = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else type(exc).__name__
        raise ConvertInputError(f"{job.model_path}: TFLite {precision} conversion failed: {msg}. The model "
                                "probably uses a layer without an int8 TFLite kernel; use an "
                                "architecture from fer_edge/train/model.py.") from exc
    tmp.write_bytes(buf)
    try:
        interp = make_interpreter(tmp)
    except ModelLoadError as exc:
        raise ParityError(f"the converted model does not load: {exc}") from exc
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    if precision == "int8" and (np.dtype(inp["dtype"]).name != "int8" or np.dtype(out["dtype"]).name != "int8"):
        raise ParityError(f"the converter produced {np.dtype(inp['dtype']).name} input / "
                          f"{np.dtype(out['dtype']).name} output instead of int8")
    return buf, inp, out


def _verify(job: _Job, tmp: Path, out_dir: Path, log) -> dict:
    """The parity metrics of the converted model in ``tmp`` against the float model; raises ParityError
    when they fail the gate."""
    from fer_edge.train.metrics import expected_calibration_error, predict_probs

    c, precision, test, model = job.cfg.convert, job.precision, job.test, job.model
    log(f"verifying on {len(test)} test faces (float Keras vs {precision} TFLite) ...")
    # A model with the mirror inside has nothing to gain from flipping outside too.
    flipped = None if job.mirror.inside else mirrored(test.x)
    float_probs = predict_probs(model, test.x)
    float_flip = None if flipped is None else predict_probs(model, flipped)
    try:
        tfl_probs = tflite_predict(tmp, test.x)
        tfl_flip = None if flipped is None else tflite_predict(tmp, flipped)
    except (RuntimeError, ValueError) as exc:
        raise ParityError(f"the converted {precision} model fails to run on {runtime_name()}: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}. "
                          f"Nothing was written to {out_dir}.") from exc
    metrics = parity_metrics(test.y, float_probs, tfl_probs, precision, float_flip, tfl_flip, job.labels, test.t)
    metrics["float_before_output_adjust"] = {
        "accuracy": round(float((job.plain_test.argmax(1) == test.y).mean()), 4),
        "ece_15": round(expected_calibration_error(job.plain_test, test.y), 4)}
    metrics["gate"] = {"max_top1_drop": c.max_top1_drop, "min_agreement": c.min_agreement}
    f, q = metrics["float"], metrics[precision]
    log(f"accuracy: float {f['accuracy'] * 100:.2f}%, {precision} {q['accuracy'] * 100:.2f}% "
        f"(drop {metrics['top1_drop_points']:.2f} points); top-1 agreement {metrics['top1_agreement'] * 100:.2f}%")
    if flipped is not None:
        log(f"accuracy with flip TTA: float {f['accuracy_flip_tta'] * 100:.2f}%, "
            f"{precision} {q['accuracy_flip_tta'] * 100:.2f}% (edge.flip_tta; about 2x the classify time)")
    problems = gate_failures(metrics, c.max_top1_drop, c.min_agreement)
    if problems:
        raise ParityError(f"{job.model_path} -> {precision} TFLite failed the parity gate: " + "; ".join(problems)
                          + f". Nothing was written to {out_dir}. Check the model (it may have exploding "
                          "activations that int8 cannot represent) or the calibration data (DATA=).")
    return metrics


def _contract(job: _Job, final: Path, tmp: Path, buf: bytes, inp: dict, out: dict, metrics: dict) -> ModelContract:
    """The contract of the model in ``tmp``, to be installed as ``final``."""
    calib = job.calib
    return ModelContract.new(
        final, labels=tuple(job.labels), label_source=job.label_set, output_adjust=job.adjust,
        shape=(int(inp["shape"][1]), int(inp["shape"][2]), int(inp["shape"][3])),
        input=_quant(inp), output=_quant(out), precision=job.precision,
        sha256=sha256_file(tmp), size_bytes=len(buf), ops=flatbuffer.operator_codes(buf),
        min_runtime_version=flatbuffer.min_runtime_version(buf),
        mirror_inside=job.mirror.inside, mirror_choice={**job.mirror.evidence, "reason": job.mirror.reason},
        source={**job.source, "keras_file": display_path(job.model_path), "keras_sha256": sha256_file(job.model_path)},
        calibration=({"images": len(calib.x), "per_class": calib.per_class, "source": calib.source,
                      "faces_sha256": calib.sha256} if calib else None),
        metrics={**metrics, "test_source": f"{display_path(job.root)} test split "
                                           f"(data.test_subset={job.cfg.data.test_subset})"},
        tools=_versions())


def convert(cfg: Config, log=print) -> ConvertResult:
    """Run the whole conversion described by ``cfg.convert``; returns where the files went.

    Raises ConvertInputError (bad model or data; exit 2) or ParityError (gate failed; exit 1).
    """
    job = _prepare(cfg, log)
    c = job.cfg.convert
    out_dir = resolve_path(c.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{c.name}_{job.precision}"
    final, contract_path = out_dir / f"{stem}.tflite", out_dir / f"{stem}.json"
    tmp = out_dir / f".{stem}.{os.getpid()}.tflite.tmp"
    try:
        buf, inp, out = _write_tflite(job, tmp)
        metrics = _verify(job, tmp, out_dir, log)
        med, p95 = latency_ms(tmp, job.test.x, num_threads=1, runs=LATENCY_RUNS)
        contract = _contract(job, final, tmp, buf, inp, out, metrics)
        # Both files are written before either replaces anything, so a failed write never leaves a
        # new model beside an old contract; the two renames follow each other at once.
        staged = contract.stage()
        os.replace(tmp, final)
        os.replace(staged, contract_path)
        check_model(final)           # the pair as the edge will load it: sha256, contract, one face
    finally:
        tmp.unlink(missing_ok=True)
        contract_path.with_suffix(".json.tmp").unlink(missing_ok=True)
    log(f"wrote {final} ({len(buf) / 1024:.1f} KiB) and {contract_path}")
    log(f"latency per face ({runtime_name()} {runtime_version()}, 1 thread, median of {LATENCY_RUNS}): "
        f"{med:.3f} ms (p95 {p95:.3f} ms)")
    return ConvertResult(final, contract_path, len(buf), metrics, med, p95)


def print_error(exc: Exception | str) -> None:
    logger.error("%s", exc)
