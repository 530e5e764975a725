"""What to expect on a Raspberry Pi: the multiply-accumulates (MACs) of each network the edge runs,
counted from the .tflite files (every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED op: output
elements x kernel size x input channels), per face and per frame, next to a published Pi 4 figure for
a comparable network, and the time per face measured here in the same run. Emulation (make pi-check)
shows the Pi path works; it cannot show a Pi's speed, so the estimate below is a ratio, not a measurement.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

TITLE = "Operation counts and what to expect on a Raspberry Pi"
ROOT = Path(__file__).resolve().parent.parent
# MobileNet v1 1.0/224: 569 M MACs (Howard et al. 2017, table 8); 87 ms per image on a Pi 4's CPU with
# TensorFlow Lite (TildAlice, "MobileNet vs EfficientNet-Lite: Pi 4", dev.to, 2026; precision and
# threads not stated): about 6.5 G MACs/s.
REF_MACS, REF_MS = 569e6, 87.0


def macs(model: Path) -> int:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # The built-in kernels alone, as the default delegate hides the shapes inside the graph (a mirror-inside
    # model's batch of two), which are known after one invoke.
    it = Interpreter(model_path=str(model), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    it.invoke()
    shape = {t["index"]: tuple(int(s) for s in t["shape"]) for t in it.get_tensor_details()}
    total = 0
    for op in it._get_ops_details():
        name = op["op_name"]
        ins = [shape[i] for i in op["inputs"] if i >= 0]
        out = shape[op["outputs"][0]]
        if name == "CONV_2D":
            _, kh, kw, cin = ins[1]
            total += int(np.prod(out)) * kh * kw * cin
        elif name == "DEPTHWISE_CONV_2D":
            total += int(np.prod(out)) * ins[1][1] * ins[1][2]
        elif name == "FULLY_CONNECTED":
            total += int(np.prod(out)) * ins[1][-1]
    return total


def per_call_ms(model: Path, runs: int = 200) -> float:
    from fer_edge.common.interpreter import make_interpreter
    it = make_interpreter(model, num_threads=1)
    inp = it.get_input_details()[0]
    x = np.zeros(inp["shape"], inp["dtype"])
    for _ in range(20):
        it.set_tensor(inp["index"], x)
        it.invoke()
    t0 = time.perf_counter()
    for _ in range(runs):
        it.set_tensor(inp["index"], x)
        it.invoke()
    return (time.perf_counter() - t0) / runs * 1e3


def run() -> str:
    from fer_edge.common.contract import load_contract
    shipped = ROOT / "models" / "emotion_int8.tflite"
    when = ("per face (the mirror inside: face and mirror in one invoke)" if load_contract(shipped).mirror_inside
            else "per face (x2 for photos: flip)")
    models = [("emotion classifier (int8)", shipped, when)]
    try:
        from fer_edge.edge.detect.blazeface import MODELS, model_file
        models += [("BlazeFace full-range (float32, 192x192)", model_file(MODELS["full"]), "per full scan (blazeface)"),
                   ("BlazeFace short-range (float32, 128x128)", model_file(MODELS["short"]), "per face, near-face search")]
    except Exception as exc:            # the package is missing: say so, count the rest
        note = f"BlazeFace not counted: {exc}"
    else:
        note = ""
    rows = []
    for name, path, when in models:
        n = macs(path)
        here = per_call_ms(path)
        est = REF_MS * n / REF_MACS
        rows.append(f"| {name} | {n / 1e6:.1f} M | {when} | {here:.2f} | ~{est:.0f} |")
    return "\n".join([
        "MACs counted from the .tflite files; time per call measured here (1 thread); the Pi 4 estimate scales a "
        f"published figure (MobileNet v1 1.0/224, {REF_MACS / 1e6:.0f} M MACs, {REF_MS:.0f} ms on a Pi 4 CPU) by the MACs: "
        "an order of magnitude, not a measurement (the reference's precision and thread count are not stated; "
        "int8 and float kernels differ in speed per MAC). `make pi-check` runs the same code for arm64 under "
        "emulation, which says nothing about speed.",
        "",
        "| network | MACs | when | ms here | Pi 4 estimate, ms |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "Haar cascades are not a network: their cost depends on the frame and the scale steps. The edge loop's "
        "per-stage times in the edge loop section (`detect`, at `edge.detector.detect_width` 320) are measured "
        "here only. " + note,
    ]) + "\n"
