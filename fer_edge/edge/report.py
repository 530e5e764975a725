"""The emotion report of a CSV log: ``python -m fer_edge.edge.report LOG [--out DIR] [--from ISO] [--to ISO]
[--every 1min]`` (also ``fer-report`` and ``make report LOG=...``).

Reads the log and its rotated files (``LOG.N`` ... ``LOG.1``, gzipped or not, oldest first) as a
stream, in memory bounded by the number of periods (not by the rows), and writes:

- ``timeline.png``: the share of each emotion per period (stacked), and the faces in view per frame;
  periods without rows are left blank, so the gaps show as gaps;
- ``faces.png``: the longest-seen tracked faces, how long each was seen and its emotion mix;
- ``summary.md``: time range, rows, faces, emotion shares, the dominant emotion per period, the
  longest stretch of each emotion, and the gaps.

Rows that do not parse are skipped and counted; a file that is not an emotion log is refused.
Exit codes: 0 written, 2 bad input (not a log, no rows in the range, bad option).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import heapq
import importlib.util
import io
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from fer_edge import __version__
from fer_edge.common.helptext import summary
from fer_edge.edge.csvlog import BASE_COLUMNS

FACE_GAP_S = 2.0        # a face_id unseen this long, or a new run of the edge, starts another tracked face
TOP_FACES = 20          # faces drawn in faces.png
MAX_PERIOD_ROWS = 200   # periods listed in summary.md (all of them are in the chart)
MAX_GAPS_LISTED = 50
FIELD_LIMIT = 1 << 16   # longest CSV field accepted (a torn or foreign file must not need unbounded memory)


class ReportError(ValueError):
    """Bad input: the message names the file or option and what to do."""


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


def log_files(log: Path) -> list[Path]:
    """The log's rotated files, oldest first, then the log itself."""
    rotated = []
    for p in log.parent.glob(log.name + ".*"):
        m = re.fullmatch(re.escape(log.name) + r"\.(\d+)(\.gz)?", p.name)
        if m and p.is_file():
            rotated.append((int(m.group(1)), p))
    files = [p for _, p in sorted(rotated, reverse=True)]
    if log.is_file():
        files.append(log)
    if not files:
        raise ReportError(f"{log}: no such log (and no rotated {log.name}.1, ...): pass the CSV that "
                          "fer-edge writes (edge.log, e.g. logs/emotions.csv or /var/lib/fer-edge/emotions.csv)")
    return files


def _open(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="") if path.suffix == ".gz" else \
        open(path, encoding="utf-8", errors="replace", newline="")
    return raw


def _fmt_dur(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


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
        csv.field_size_limit(FIELD_LIMIT)
        for path in self.files:
            with _open(path) as fh:
                reader = csv.reader(fh)
                try:
                    header = next(reader)
                except (StopIteration, csv.Error):
                    continue                                      # empty file (just rotated)
                if tuple(header) != BASE_COLUMNS + tuple(f"prob_{x}" for x in self.labels):
                    raise ReportError(f"{path}: its columns differ from {self.files[0]}'s (another model's labels?): "
                                      "report it on its own")
                while True:
                    try:
                        row = next(reader)
                    except StopIteration:
                        break
                    except csv.Error:                             # a torn line, a NUL, a field over the limit
                        self.malformed += 1
                        continue
                    if len(row) != width:
                        self.malformed += 1
                        continue
                    try:
                        ts = datetime.fromisoformat(row[0]).timestamp()
                        frame, face_id = int(row[1]), int(row[3])
                        label = index[row[8]]
                    except (ValueError, KeyError):
                        self.malformed += 1
                        continue
                    if not lo <= ts <= hi:
                        self.out_of_range += 1
                        continue
                    source = row[2]
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
                    key = (row[0], frame, source)
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
        out = [f"# Emotion report: {log.name}", "",
               f"Written by fer-edge {__version__} from {', '.join(p.name for p in self.files)}. Times are UTC.", "",
               "| | |", "|---|---|",
               f"| time range | {_iso(t0)} to {_iso(t1)} ({_fmt_dur(self.last - self.first)}) |",
               f"| rows (one per face per frame) | {self.rows:,} |",
               f"| frames with faces | {self.frames:,} |",
               f"| tracked faces | {self.faces:,} (a face id seen with pauses under {FACE_GAP_S:g} s) |",
               f"| malformed rows skipped | {self.malformed:,} |"]
        if self.out_of_range:
            out.append(f"| rows outside --from/--to | {self.out_of_range:,} |")
        out += ["", "## Emotion shares", "", "| emotion | rows | share |", "|---|---|---|"]
        out += [f"| {name} | {n:,} | {pct:.1f}% |" for name, n, pct in self.shares()]
        out += ["", f"## Per period ({_fmt_dur(self.every)})", "",
                "| period (start) | rows | faces per frame | dominant | its share |", "|---|---|---|---|---|"]
        keys = sorted(self.periods)
        for p in keys[:MAX_PERIOD_ROWS]:
            c = self.periods[p]
            n = sum(c[:-1])
            top = max(range(len(self.labels)), key=lambda i: c[i])
            out.append(f"| {_iso(datetime.fromtimestamp(p * self.every, timezone.utc))} | {n:,} | {n / c[-1]:.2f} "
                       f"| {self.labels[top]} | {100.0 * c[top] / n:.0f}% |")
        if len(keys) > MAX_PERIOD_ROWS:
            out.append(f"\n{len(keys) - MAX_PERIOD_ROWS} more periods with rows are in timeline.png "
                       f"(pass a longer --every for a shorter table).")
        out += ["", "## Longest stretches", "",
                "The longest time one tracked face kept each emotion.", "",
                "| emotion | for | from | to | source | face |", "|---|---|---|---|---|---|"]
        for i in sorted(self.longest, key=lambda i: -self.longest[i].seconds):
            s = self.longest[i]
            out.append(f"| {self.labels[i]} | {_fmt_dur(s.seconds)} | {_iso(datetime.fromtimestamp(s.start, timezone.utc))} "
                       f"| {_iso(datetime.fromtimestamp(s.end, timezone.utc))} | {Path(s.source).name or s.source} | {s.face_id} |")
        out += ["", "## Gaps", "",
                f"Stretches of more than {_fmt_dur(self.gap_s)} without a row: the device was off, or nobody was in view.", ""]
        if self.gap_count:
            out += ["| from | to | length |", "|---|---|---|"]
            out += [f"| {_iso(datetime.fromtimestamp(a, timezone.utc))} | {_iso(datetime.fromtimestamp(b, timezone.utc))} "
                    f"| {_fmt_dur(b - a)} |" for a, b in self.gaps]
            if self.gap_count > len(self.gaps):
                out.append(f"\nand {self.gap_count - len(self.gaps)} more.")
        else:
            out.append("None.")
        return "\n".join(out) + "\n"

    def plot_timeline(self, path: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
        import numpy as np

        keys = sorted(self.periods)
        lo, hi = keys[0], keys[-1]
        n = hi - lo + 1
        if n > 20000:                                             # keep the chart drawable: coarser periods
            raise ReportError(f"--every {_fmt_dur(self.every)} gives {n:,} periods over this log: pass a longer --every")
        shares = np.full((len(self.labels), n), np.nan)
        faces = np.full(n, np.nan)
        for p, c in self.periods.items():
            total = sum(c[:-1])
            shares[:, p - lo] = np.array(c[:-1]) / total * 100.0
            faces[p - lo] = total / c[-1]
        # one point per period start and end, so each period is a flat step and empty ones stay blank
        starts = [datetime.fromtimestamp((lo + i) * self.every, timezone.utc) for i in range(n + 1)]
        xs = [t for i in range(n) for t in (starts[i], starts[i + 1])]
        fig, (ax, axf) = plt.subplots(2, 1, figsize=(11, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        colors = plt.get_cmap("tab10").colors          # type: ignore[attr-defined]  # a ListedColormap
        bottom = np.zeros(2 * n)
        for i, name in enumerate(self.labels):
            ys = np.repeat(shares[i], 2)
            ax.fill_between(xs, bottom, bottom + ys, step=None, color=colors[i % 10], label=name, linewidth=0,
                            where=~np.isnan(ys))
            bottom = bottom + np.nan_to_num(ys)
        ax.set_ylim(0, 100)
        ax.set_ylabel("share of face rows (%)")
        ax.set_title(f"Emotions per {_fmt_dur(self.every)}: {self.rows:,} rows, {self.faces:,} tracked faces")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        axf.plot(xs, np.repeat(faces, 2), color="0.25")
        axf.set_ylabel("faces per frame")
        axf.set_ylim(0, max(1.0, float(np.nanmax(faces)) * 1.15))
        for a, b in self.gaps:
            for axis in (ax, axf):
                axis.axvspan(datetime.fromtimestamp(a, timezone.utc), datetime.fromtimestamp(b, timezone.utc),
                             color="0.92", zorder=0)
        axf.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
        axf.set_xlabel("time (UTC); grey: no rows (device off or nobody in view)")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    def plot_faces(self, path: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        faces = [t for _, _, t in sorted(self.top_faces, key=lambda x: (-x[0], x[1]))]
        fig, ax = plt.subplots(figsize=(11, 0.9 + 0.38 * max(len(faces), 1)))
        colors = plt.get_cmap("tab10").colors          # type: ignore[attr-defined]  # a ListedColormap
        names = []
        for row, t in enumerate(faces):
            seen = max(t.last - t.start, 0.0)
            total = sum(t.counts)
            left = 0.0
            for i, n in enumerate(t.counts):
                w = seen * n / total if seen > 0 else n / total
                if n:
                    ax.barh(row, w, left=left, color=colors[i % 10], label=self.labels[i] if row == 0 or i not in
                            {j for f in faces[:row] for j, m in enumerate(f.counts) if m} else None)
                left += w
            names.append(f"{Path(t.source).name or t.source} #{t.face_id}, "
                         f"{datetime.fromtimestamp(t.start, timezone.utc):%m-%d %H:%M:%S}")
        ax.set_yticks(range(len(faces)), names)
        ax.invert_yaxis()
        ax.set_xlabel("seconds seen (bar split by the share of each emotion)")
        ax.set_title(f"The {len(faces)} longest-seen of {self.faces:,} tracked faces")
        handles, labels = ax.get_legend_handles_labels()
        order = sorted(range(len(labels)), key=lambda k: self.labels.index(labels[k]))
        ax.legend([handles[k] for k in order], [labels[k] for k in order], loc="upper left",
                  bbox_to_anchor=(1.0, 1.0), frameon=False)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def labels_of(path: Path) -> tuple[str, ...]:
    """The emotion labels of a log, from its header; ReportError when it is not an emotion log."""
    try:
        with _open(path) as fh:
            first = fh.readline(FIELD_LIMIT)
    except OSError as exc:
        raise ReportError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    cols = next(csv.reader([first]), [])
    probs = cols[len(BASE_COLUMNS):]
    if tuple(cols[:len(BASE_COLUMNS)]) != BASE_COLUMNS or not probs or not all(c.startswith("prob_") for c in probs):
        raise ReportError(f"{path}: not an emotion log (its first line is not fer-edge's CSV header "
                          f"{','.join(BASE_COLUMNS[:4])},...,prob_<emotion>): pass the CSV that fer-edge writes")
    return tuple(c[5:] for c in probs)


def make_report(log: Path, out: Path, every: float = 60.0, t_from: datetime | None = None,
                t_to: datetime | None = None, gap_s: float | None = None, charts: bool = True) -> Report:
    files = log_files(log)
    labels = None
    for f in files:                      # the first file with a header names the labels (an empty one is skipped)
        if f.stat().st_size:
            labels = labels_of(f)
            break
    if labels is None:
        raise ReportError(f"{log}: empty: the edge has not logged a face yet")
    rep = Report(labels, every, gap_s if gap_s is not None else max(2 * every, 60.0), files)
    rep.read(t_from, t_to)
    if not rep.rows:
        where = " between --from and --to" if (t_from or t_to) else ""
        raise ReportError(f"{log}: no readable rows{where} ({rep.malformed} malformed, {rep.out_of_range} outside the range)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(rep.summary_md(log))
    if charts:
        rep.plot_timeline(out / "timeline.png")
        rep.plot_faces(out / "faces.png")
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
    print(f"{rep.rows:,} rows, {rep.faces:,} faces, {_fmt_dur(rep.last - rep.first)} ({top}); "
          f"{rep.malformed:,} malformed skipped -> {out}/" + ("{summary.md,timeline.png,faces.png}" if charts else "summary.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
