"""The program's diagnostics: every module logs to ``logging.getLogger(__name__)``, and one handler on
the ``fer_edge`` logger writes each record as one line on stderr.

- On a terminal the level is a word before the text (``error: ...``, ``warning: ...``, ``note: ...``),
  and while a progress bar is shown the line goes above it (``route_lines``).
- Under systemd, when stderr is the journal (``$JOURNAL_STREAM``), each line also starts with its
  syslog priority (``<3>``, ``<4>``...), which journald strips and keeps as the entry's priority
  (``journalctl -p warning``); journald adds the timestamps, so the lines stay plain.
- The level is INFO (notes and above); ``set_level`` changes it (``--verbose``, ``--quiet``).

Deliberate output (a start line, an end-of-run summary) goes through ``write_line``: the same stream,
above the bar, without a level.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable

ROOT = "fer_edge"
WORDS = {logging.DEBUG: "debug", logging.INFO: "note", logging.WARNING: "warning", logging.ERROR: "error",
         logging.CRITICAL: "error"}
PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

_writer: Callable[[str], None] | None = None      # set while a progress bar is on the terminal


def write_line(text: str) -> None:
    """One line to stderr (resolved now, so a redirected sys.stderr gets it), above a progress bar."""
    if _writer is not None:
        _writer(text)
    else:
        print(text, file=sys.stderr, flush=True)


def route_lines(writer: Callable[[str], None] | None) -> None:
    """Send every line through ``writer`` (a progress bar's own write), or back to stderr with None."""
    global _writer
    _writer = writer


def to_journal() -> bool:
    """True when stderr is systemd's journal stream ($JOURNAL_STREAM names its device and inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def _level(levelno: int) -> int:
    return max((k for k in WORDS if k <= levelno), default=logging.DEBUG)


class LineHandler(logging.Handler):
    """A record as ``<word>: <message>``, one line per line of the message; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.journal = to_journal()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = _level(record.levelno)
            prefix = (f"<{PRIORITIES[level]}>" if self.journal else "") + f"{WORDS[level]}: "
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            for line in text.splitlines() or [""]:
                write_line(prefix + line)
        except Exception:
            self.handleError(record)


def install() -> None:
    """The one handler on the ``fer_edge`` logger, level INFO (idempotent)."""
    logger = logging.getLogger(ROOT)
    if not any(isinstance(h, LineHandler) for h in logger.handlers):
        logger.addHandler(LineHandler())
        logger.setLevel(logging.INFO)


def set_level(verbose: bool = False, quiet: bool = False) -> None:
    """DEBUG with ``verbose``, WARNING with ``quiet`` (errors and warnings only), else INFO."""
    install()
    logging.getLogger(ROOT).setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
