"""Command line of the edge runtime: ``python -m fer_edge.edge`` (``make run`` adds --headless).

``main`` only parses arguments, turns them into config overrides and calls ``edge.loop.run``.
Paths given on the command line are relative to the current directory; paths in config.yaml are
relative to the repository root.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from fer_edge import __version__
from fer_edge.common.config import ConfigError, config_help, load_config
from fer_edge.common.invocation import prog
from fer_edge.common.logs import set_level

log = logging.getLogger(__name__)


def _cli_path(value: str) -> str:
    return os.path.abspath(Path(value).expanduser())


def _cli_source(value: str) -> str:
    """Camera indices, devices, URLs and 'auto' pass through; files become absolute paths."""
    v = value.strip()
    if v in ("auto", "picamera", "picamera2") or v.isdigit() or v.startswith("/dev/") or "://" in v:
        return v
    return _cli_path(v)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog("edge"),
        description="Detect faces, classify their expression with the int8 TFLite model and log them to CSV "
                    "(optionally with an overlay window and the web view).")
    ap.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    ap.add_argument("--config", default=None, help=config_help())
    ap.add_argument("--source", help="auto | camera index | /dev/videoN | video file | image file or folder | "
                                     "rtsp:// or http:// URL (edge.source)")
    ap.add_argument("--model", help="int8 .tflite with its contract .json next to it (edge.model)")
    ap.add_argument("--log", help="CSV emotion log, appended (edge.log)")
    ap.add_argument("--headless", action="store_true", help="never open a window (edge.display off)")
    ap.add_argument("--display", choices=("auto", "on", "off"), help="overlay window (edge.display)")
    ap.add_argument("--loop", action="store_true", help="restart a video file or image folder at its end (edge.loop)")
    ap.add_argument("--max-frames", type=int, help="stop after N frames, 0 = no limit (edge.max_frames)")
    ap.add_argument("--threads", type=int, help="interpreter threads (edge.threads)")
    ap.add_argument("--web", action="store_true", help="serve the live web view too (web.enabled)")
    ap.add_argument("--stats-json", metavar="PATH", help="write counters and per-stage p50/p95 ms here at exit")
    ap.add_argument("--quiet", action="store_true",
                    help="warnings and errors only: no notes, no progress bar and no summary at the end")
    ap.add_argument("--verbose", action="store_true",
                    help="debug messages too, and the runtime's and OpenCV's own messages")
    ap.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="override any config key, e.g. --set edge.detector.detect_width=240 (repeatable)")
    return ap


def overrides_from_args(args: argparse.Namespace) -> list:
    """The config overrides the flags stand for (--set items first, flags win)."""
    out: list = list(args.set)
    if args.source is not None:
        out.append(("edge.source", _cli_source(args.source)))
    if args.model is not None:
        out.append(("edge.model", _cli_path(args.model)))
    if args.log is not None:
        out.append(("edge.log", _cli_path(args.log)))
    if args.display is not None:
        out.append(("edge.display", args.display))
    if args.headless:
        out.append(("edge.display", "off"))
    if args.loop:
        out.append(("edge.loop", True))
    if args.max_frames is not None:
        out.append(("edge.max_frames", args.max_frames))
    if args.threads is not None:
        out.append(("edge.threads", args.threads))
    if args.web:
        out.append(("web.enabled", True))
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the config, run the loop; returns the exit code."""
    args = build_parser().parse_args(argv)
    set_level(verbose=args.verbose, quiet=args.quiet)
    stats_json = _cli_path(args.stats_json) if args.stats_json else None
    if args.verbose:
        from fer_edge.common import interpreter
        interpreter.SHOW_RUNTIME_NOTES = True
    else:
        # Before cv2 loads: no camera-probing messages (a missing camera index is logged as an ERROR by
        # a backend's probe), no FFmpeg decoder chatter; the loop reports what fails itself.
        os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import fer_edge.edge.detect  # noqa: F401 (its backends add their config sections, edge.detector.<backend>)
    try:
        cfg = load_config(args.config, overrides_from_args(args))
    except ConfigError as exc:
        log.error("%s", exc)
        from fer_edge.edge.runstats import write_stats_of_no_run
        write_stats_of_no_run(Path(stats_json) if stats_json else None, 2)
        return 2
    from fer_edge.edge.loop import run  # after the config check: bad flags fail fast, before LiteRT loads
    return run(cfg, stats_json=stats_json, headless=args.headless, quiet=args.quiet)
