"""The emotion report of a CSV log: ``python -m fer_edge.edge.report LOG [--out DIR] [--from ISO] [--to ISO]
[--every 1min]`` (also ``fer-report`` and ``make report LOG=...``).

Reads the log and its rotated files (``LOG.N`` ... ``LOG.1``, gzipped or not, oldest first) as a
stream, in memory bounded by the number of periods (not by the rows), and writes:

- ``timeline.png``: the share of each emotion per period (stacked), and the faces in view per frame;
  periods without rows are left blank, so the gaps show as gaps;
- ``faces.png``: the longest-seen tracked faces, how long each was seen and its emotion mix;
- ``summary.md``: time range, rows, faces, emotion shares, the dominant emotion per period, the
  longest stretch of each emotion, and the gaps.

Rows that do not parse (a line over 64 KB included) are skipped and counted, rows dated before 2000
or after tomorrow are counted as impossible times, and a damaged rotated file (a truncated gzip, a
.gz that is not gzip) is read up to the damage and named; a file that is not an emotion log is
refused. Reading: reportio.py; the charts: reportplot.py.
Exit codes: 0 written, 2 bad input (not a log, no rows in the range, bad option, --out not a folder).
"""
from __future__ import annotations

import argparse
import csv
import heapq
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from fer_edge import __version__
from fer_edge.common.helptext import summary
from fer_edge.edge.csvlog import BASE_COLUMNS
from fer_edge.edge.reportio import (
    LINE_LIMIT,
    READ_ERRORS,
    Outlier,
    ReportError,
    Unreadable,
    bounded_lines,
    fmt_dur,
    iso,
    labels_of,
    log_files,
    md_cell,
    open_text,
    parse_row,
    reason,
)

FACE_GAP_S = 2.0        # a face_id unseen this long, or a new run of the edge, starts another tracked face
TOP_FACES = 20          # faces drawn in faces.png
MAX_PERIOD_ROWS = 200   # periods listed in summary.md (all of them are in the chart)
MAX_GAPS_LISTED = 50


_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}


def parse_every(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m|h|d)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise ReportError(f"--every {text!r}: give a period such as 10s, 1min, 5min, 1h or 1d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_time(text: str, option: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"{option} {text!r}: not an ISO time (e.g. 2026-11-26T14:00 or 2026-11-26T14:00:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@dataclass
class Stretch:
    seconds: float
    start: float
    end: float
    source: str
    face_id: int


@dataclass
class Track:
    """One tracked face while it is being read."""
    source: str
    face_id: int
    start: float
    last: float
    frame: int
    counts: list[int]
    run_label: int
    run_start: float


@dataclass
class Report:
    labels: tuple[str, ...]
    every: float
    gap_s: float
    files: list[Path]
    rows: int = 0
    malformed: int = 0
    out_of_range: int = 0
    outliers: int = 0
    outlier_times: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    frames: int = 0
    first: float | None = None
    last: float | None = None
    totals: list[int] = field(default_factory=list)
    periods: dict[int, list[int]] = field(default_factory=dict)     # period -> counts per label + [frames]
    gaps: list[tuple[float, float]] = field(default_factory=list)
    gap_count: int = 0
    faces: int = 0
    top_faces: list = field(default_factory=list)                   # heap of (seconds, n, Track)
    longest: dict[int, Stretch] = field(default_factory=dict)

    # ---- reading ----------------------------------------------------------------------------------
    def _stretch(self, t: Track, end: float) -> None:
        dur = end - t.run_start
        best = self.longest.get(t.run_label)
        if best is None or dur > best.seconds:
            self.longest[t.run_label] = Stretch(dur, t.run_start, end, t.source, t.face_id)

    def _close(self, t: Track) -> None:
        self._stretch(t, t.last)
        self.faces += 1
        item = (t.last - t.start, self.faces, t)
        if len(self.top_faces) < TOP_FACES:
            heapq.heappush(self.top_faces, item)
        elif item[0] > self.top_faces[0][0]:
            heapq.heapreplace(self.top_faces, item)

    def _rows(self, index: dict[str, int], width: int):
        """(timestamp, frame, face_id, label, source) of each good row of every file; malformed rows,
        outliers and damaged files are counted and named here."""
        csv.field_size_limit(LINE_LIMIT)
        for path in self.files:
            try:
                with open_text(path) as fh:
                    reader = csv.reader(bounded_lines(fh))
                    header = next(reader, None)
                    if header is None:
                        continue                                  # empty file (just rotated)
                    if tuple(header) != BASE_COLUMNS + tuple(f"prob_{x}" for x in self.labels):
                        raise ReportError(f"{path}: its columns differ from {self.files[0]}'s (another model's "
                                          "labels?): report it on its own")
                    while True:
                        try:
                            row = next(reader)
                        except StopIteration:
                            break
                        except csv.Error:                         # a torn line, a NUL, a field over the limit
                            self.malformed += 1
                            continue
                        try:
                            yield (*parse_row(row, width, index), row[2])
                        except Outlier as exc:
                            self.outliers += 1
                            if len(self.outlier_times) < 3:
                                self.outlier_times.append(str(exc))
                        except ValueError:
                            self.malformed += 1
            except READ_ERRORS as exc:                            # read up to the damage, then the next file
                self.damaged.append(f"{path.name}: {reason(exc)}")

    def read(self, t_from: datetime | None, t_to: datetime | None) -> None:
        lo = t_from.timestamp() if t_from else float("-inf")
        hi = t_to.timestamp() if t_to else float("inf")
        n_labels = len(self.labels)
        index = {name: i for i, name in enumerate(self.labels)}
        self.totals = [0] * n_labels
        tracks: dict[tuple[str, int], Track] = {}
        prev_key = None
        prev_ts = None
        width = len(BASE_COLUMNS) + n_labels
        for ts, frame, face_id, label, source in self._rows(index, width):
            if not lo <= ts <= hi:
                self.out_of_range += 1
                continue
            self.rows += 1
            self.totals[label] += 1
            if self.first is None or ts < self.first:
                self.first = ts
            if self.last is None or ts > self.last:
                self.last = ts
            period = int(ts // self.every)
            counts = self.periods.get(period)
            if counts is None:
                counts = self.periods[period] = [0] * (n_labels + 1)
            counts[label] += 1
            key = (ts, frame, source)
            if key != prev_key:                           # the rows of one frame are written together
                prev_key = key
                counts[n_labels] += 1
                self.frames += 1
                if prev_ts is not None and ts - prev_ts > self.gap_s:
                    self.gap_count += 1
                    if len(self.gaps) < MAX_GAPS_LISTED:
                        self.gaps.append((prev_ts, ts))
                    for k in list(tracks):                # nothing survives a gap
                        self._close(tracks.pop(k))
                prev_ts = ts
                if self.frames % 4096 == 0:               # faces that left: close them (bounded memory)
                    for k in [k for k, t in tracks.items() if ts - t.last > FACE_GAP_S]:
                        self._close(tracks.pop(k))
            tk = (source, face_id)
            t = tracks.get(tk)
            if t is not None and (ts - t.last > FACE_GAP_S or frame < t.frame or ts < t.last):
                self._close(tracks.pop(tk))               # gone for a while, or a new run of the edge
                t = None
            if t is None:
                t = tracks[tk] = Track(source, face_id, ts, ts, frame, [0] * n_labels, label, ts)
            elif label != t.run_label:
                self._stretch(t, ts)
                t.run_label, t.run_start = label, ts
            t.counts[label] += 1
            t.last, t.frame = ts, frame
        for t in tracks.values():
            self._close(t)

    # ---- writing ----------------------------------------------------------------------------------
    def shares(self) -> list[tuple[str, int, float]]:
        return sorted(((name, n, 100.0 * n / self.rows) for name, n in zip(self.labels, self.totals)),
                      key=lambda x: -x[1])

    def summary_md(self, log: Path) -> str:
        assert self.first is not None and self.last is not None     # a report has rows
        t0 = datetime.fromtimestamp(self.first, timezone.utc)
        t1 = datetime.fromtimestamp(self.last, timezone.utc)
        out = [f"# Emotion report: {md_cell(log.name)}", "",
               f"Written by fer-edge {__version__} from {md_cell(', '.join(p.name for p in self.files))}. Times are UTC.", "",
               "| | |", "|---|---|",
               f"| time range | {iso(t0)} to {iso(t1)} ({fmt_dur(self.last - self.first)}) |",
               f"| rows (one per face per frame) | {self.rows:,} |",
               f"| frames with faces | {self.frames:,} |",
               f"| tracked faces | {self.faces:,} (a face id seen with pauses under {FACE_GAP_S:g} s) |",
               f"| malformed rows skipped | {self.malformed:,} |"]
        if self.out_of_range:
            out.append(f"| rows outside --from/--to | {self.out_of_range:,} |")
        if self.outliers:
            out.append(f"| rows with an impossible time skipped (a clock not yet set?) | {self.outliers:,} "
                       f"(e.g. {md_cell(', '.join(self.outlier_times))}) |")
        if self.damaged:
            out.append(f"| damaged files, read up to the damage | {md_cell('; '.join(self.damaged))} |")
        out += ["", "## Emotion shares", "", "| emotion | rows | share |", "|---|---|---|"]
        out += [f"| {name} | {n:,} | {pct:.1f}% |" for name, n, pct in self.shares()]
        out += ["", f"## Per period ({fmt_dur(self.every)})", "",
                "| period (start) | rows | faces per frame | dominant | its share |", "|---|---|---|---|---|"]
        keys = sorted(self.periods)
        for p in keys[:MAX_PERIOD_ROWS]:
            c = self.periods[p]
            n = sum(c[:-1])
            top = max(range(len(self.labels)), key=lambda i: c[i])
            out.append(f"| {iso(datetime.fromtimestamp(p * self.every, timezone.utc))} | {n:,} | {n / c[-1]:.2f} "
                       f"| {self.labels[top]} | {100.0 * c[top] / n:.0f}% |")
        if len(keys) > MAX_PERIOD_ROWS:
            out.append(f"\n{len(keys) - MAX_PERIOD_ROWS} more periods with rows are in timeline.png "
                       f"(pass a longer --every for a shorter table).")
        out += ["", "## Longest stretches", "",
                "The longest time one tracked face kept each emotion.", "",
                "| emotion | for | from | to | source | face |", "|---|---|---|---|---|---|"]
        for i in sorted(self.longest, key=lambda i: -self.longest[i].seconds):
            s = self.longest[i]
            out.append(f"| {self.labels[i]} | {fmt_dur(s.seconds)} | {iso(datetime.fromtimestamp(s.start, timezone.utc))} "
                       f"| {iso(datetime.fromtimestamp(s.end, timezone.utc))} "
                       f"| {md_cell(Path(s.source).name or s.source)} | {s.face_id} |")
        out += ["", "## Gaps", "",
                f"Stretches of more than {fmt_dur(self.gap_s)} without a row: the device was off, or nobody was in view.", ""]
        if self.gap_count:
            out += ["| from | to | length |", "|---|---|---|"]
            out += [f"| {iso(datetime.fromtimestamp(a, timezone.utc))} | {iso(datetime.fromtimestamp(b, timezone.utc))} "
                    f"| {fmt_dur(b - a)} |" for a, b in self.gaps]
            if self.gap_count > len(self.gaps):
                out.append(f"\nand {self.gap_count - len(self.gaps)} more.")
        else:
            out.append("None.")
        return "\n".join(out) + "\n"


def make_report(log: Path, out: Path, every: float = 60.0, t_from: datetime | None = None,
                t_to: datetime | None = None, gap_s: float | None = None, charts: bool = True) -> Report:
    files = log_files(log)
    labels, unreadable = None, None
    for f in files:                      # the first readable file with a header names the labels (empty: skipped)
        if f.stat().st_size:
            try:
                labels = labels_of(f)
                break
            except Unreadable as exc:    # a damaged rotated file: named in the report, the others still read
                unreadable = unreadable or exc
    if labels is None:
        raise unreadable or ReportError(f"{log}: empty: the edge has not logged a face yet")
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out}: exists and is not a folder: pass a folder for summary.md and the charts")
    rep = Report(labels, every, gap_s if gap_s is not None else max(2 * every, 60.0), files)
    rep.read(t_from, t_to)
    if not rep.rows:
        where = " between --from and --to" if (t_from or t_to) else ""
        raise ReportError(f"{log}: no readable rows{where} ({rep.malformed} malformed, {rep.outliers} with an impossible "
                          f"time, {rep.out_of_range} outside the range)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.md").write_text(rep.summary_md(log))
        if charts:
            from fer_edge.edge.reportplot import plot_faces, plot_timeline
            plot_timeline(rep, out / "timeline.png")
            plot_faces(rep, out / "faces.png")
    except OSError as exc:
        raise ReportError(f"--out {out}: cannot write there ({exc.strerror or exc}): pass a writable folder") from None
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_edge.edge.report", description=summary(__doc__))
    ap.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    ap.add_argument("log", type=Path, help="the CSV emotion log (its rotated files LOG.1, LOG.2, ... are read too)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: LOG's name + '-report' beside it)")
    ap.add_argument("--from", dest="t_from", default=None, help="first time to include, ISO (UTC unless it says)")
    ap.add_argument("--to", dest="t_to", default=None, help="last time to include, ISO")
    ap.add_argument("--every", default="1min", help="period of the timeline and the table: 10s, 1min, 5min, 1h, 1d")
    ap.add_argument("--gap", default=None, help="no rows for longer than this is a gap (default: 2 periods, at least 1min)")
    args = ap.parse_args(argv)
    try:
        every = parse_every(args.every)
        gap = parse_every(args.gap) if args.gap else None
        t_from = parse_time(args.t_from, "--from") if args.t_from else None
        t_to = parse_time(args.t_to, "--to") if args.t_to else None
        out = args.out or args.log.with_name(args.log.name.removesuffix(".csv") + "-report")
        charts = importlib.util.find_spec("matplotlib") is not None
        if not charts:
            print("note: matplotlib is not installed: writing summary.md only (pip install matplotlib for the charts)",
                  file=sys.stderr)
        rep = make_report(args.log, out, every, t_from, t_to, gap, charts)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    assert rep.first is not None and rep.last is not None
    top = ", ".join(f"{name} {pct:.1f}%" for name, _, pct in rep.shares()[:3])
    print(f"{rep.rows:,} rows, {rep.faces:,} faces, {fmt_dur(rep.last - rep.first)} ({top}); "
          f"{rep.malformed:,} malformed skipped" + (f", {rep.outliers:,} with an impossible time" if rep.outliers else "")
          + (f", damaged: {'; '.join(rep.damaged)}" if rep.damaged else "") + f" -> {out}/"
          + ("{summary.md,timeline.png,faces.png}" if charts else "summary.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
