"""Reading an emotion log for the report, trusting nothing in it: the files of a log (rotated,
gzipped or not), lines read with a length cap (a gzip bomb of one 1 GiB line costs 64 KB, and is one
malformed row), each row parsed on its own, and rows dated before 2000 or after tomorrow (a Pi's
clock before it synced, a typo'd year) set aside as outliers instead of stretching the charts.
"""
from __future__ import annotations

import csv
import gzip
import io
import re
import time
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from fer_edge.edge.csvlog import BASE_COLUMNS, BASE_COLUMNS_NO_MEDIA

LINE_LIMIT = 1 << 16            # longest line or CSV field accepted
PLAUSIBLE_FROM = 946684800.0    # 2000-01-01 UTC: an earlier row is a clock that was not set
FUTURE_SLACK_S = 86400.0        # a row dated after tomorrow is not from this log's clock either
READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeError, csv.Error)   # a damaged or foreign file


class ReportError(ValueError):
    """Bad input: the message names the file or option and what to do."""


class Unreadable(ReportError):
    """A file of the log cannot be read at all (damaged, not gzip though named .gz, no permission)."""


def log_files(log: Path) -> list[Path]:
    """The log's rotated files, oldest first, then the log itself."""
    rotated = []
    for p in log.parent.glob(log.name + ".*"):
        m = re.fullmatch(re.escape(log.name) + r"\.(\d{1,6})(\.gz)?", p.name)
        if m and p.is_file():
            rotated.append((int(m.group(1)), p))
    files = [p for _, p in sorted(rotated, reverse=True)]
    if log.is_file():
        files.append(log)
    if not files:
        raise ReportError(f"{log}: no such log (and no rotated {log.name}.1, ...): pass the CSV that "
                          "fer-edge writes (edge.log, e.g. logs/emotions.csv or /var/lib/fer-edge/emotions.csv)")
    return files


def open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def bounded_lines(fh: io.TextIOBase, limit: int = LINE_LIMIT) -> Iterator[str]:
    """The lines of ``fh``, each read with at most ``limit`` characters in memory; a longer line is
    skipped to its end and yields an empty line (a malformed row for the CSV reader)."""
    while True:
        line = fh.readline(limit)
        if not line:
            return
        if len(line) >= limit and not line.endswith("\n"):
            while (rest := fh.readline(limit)) and not rest.endswith("\n"):
                pass
            line = "\x00overlong\n"
        yield line


def reason(exc: BaseException) -> str:
    """What went wrong reading a file, in words."""
    if isinstance(exc, EOFError):
        return "cut short (a truncated gzip, as after a power cut)"
    if isinstance(exc, gzip.BadGzipFile):
        return "not gzip data though named .gz"
    if isinstance(exc, zlib.error):
        return "damaged gzip data"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text[:120]


def header_layout(cols: list[str]) -> tuple[tuple[str, ...], bool] | None:
    """(labels, whether it has the media_s column) of a log's header; None when it is not fer-edge's."""
    for base, media in ((BASE_COLUMNS, True), (BASE_COLUMNS_NO_MEDIA, False)):
        probs = cols[len(base):]
        if tuple(cols[:len(base)]) == base and probs and all(c.startswith("prob_") for c in probs):
            return tuple(c[5:] for c in probs), media
    return None


def labels_of(path: Path) -> tuple[str, ...]:
    """The emotion labels of a log, from its header; ReportError when it is not an emotion log."""
    try:
        with open_text(path) as fh:
            first = fh.readline(LINE_LIMIT)
    except READ_ERRORS as exc:
        raise Unreadable(f"{path}: cannot be read: {reason(exc)}") from None
    layout = header_layout(next(csv.reader([first]), []))
    if layout is None:
        raise ReportError(f"{path}: not an emotion log (its first line is not fer-edge's CSV header "
                          f"{','.join(BASE_COLUMNS[:4])},...,prob_<emotion>): pass the CSV that fer-edge writes")
    return layout[0]


class Outlier(ValueError):
    """A row that parses but whose time cannot be this log's (before 2000, after tomorrow)."""


MEDIA_COLUMN = BASE_COLUMNS.index("media_s")


def parse_row(row: list[str], width: int, index: dict[str, int],
              media: bool = True) -> tuple[float, int, int, int, float | None]:
    """(timestamp, frame, face_id, label index, media time or None) of one CSV row of a log with or
    without the media_s column; ValueError when malformed, Outlier when its time is implausible."""
    if len(row) != width:
        raise ValueError("columns")
    try:
        t = datetime.fromisoformat(row[0])
        label = index[row[8]]
    except (KeyError, OverflowError) as exc:
        raise ValueError(str(exc)) from None
    media_s = float(row[MEDIA_COLUMN]) if media and row[MEDIA_COLUMN] else None
    if media_s is not None and not 0 <= media_s < 1e9:          # nan, inf, negative: not a position in a file
        raise ValueError("media_s")
    try:
        ts = (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()
    except (OverflowError, ValueError):                   # year 9999 at -12:00 is year 10000 in UTC
        raise Outlier(row[0][:40]) from None
    if not PLAUSIBLE_FROM <= ts <= time.time() + FUTURE_SLACK_S:
        raise Outlier(row[0][:40])
    return ts, int(row[1]), int(row[3]), label, media_s


def fmt_dur(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def plural(n: int, word: str) -> str:
    """1 tracked face, 2 tracked faces (``word`` in the plural, ending in s)."""
    return f"{n:,} {word[:-1] if n == 1 else word}"


def md_cell(text: str) -> str:
    """``text`` safe in a Markdown table cell: ``|`` escaped, HTML shown as text, one line, 200 characters."""
    text = " ".join(str(text).split())[:200]
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|"))
