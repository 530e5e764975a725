"""What the edge says to its user besides its log records: the start line and the summary
(``say``), and a progress bar on a terminal for sources of known length, which every line
(``say`` and log records alike, see common/logs.py) is written above."""
from __future__ import annotations

import os
import sys
import time
from typing import Any

from fer_edge.common.logs import route_lines, write_line

_bar: Any = None             # the progress bar while one is shown


def say(text: str) -> None:
    """One line of deliberate output to stderr, above the progress bar when there is one."""
    write_line(text)


def has_display() -> bool:
    """True when a window can be opened (an X11 or Wayland display is set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _above_bar(text: str) -> None:
    _bar.write(text, file=sys.stderr)


class Progress:
    """A bar for a source of ``length`` frames, on a terminal only (not under systemd, in CI or in a
    pipe), refreshed at most 4 times a second; a no-op otherwise."""

    def __init__(self, length: int | None, quiet: bool):
        global _bar
        self._faces_at = 0.0
        if quiet or not length or not sys.stderr.isatty():
            return
        from tqdm import tqdm
        _bar = tqdm(total=length, unit="frame", mininterval=0.25, dynamic_ncols=True, leave=False,
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix}")
        route_lines(_above_bar)

    def advance(self, faces: int | None = None) -> None:
        """One frame more; ``faces`` (the total so far) shown beside the bar."""
        if _bar is None:
            return
        _bar.update(1)
        now = time.monotonic()
        if faces is not None and now - self._faces_at >= 0.5:     # the postfix redraws the bar: twice a second at most
            self._faces_at = now
            _bar.set_postfix_str(f"{faces} faces", refresh=False)

    def close(self) -> None:
        global _bar
        if _bar is not None:
            route_lines(None)
            _bar.close()
            _bar = None
