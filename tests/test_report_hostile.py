"""The report on hostile logs (issue 37): a gzip bomb, a truncated or foreign .gz, an --out that is a
file, impossible dates, source names that are Markdown or HTML. Each ends in exit 0 with the bad part
counted and named, or exit 2 with one line; never a traceback, never unbounded memory."""
from __future__ import annotations

import gzip
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.edge_support import ROOT, edge_env

LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
HEADER = ("timestamp,frame,source,face_id,x,y,w,h,emotion,confidence," + ",".join(f"prob_{x}" for x in LABELS) + "\n")
START = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)


def rows(n: int, source: str = "camera 0", start: datetime = START) -> str:
    out = []
    for i in range(n):
        t = (start + timedelta(seconds=i * 0.5)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        src = '"' + source.replace('"', '""') + '"'
        out.append(f"{t},{i},{src},1,10,10,50,50,{LABELS[i // 20 % 7]},0.9," + ",".join(["0.1"] * 7) + "\n")
    return "".join(out)


def report(*args) -> tuple[subprocess.CompletedProcess, float]:
    """The report CLI in a child; (its result, its peak memory in MB)."""
    # VmHWM is this process's own peak: ru_maxrss keeps the parent's size at fork across exec (a big pytest)
    code = ("import sys\nfrom fer_edge.tools.report.cli import main\nrc = main(sys.argv[1:])\n"
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0].split()[1]\n"
            "print(f'peak_mb={int(hwm) / 1024:.0f}', file=sys.stderr)\n"
            "sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=edge_env(), capture_output=True,
                       text=True, timeout=300)
    peak = float(r.stderr.rsplit("peak_mb=", 1)[1].split()[0])
    r.stderr = r.stderr.rsplit("peak_mb=", 1)[0]
    return r, peak


def test_a_gzip_bomb_line_is_one_malformed_row_in_bounded_memory(tmp_path):
    log = tmp_path / "emotions.csv"
    log.write_text(HEADER + rows(100, start=START + timedelta(hours=1)))
    with gzip.open(tmp_path / "emotions.csv.1.gz", "wb", compresslevel=1) as fh:
        fh.write((HEADER + rows(100)).encode())
        block = b"x" * (1 << 20)
        for _ in range(400):                                   # one 400 MB line, 400 KB on disk
            fh.write(block)
        fh.write(b"\n" + rows(10, start=START + timedelta(minutes=1)).encode())
    r, peak = report(log, "--out", tmp_path / "out", "--every", "10min")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    md = (tmp_path / "out/summary.md").read_text()
    assert "| rows (one per face per frame) | 210 |" in md and "| malformed rows skipped | 1 |" in md
    assert peak < 250, f"{peak:.0f} MB: the long line was held in memory"


def test_damaged_rotated_files_are_named_and_the_rest_reported(tmp_path):
    log = tmp_path / "emotions.csv"
    log.write_text(HEADER + rows(50, start=START + timedelta(hours=2)))
    whole = gzip.compress((HEADER + rows(2000)).encode())
    (tmp_path / "emotions.csv.1.gz").write_bytes(whole[: len(whole) // 2])        # cut by a power failure
    (tmp_path / "emotions.csv.2.gz").write_text(HEADER + rows(30, start=START - timedelta(hours=1)))   # not gzip
    r, _ = report(log, "--out", tmp_path / "out", "--every", "1h")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "emotions.csv.1.gz: cut short" in r.stdout and "emotions.csv.2.gz: not gzip" in r.stdout, r.stdout
    md = (tmp_path / "out/summary.md").read_text()
    assert "damaged files" in md and "emotions.csv.1.gz" in md and "emotions.csv.2.gz" in md


def test_impossible_dates_are_counted_not_charted(tmp_path):
    log = tmp_path / "emotions.csv"
    body = rows(100).splitlines(keepends=True)
    odd = rows(1, start=datetime(1970, 1, 1, 0, 0, 5, tzinfo=timezone.utc))        # a clock not yet set
    far = rows(1).replace(rows(1)[:24], "9999-12-31T23:59:00-12:00", 1)             # year 10000 in UTC
    log.write_text(HEADER + "".join(body[:50]) + odd + far + "".join(body[50:]))
    r, _ = report(log, "--out", tmp_path / "out", "--every", "1s")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "2 with an impossible time" in r.stdout, r.stdout
    md = (tmp_path / "out/summary.md").read_text()
    assert "| rows (one per face per frame) | 100 |" in md and "(a clock not yet set?) | 2 (e.g. 1970-01-01" in md
    assert "2026-11-26 08:00:00 to 2026-11-26 08:00:49" in md


def test_an_out_that_is_a_file_exits_2_in_one_line(tmp_path):
    log = tmp_path / "emotions.csv"
    log.write_text(HEADER + rows(10))
    (tmp_path / "taken").write_text("mine")
    r, _ = report(log, "--out", tmp_path / "taken")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "--out" in lines[0] and "not a folder" in lines[0], r.stderr
    assert (tmp_path / "taken").read_text() == "mine"


def test_source_names_cannot_break_the_summary_table(tmp_path):
    log = tmp_path / "emotions.csv"
    log.write_text(HEADER + rows(40, source="hall|cam <img src=x onerror=alert(1)>"))
    r, _ = report(log, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "out/summary.md").read_text()
    assert "<img" not in md and "hall\\|cam &lt;img src=x onerror=alert(1)&gt;" in md
    stretches = md.split("## Longest stretches")[1].split("##")[0]
    assert all(line.count("|") - line.count("\\|") == 7 for line in stretches.splitlines() if line.startswith("| "))
