"""Time in the report: the clock its times are on (the position in a video, or the wall clock in a
time zone), how it writes them, and the period of the timeline when ``--every`` is not given."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fer_edge.tools.report.rows import ReportError

# Periods the report picks from, in seconds: 1 s ... 30 d.
ROUND_PERIODS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
                 86400, 172800, 259200, 604800, 1209600, 2592000)
MAX_BARS = 200          # the chosen period gives at most this many bars (and, being round, usually over 60)


def _zone_key() -> str:
    """The machine's zone name (TZ, the /etc/localtime link, /etc/timezone), or ''."""
    key = os.environ.get("TZ", "").lstrip(":")
    if key:
        return key
    try:
        link = os.readlink("/etc/localtime")
        if "zoneinfo/" in link:
            return link.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    try:
        return Path("/etc/timezone").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def resolve_tz(text: str) -> tuple[tzinfo, str]:
    """(zone, its name) for ``--tz``: ``local`` (the machine's zone), ``UTC`` or an IANA name such as
    Europe/Berlin; ReportError for a name the system does not know."""
    if text.upper() == "UTC":
        return timezone.utc, "UTC"
    if text == "local":
        key = _zone_key()
        try:
            return ZoneInfo(key), key
        except (ZoneInfoNotFoundError, ValueError):
            now = datetime.now().astimezone()
            return now.tzinfo or timezone.utc, now.tzname() or "local"
    try:
        return ZoneInfo(text), text
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(f"--tz {text[:80]!r}: not a time zone this system knows: give local, UTC or a name "
                          "such as Europe/Berlin") from None


def choose_period(first: float, last: float) -> float:
    """The shortest round period that draws the span from ``first`` to ``last`` in at most MAX_BARS bars."""
    for p in ROUND_PERIODS:
        if math.floor(last / p) - math.floor(first / p) + 1 <= MAX_BARS:
            return float(p)
    return float(ROUND_PERIODS[-1])


def fmt_period(s: float) -> str:
    """1 s, 15 s, 2 min, 1 h, 7 d; a period that is not a whole number of units in seconds."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size and s % size == 0:
            return f"{int(s // size)} {unit}"
    return f"{s:g} s"


def fmt_media(s: float) -> str:
    """A position in a video: 0:02:29.0 (h:mm:ss.s)."""
    tenths = int(round(s * 10))
    h, rest = divmod(tenths, 36000)
    m, rest = divmod(rest, 600)
    return f"{h}:{m:02d}:{rest // 10:02d}.{rest % 10}"


@dataclass(frozen=True)
class Clock:
    """The clock of a report's times: ``media`` (seconds into the video ``video``) or ``wall`` (unix
    time, written in ``tz``)."""
    kind: str
    tz: tzinfo
    tz_name: str
    video: str = ""

    @property
    def media(self) -> bool:
        return self.kind == "media"

    def when(self, t: float) -> str:
        """2026-11-26 14:03:07, or 0:02:29.0 into the video."""
        return fmt_media(t) if self.media else datetime.fromtimestamp(t, self.tz).strftime("%Y-%m-%d %H:%M:%S")

    def short(self, t: float) -> str:
        return fmt_media(t) if self.media else datetime.fromtimestamp(t, self.tz).strftime("%m-%d %H:%M:%S")

    def axis(self, t: float) -> float | datetime:
        """The value a chart puts on its time axis."""
        return t if self.media else datetime.fromtimestamp(t, self.tz)

    def describe(self) -> str:
        if self.media:
            return f"the position in the video {self.video} (media_s, h:mm:ss)"
        return f"the wall clock, {self.tz_name}"
