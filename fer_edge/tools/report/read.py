"""The report's reading of a log: one pass for its span and clock (``scan``), one for the counts
(``Report.read``), both streaming, in memory bounded by the number of periods (not by the rows)."""
from __future__ import annotations

import csv
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from fer_edge.edge.csvlog import BASE_COLUMNS, BASE_COLUMNS_NO_MEDIA
from fer_edge.tools.report.clock import Clock
from fer_edge.tools.report.rows import (
    LINE_LIMIT,
    READ_ERRORS,
    Outlier,
    ReportError,
    bounded_lines,
    header_layout,
    open_text,
    parse_row,
    reason,
)

FACE_GAP_S = 2.0        # a face_id unseen this long, or a new run of the edge, starts another tracked face
TOP_FACES = 20          # faces drawn in faces.png
MAX_GAPS_LISTED = 50

Row = tuple[float, int, int, int, float | None, str]     # timestamp, frame, face_id, label, media_s, source


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
    clock: Clock = field(default_factory=lambda: Clock("wall", timezone.utc, "UTC"))
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
    _prev_key: tuple | None = None
    _prev_t: float | None = None

    # ---- the rows of the files ----------------------------------------------------------------
    def _file_rows(self, path: Path, index: dict[str, int]) -> Iterator[Row]:
        with open_text(path) as fh:
            reader = csv.reader(bounded_lines(fh))
            header = next(reader, None)
            if header is None:
                return                                        # empty file (just rotated)
            layout = header_layout(header)
            if layout is None or layout[0] != self.labels:
                raise ReportError(f"{path}: its columns differ from {self.files[0]}'s (another model's "
                                  "labels?): report it on its own")
            media = layout[1]
            width = len(BASE_COLUMNS if media else BASE_COLUMNS_NO_MEDIA) + len(self.labels)
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error:                             # a torn line, a NUL, a field over the limit
                    self.malformed += 1
                    continue
                try:
                    yield (*parse_row(row, width, index, media), row[2])
                except Outlier as exc:
                    self.outliers += 1
                    if len(self.outlier_times) < 3:
                        self.outlier_times.append(str(exc))
                except ValueError:
                    self.malformed += 1

    def rows_of_files(self) -> Iterator[Row]:
        """(timestamp, frame, face_id, label, media_s, source) of each good row of every file, oldest
        first; malformed rows, outliers and damaged files are counted and named here."""
        csv.field_size_limit(LINE_LIMIT)
        index = {name: i for i, name in enumerate(self.labels)}
        for path in self.files:
            try:
                yield from self._file_rows(path, index)
            except READ_ERRORS as exc:                        # read up to the damage, then the next file
                self.damaged.append(f"{path.name}: {reason(exc)}")

    # ---- counting ----------------------------------------------------------------------------
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

    def _count(self, t: float, label: int) -> list[int]:
        """Count one row at time ``t``; returns its period's counts."""
        self.rows += 1
        self.totals[label] += 1
        if self.first is None or t < self.first:
            self.first = t
        if self.last is None or t > self.last:
            self.last = t
        period = int(t // self.every)
        counts = self.periods.get(period)
        if counts is None:
            counts = self.periods[period] = [0] * (len(self.labels) + 1)
        counts[label] += 1
        return counts

    def _new_frame(self, t: float, frame: int, source: str, tracks: dict[tuple[str, int], Track]) -> bool:
        """True for the first row of a frame (the rows of one frame are written together); a gap
        before it closes every track."""
        key = (t, frame, source)
        if key == self._prev_key:
            return False
        self._prev_key = key
        self.frames += 1
        if self._prev_t is not None and t - self._prev_t > self.gap_s:
            self.gap_count += 1
            if len(self.gaps) < MAX_GAPS_LISTED:
                self.gaps.append((self._prev_t, t))
            for k in list(tracks):                            # nothing survives a gap
                self._close(tracks.pop(k))
        self._prev_t = t
        if self.frames % 4096 == 0:                           # faces that left: close them (bounded memory)
            for k in [k for k, tr in tracks.items() if t - tr.last > FACE_GAP_S]:
                self._close(tracks.pop(k))
        return True

    def _track(self, t: float, frame: int, face_id: int, label: int, source: str,
               tracks: dict[tuple[str, int], Track]) -> None:
        tk = (source, face_id)
        tr = tracks.get(tk)
        if tr is not None and (t - tr.last > FACE_GAP_S or frame < tr.frame or t < tr.last):
            self._close(tracks.pop(tk))                       # gone for a while, or a new run of the edge
            tr = None
        if tr is None:
            tr = tracks[tk] = Track(source, face_id, t, t, frame, [0] * len(self.labels), label, t)
        elif label != tr.run_label:
            self._stretch(tr, t)
            tr.run_label, tr.run_start = label, t
        tr.counts[label] += 1
        tr.last, tr.frame = t, frame

    def read(self, t_from: datetime | None, t_to: datetime | None) -> None:
        """Count the rows whose wall-clock time is within ``t_from``..``t_to``, on this report's clock."""
        lo = t_from.timestamp() if t_from else float("-inf")
        hi = t_to.timestamp() if t_to else float("inf")
        self.totals = [0] * len(self.labels)
        tracks: dict[tuple[str, int], Track] = {}
        for ts, frame, face_id, label, media_s, source in self.rows_of_files():
            if not lo <= ts <= hi:
                self.out_of_range += 1
                continue
            t = media_s if self.clock.media else ts
            if t is None:                                     # a row without media time in a video's report
                self.malformed += 1
                continue
            counts = self._count(t, label)
            if self._new_frame(t, frame, source, tracks):
                counts[len(self.labels)] += 1
            self._track(t, frame, face_id, label, source, tracks)
        for tr in tracks.values():
            self._close(tr)

    def shares(self) -> list[tuple[str, int, float]]:
        return sorted(((name, n, 100.0 * n / self.rows) for name, n in zip(self.labels, self.totals)),
                      key=lambda x: -x[1])


@dataclass
class Span:
    """What the first pass learns: the wall-clock span of the rows in range and whether they come
    from one pass over one video file (each row with a media time, never going back)."""
    rows: int = 0
    first: float | None = None
    last: float | None = None
    media_first: float | None = None
    media_last: float | None = None
    all_media: bool = True
    ordered: bool = True
    sources: set[str] = field(default_factory=set)

    def add(self, ts: float, media_s: float | None, source: str) -> None:
        self.rows += 1
        self.first = ts if self.first is None else min(self.first, ts)
        self.last = ts if self.last is None else max(self.last, ts)
        if len(self.sources) < 2:
            self.sources.add(source)
        if media_s is None:
            self.all_media = False
            return
        if self.media_last is not None and media_s < self.media_last:
            self.ordered = False
        self.media_first = media_s if self.media_first is None else min(self.media_first, media_s)
        self.media_last = media_s if self.media_last is None else max(self.media_last, media_s)

    @property
    def one_video(self) -> bool:
        return self.rows > 0 and self.all_media and self.ordered and len(self.sources) == 1

    def why_not_media(self) -> str:
        """Why a log with media times is reported on the wall clock ('' when it has none or is one video)."""
        if self.one_video or self.media_first is None:
            return ""
        if len(self.sources) > 1:
            return "the log holds more than one source"
        if not self.all_media:
            return "some rows have no media time: a camera, a stream, or a log from before media_s"
        return "the video was read more than once (a loop, or two runs)"


def scan(labels: tuple[str, ...], files: list[Path], t_from: datetime | None, t_to: datetime | None) -> Span:
    """The first pass over the log: its span and whether it is one video file."""
    lo = t_from.timestamp() if t_from else float("-inf")
    hi = t_to.timestamp() if t_to else float("inf")
    span = Span()
    for ts, _, _, _, media_s, source in Report(labels, 1.0, 1.0, files).rows_of_files():
        if lo <= ts <= hi:
            span.add(ts, media_s, source)
    return span
