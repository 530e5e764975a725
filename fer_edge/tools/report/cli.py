"""The emotion report of a CSV log: ``python -m fer_edge.tools.report LOG [--out DIR] [--from ISO] [--to ISO]
[--every 1min] [--tz ZONE]`` (also ``fer-report``, ``make report LOG=...``).

Reads the log and its rotated files (``LOG.N`` ... ``LOG.1``, gzipped or not, oldest first) as a
stream, twice (its span, then the counts), in memory bounded by the number of periods (not by the
rows). A log of one pass over one video file is reported on the video's own time (its ``media_s``
column: "at 0:02:29 she smiles"), any other on the wall clock in ``--tz`` (the machine's zone unless
given). Without ``--every`` the period is the round one that draws the span in 60 to 200 bars. It writes:

- ``timeline.png``: the share of each emotion per period (stacked), and the faces in view per frame;
  periods without rows are left blank and gaps hatched;
- ``faces.png``: the longest-seen tracked faces, how long each was seen and its emotion mix;
- ``summary.md``: time range, rows, faces, emotion shares, the dominant emotion per period, the
  longest stretch of each emotion, and the gaps.

Rows that do not parse (a line over 64 KB included) are skipped and counted, rows dated before 2000
or after tomorrow are counted as impossible times, and a damaged rotated file (a truncated gzip, a
.gz that is not gzip) is read up to the damage and named; a file that is not an emotion log is
refused. Reading: rows.py, read.py; times: clock.py; summary.md: summary.py; the charts: plot.py.
Exit codes: 0 written, 2 bad input (not a log, no rows in the range, bad option, --out not a folder).
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from datetime import datetime, timezone, tzinfo
from pathlib import Path

from fer_edge import __version__
from fer_edge.common.helptext import summary
from fer_edge.common.invocation import prog
from fer_edge.tools.report.clock import Clock, choose_period, fmt_period, resolve_tz
from fer_edge.tools.report.read import Report, scan
from fer_edge.tools.report.rows import ReportError, Unreadable, fmt_dur, labels_of, log_files, plural
from fer_edge.tools.report.summary import summary_md

_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}


def parse_every(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m|h|d)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise ReportError(f"--every {text!r}: give a period such as 10s, 1min, 5min, 1h or 1d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_time(text: str, option: str, tz: tzinfo = timezone.utc) -> datetime:
    """An ISO time; one without a zone is in ``tz``."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"{option} {text!r}: not an ISO time (e.g. 2026-11-26T14:00 or 2026-11-26T14:00:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=tz)


def _labels(log: Path, files: list[Path]) -> tuple[str, ...]:
    """The labels of the first readable file with a header (empty files are skipped)."""
    unreadable = None
    for f in files:
        if f.stat().st_size:
            try:
                return labels_of(f)
            except Unreadable as exc:    # a damaged rotated file: named in the report, the others still read
                unreadable = unreadable or exc
    raise unreadable or ReportError(f"{log}: empty: the edge has not logged a face yet")


def make_report(log: Path, out: Path, every: float | None = None, t_from: datetime | None = None,
                t_to: datetime | None = None, gap_s: float | None = None, charts: bool = True,
                tz: tuple[tzinfo, str] = (timezone.utc, "UTC")) -> tuple[Report, str]:
    """Read the log and write the report into ``out``; (the report, a note on how its times were chosen).
    ``every`` None: the period is chosen from the span."""
    files = log_files(log)
    labels = _labels(log, files)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out}: exists and is not a folder: pass a folder for summary.md and the charts")
    span = scan(labels, files, t_from, t_to)
    if span.one_video:
        assert span.media_first is not None and span.media_last is not None
        clock = Clock("media", tz[0], tz[1], video=Path(next(iter(span.sources))).name)
        first, last = span.media_first, span.media_last
    else:
        clock = Clock("wall", tz[0], tz[1])
        first, last = span.first or 0.0, span.last or 0.0
    period = every if every is not None else choose_period(first, last)
    rep = Report(labels, period, gap_s if gap_s is not None else max(2 * period, 60.0), files, clock)
    rep.read(t_from, t_to)
    if not rep.rows:
        where = " between --from and --to" if (t_from or t_to) else ""
        raise ReportError(f"{log}: no readable rows{where} ({rep.malformed} malformed, {rep.outliers} with an impossible "
                          f"time, {rep.out_of_range} outside the range)")
    logged = (span.first, span.last) if span.first is not None and span.last is not None else None
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.md").write_text(summary_md(rep, log, logged))
        if charts:
            from fer_edge.tools.report.plot import plot_faces, plot_timeline
            plot_timeline(rep, out / "timeline.png")
            plot_faces(rep, out / "faces.png")
    except OSError as exc:
        raise ReportError(f"--out {out}: cannot write there ({exc.strerror or exc}): pass a writable folder") from None
    why = span.why_not_media()
    note = (f"times: {clock.describe()}" + (f" ({why})" if why else "")
            + f"; period {fmt_period(period)}" + ("" if every is not None else " (from the span; --every sets it)"))
    return rep, note


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog("report"), description=summary(__doc__))
    ap.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    ap.add_argument("log", type=Path, help="the CSV emotion log (its rotated files LOG.1, LOG.2, ... are read too)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: LOG's name + '-report' beside it)")
    ap.add_argument("--from", dest="t_from", default=None,
                    help="first time to include, ISO, on the wall clock (in --tz unless it names its zone)")
    ap.add_argument("--to", dest="t_to", default=None, help="last time to include, ISO")
    ap.add_argument("--every", default=None, help="period of the timeline and the table: 10s, 1min, 5min, 1h, 1d "
                    "(default: the round period that draws the log's span in 60 to 200 bars)")
    ap.add_argument("--gap", default=None, help="no rows for longer than this is a gap (default: 2 periods, at least 1min)")
    ap.add_argument("--tz", default="local", help="time zone of the wall-clock times: local (the machine's, the "
                    "default), UTC, or a name such as Europe/Berlin")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        tz = resolve_tz(args.tz)
        every = parse_every(args.every) if args.every else None
        gap = parse_every(args.gap) if args.gap else None
        t_from = parse_time(args.t_from, "--from", tz[0]) if args.t_from else None
        t_to = parse_time(args.t_to, "--to", tz[0]) if args.t_to else None
        out = args.out or args.log.with_name(args.log.name.removesuffix(".csv") + "-report")
        charts = importlib.util.find_spec("matplotlib") is not None
        if not charts:
            print("note: matplotlib is not installed: writing summary.md only (pip install matplotlib for the charts)",
                  file=sys.stderr)
        rep, note = make_report(args.log, out, every, t_from, t_to, gap, charts, tz)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    assert rep.first is not None and rep.last is not None
    top = ", ".join(f"{name} {pct:.1f}%" for name, _, pct in rep.shares()[:3])
    print(f"{rep.rows:,} rows, {plural(rep.faces, 'faces')}, {fmt_dur(rep.last - rep.first)} ({top}); "
          f"{rep.malformed:,} malformed skipped" + (f", {rep.outliers:,} with an impossible time" if rep.outliers else "")
          + (f", damaged: {'; '.join(rep.damaged)}" if rep.damaged else "") + f" -> {out}/"
          + ("{summary.md,timeline.png,faces.png}" if charts else "summary.md"))
    print(note)
    return 0
