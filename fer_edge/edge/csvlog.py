"""The CSV emotion log: one row per face per frame, safe against crashes, full disks and logrotate.

- Append mode; each frame's rows go out in ONE os.write on an O_APPEND descriptor, so a kill -9
  leaves whole rows (the kernel finishes a write it has started). A partial last line that a
  crash or a full disk did leave is cut off (truncated to the last newline) before writing again.
- The header is written once. A file whose header differs (a model with other labels) is moved
  aside to ``<log>.header-<UTC stamp>`` instead of getting rows of another shape appended.
- Size rotation (``<log>.1`` .. ``<log>.<keep>``), every new file starts with the header.
- Write errors: policy "exit" raises CsvLogError; "retry" says so once on stderr, counts the rows
  it could not write as lost and tries again at most once per ``retry_interval_s``.
"""
from __future__ import annotations

import csv
import errno
import io
import logging
import os
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from fer_edge.common.config import CsvConfig
from fer_edge.edge.sinks import SinkError
from fer_edge.edge.types import FrameResult

log = logging.getLogger(__name__)

BASE_COLUMNS = ("timestamp", "frame", "source", "face_id", "x", "y", "w", "h", "emotion", "confidence")


class CsvLogError(OSError, SinkError):
    """The log cannot be written (and the policy says stop, or it is the start of the run)."""


def iso_utc(ts: datetime) -> str:
    """2026-11-21T20:15:03.123Z (UTC, milliseconds)."""
    ts = ts.astimezone(timezone.utc) if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def header_for(labels: tuple[str, ...]) -> list[str]:
    """The column names for a model with these labels, in the contract's order."""
    return [*BASE_COLUMNS, *(f"prob_{name}" for name in labels)]


def _line(fields: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()


def repair_tail(path: Path) -> int:
    """Truncate a regular file after its last newline; returns the bytes removed."""
    if not path.is_file():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        pos, chunk = size, 4096
        while pos > 0:
            start = max(0, pos - chunk)
            fh.seek(start)
            data = fh.read(pos - start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        if keep < size:
            fh.truncate(keep)
        return size - keep


class CsvLog:
    """Appends FrameResults to a CSV file; see the module docstring for the guarantees. A sink."""

    name = "csv"

    def __init__(self, path: str | Path, labels: tuple[str, ...], fsync: str = "interval",
                 fsync_interval_s: float = 5.0, rotate_mb: float = 50.0, keep: int = 5,
                 min_interval_s: float = 0.0, on_error: str = "retry", retry_interval_s: float = 1.0):
        self.path = Path(path)
        self.labels = tuple(labels)
        self.header = _line(header_for(self.labels)).encode()
        self.fsync, self.fsync_interval_s = fsync, float(fsync_interval_s)
        self.rotate_bytes = int(float(rotate_mb) * 1_000_000)
        self.keep = int(keep)
        self.min_interval_s = float(min_interval_s)
        self.on_error = on_error
        self.retry_interval_s = float(retry_interval_s)
        self.rows = 0            # rows written
        self.lost_rows = 0       # rows dropped because the log could not be written
        self.errors = 0          # failed write attempts
        self.first_row_time: float | None = None
        self.label_counts: Counter[str] = Counter()   # the emotion column of the rows written
        self._fd: int | None = None
        self._size = 0
        self._last_fsync = time.monotonic()
        self._failing_since: float | None = None
        self._last_attempt = 0.0
        self._last_row: dict[int, float] = {}     # face id -> when its last row was written (min_interval_s)
        self._prune_at = 256

    @classmethod
    def from_config(cls, path: str | Path, labels: tuple[str, ...], csv_cfg: CsvConfig) -> "CsvLog":
        """From the ``edge.csv`` section."""
        return cls(path, labels, fsync=csv_cfg.fsync, fsync_interval_s=csv_cfg.fsync_interval_s,
                   rotate_mb=csv_cfg.rotate_mb, keep=csv_cfg.keep,
                   min_interval_s=csv_cfg.min_interval_s, on_error=csv_cfg.on_error)

    # ---- opening ---------------------------------------------------------------------------
    def open(self) -> "CsvLog":
        """Open (creating, repairing or moving aside as needed). Raises CsvLogError naming the path."""
        try:
            self._open()
        except OSError as exc:
            raise CsvLogError(f"cannot write the CSV log {self.path}: {exc.strerror or exc}. "
                              "Pass a writable --log PATH (or set edge.log in config.yaml).") from exc
        return self

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        regular = self.path.is_file()
        if not regular and (self.path.exists() or self.path.is_symlink()):   # stat only: opening a FIFO blocks
            raise OSError(errno.EINVAL, "not a regular file (a pipe, a terminal, a device or a broken link): the log "
                          "is appended, rotated and repaired in place; give a file and follow it with `tail -f`")
        if regular:
            cut = repair_tail(self.path)
            if cut:
                log.info(f"{self.path}: removed a partial last line ({cut} bytes) left by an interrupted write")
            if self.path.stat().st_size > 0:
                with open(self.path, "rb") as fh:
                    first = fh.readline()
                if first != self.header:
                    aside = self.path.with_name(f"{self.path.name}.header-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}")
                    os.replace(self.path, aside)
                    log.info(f"{self.path} has other columns (another model's labels); moved it to {aside}")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        if self._size == 0:
            self._write_all(self.header)

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            self._size += n
            view = view[n:]

    def close(self) -> None:
        """Flush to disk and close (safe to call twice)."""
        if self._fd is not None:
            try:
                if self.fsync != "never":
                    os.fsync(self._fd)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def reopen(self) -> None:
        """Close and open the path again (SIGHUP after logrotate moved the file)."""
        self.close()
        try:
            self._open()
            self._failing_since = None
        except OSError as exc:
            self._fail(exc, 0)

    def counters(self) -> dict[str, int]:
        return {"csv_rows": self.rows, "csv_lost_rows": self.lost_rows, "csv_errors": self.errors}

    # ---- writing ---------------------------------------------------------------------------
    def _rows(self, result: FrameResult) -> list[tuple[str, str]]:
        """(CSV line, emotion) for each face of a result that is due a row (after the per-face
        minimum interval)."""
        now = time.monotonic()
        ts = iso_utc(result.frame.timestamp)
        lines = []
        for f in result.faces:
            if self.min_interval_s > 0:
                last = self._last_row.get(f.face_id)
                if last is not None and now - last < self.min_interval_s:
                    continue
                self._last_row[f.face_id] = now
            b = f.box
            lines.append((_line([ts, result.frame.index, result.frame.source, f.face_id, b.x, b.y, b.w, b.h,
                                 f.label, f"{f.confidence:.4f}", *(f"{float(p):.4f}" for p in f.probs)]), f.label))
        if len(self._last_row) > self._prune_at:        # faces gone for min_interval_s no longer matter
            self._last_row = {k: t for k, t in self._last_row.items() if now - t < self.min_interval_s}
            self._prune_at = max(256, 2 * len(self._last_row))
        return lines

    def write(self, result: FrameResult) -> int:
        """Append the rows of one frame; returns how many were written (0 when lost or none)."""
        rows = self._rows(result)
        if not rows:
            return 0
        lines = [line for line, _ in rows]
        now = time.monotonic()
        if self._failing_since is not None or self._fd is None:
            if now - self._last_attempt < self.retry_interval_s:
                self.lost_rows += len(lines)
                return 0
            self._last_attempt = now
            try:
                self.close()
                self._open()
            except OSError as exc:
                self._fail(exc, len(lines))
                return 0
        assert self._fd is not None
        try:
            if os.fstat(self._fd).st_size < self._size:     # truncated under us (logrotate copytruncate)
                self._size = 0
                self._write_all(self.header)
        except OSError:
            pass
        start = self._size
        try:
            try:
                self._write_all("".join(lines).encode())
            except OSError:
                self._cut_back(start)         # a full disk took part of the rows: no partial line stays
                raise
            if self.fsync == "always" or (self.fsync == "interval" and now - self._last_fsync >= self.fsync_interval_s):
                os.fsync(self._fd)
                self._last_fsync = now
        except OSError as exc:
            self._last_attempt = now
            self._fail(exc, len(lines))
            return 0
        if self._failing_since is not None:
            log.info(f"CSV log {self.path} is writable again; {self.lost_rows} rows were lost meanwhile")
            self._failing_since = None
        if self.first_row_time is None:
            self.first_row_time = time.time()
        self.rows += len(lines)
        self.label_counts.update(label for _, label in rows)
        if self.rotate_bytes and self._size >= self.rotate_bytes:
            self._rotate()
        return len(lines)

    def _cut_back(self, size: int) -> None:
        """Truncate the file to ``size`` bytes (the end of the last whole row); shrinking works on a full disk."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, size)
            self._size = size
        except OSError:
            pass                              # the next start repairs the tail (repair_tail)

    def _fail(self, exc: OSError, n_rows: int) -> None:
        self.errors += 1
        self.lost_rows += n_rows
        msg = f"cannot write the CSV log {self.path}: {exc.strerror or exc}"
        if self.on_error == "exit":
            raise CsvLogError(f"{msg} (edge.csv.on_error=exit). Free disk space or fix the path, then restart.") from exc
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.error(f"{msg}; retrying every {self.retry_interval_s:g} s, rows meanwhile are counted as lost "
                      "(edge.csv.on_error=retry)")

    def _rotate(self) -> None:
        """<log> -> <log>.1 -> ... -> <log>.<keep>; the oldest is deleted. The new file gets the header."""
        self.close()
        try:
            if self.keep > 0:
                for i in range(self.keep - 1, 0, -1):
                    src = self.path.with_name(f"{self.path.name}.{i}")
                    if src.exists():
                        os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
                os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
            else:
                os.unlink(self.path)
            self._open()
        except OSError as exc:
            self._fail(exc, 0)
