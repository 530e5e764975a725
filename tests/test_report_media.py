"""The time of a video (issue 39): a log of a video file carries each frame's position in it (media_s),
and the report of such a log runs on that time; the report's period chosen from the log's span; --tz;
old logs without media_s. franck.mp4 is 200 s long: 4,800 frames at 24 fps.

FER_SAVE_SCREENSHOTS=1 writes the README's report pictures (docs/img/report_*.png) from franck's log."""
from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import pytest

from fer_edge.tools.report.clock import MAX_BARS, choose_period
from tests.edge_support import ROOT, edge_env, read_log, run_edge
from tests.test_report_hostile import HEADER, LABELS

SAVE = os.environ.get("FER_SAVE_SCREENSHOTS") == "1"
FRANCK = "franck.mp4"
START = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)


def report(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fer_edge.tools.report", *map(str, args)], cwd=ROOT,
                          env=edge_env(**env), capture_output=True, text=True, timeout=300)


def seconds(text: str) -> float:
    """The seconds of the report's durations: 4.7 s, 29 s, 3 min 20 s."""
    m = re.fullmatch(r"(?:(\d+) min )?([\d.]+) s", text.strip())
    assert m, text
    return 60 * int(m.group(1) or 0) + float(m.group(2))


def wall_log(path: Path, n: int, step_s: float) -> Path:
    """A log in the format before media_s: ``n`` rows ``step_s`` apart from START, cycling the emotions."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for i in range(n):
        t = START + timedelta(seconds=i * step_s)
        w.writerow([t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z", i, "camera 0", 1, 10, 10,
                    50, 50, LABELS[i // 20 % 7], "0.9", *["0.1"] * 7])
    path.write_text(HEADER + out.getvalue())
    return path


@pytest.fixture(scope="module")
def franck_log(media_dir, tmp_path_factory) -> Path:
    if not (media_dir / FRANCK).is_file():
        pytest.skip(f"{media_dir / FRANCK} is missing")
    log = tmp_path_factory.mktemp("franck") / "franck.csv"
    r = run_edge("--headless", "--source", str(media_dir / FRANCK), "--log", str(log), timeout=900)
    assert r.returncode == 0, r.stderr
    return log


def test_media_time_is_the_frames_position_in_the_file(franck_log, media_dir):
    cap = cv2.VideoCapture(str(media_dir / FRANCK))
    fps, count = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
    cap.release()
    assert (fps, count) == (24.0, 4800.0)
    header, rows = read_log(franck_log)
    m, f = header.index("media_s"), header.index("frame")
    assert len(rows) > 4000                                        # the face is found in nearly every frame
    for row in rows:
        assert abs(float(row[m]) - int(row[f]) / fps) < 0.0005, row[:3] + row[m:m + 1]
    assert float(rows[-1][m]) == pytest.approx(4799 / 24, abs=0.001)
    # the timestamp stays the wall clock: the run took another time than the video lasts
    wall = [datetime.fromisoformat(r[0].replace("Z", "+00:00")) for r in (rows[0], rows[-1])]
    assert abs((wall[1] - wall[0]).total_seconds() - 200) > 1


def test_the_report_of_a_video_runs_on_the_video_time(franck_log, tmp_path):
    out = tmp_path / "out"
    r = report(franck_log, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "1 face," in r.stdout and "1 faces" not in r.stdout
    assert "times: the position in the video franck.mp4" in r.stdout, r.stdout
    assert "period 1 s (from the span; --every sets it)" in r.stdout, r.stdout
    md = (out / "summary.md").read_text()
    assert md.endswith("|\n") or md.endswith(".\n")                 # one final newline, no blank line
    assert "Times are the position in the video franck.mp4" in md
    assert re.search(r"^\| time range \| 0:00:00\.0 to 0:03:20\.0 \(3 min 20 s\) \|$", md, re.M), md[:800]
    periods = re.findall(r"^\| 0:\d\d:\d\d\.\d \| \d+ \|", md.split("## Per period (1 s)")[1], re.M)
    assert len(periods) == 200                                     # 1-s bars over 200 s
    # the longest happy stretch is on the video's time: tens of seconds (the processing time made it 4.7 s)
    happy = re.search(r"^\| happy \| ([^|]+) \| (0:\d\d:\d\d\.\d) \| (0:\d\d:\d\d\.\d) \|", md, re.M)
    assert happy and seconds(happy.group(1)) > 15, md.split("## Longest stretches")[1][:600]
    # faces.png: the legend of the one face's emotions is drawn whole
    img = cv2.imread(str(out / "faces.png"))
    from fer_edge.common.palette import color_bgr
    right = img[:, int(img.shape[1] * 0.8):].reshape(-1, 3)
    for name in ("happy", "neutral"):
        assert (right == color_bgr(name)).all(axis=1).sum() >= 30, name
    if SAVE:
        for name in ("timeline.png", "faces.png"):
            shutil.copy(out / name, ROOT / "docs" / "img" / f"report_{name}")


def test_min_interval_thins_a_video_on_its_time(media_dir, tmp_path):
    if not (media_dir / FRANCK).is_file():
        pytest.skip(f"{media_dir / FRANCK} is missing")
    log = tmp_path / "thin.csv"
    r = run_edge("--headless", "--source", str(media_dir / FRANCK), "--log", str(log), "--max-frames", "1200",
                 "--set", "edge.csv.min_interval_s=5")
    assert r.returncode == 0, r.stderr
    header, rows = read_log(log)
    m, fid = header.index("media_s"), header.index("face_id")
    by_face: dict[str, list[float]] = {}
    for row in rows:
        by_face.setdefault(row[fid], []).append(float(row[m]))
    for times in by_face.values():
        assert all(b - a >= 5 - 1e-6 for a, b in zip(times, times[1:])), times
    # 50 s of video: about one row per 5 s (on the wall clock the run takes a few seconds: 1 or 2 rows)
    assert 9 <= len(rows) <= 12, [row[m] for row in rows]


def test_a_log_without_media_s_still_reads(franck_log, tmp_path):
    header, rows = read_log(franck_log)
    m = header.index("media_s")
    drop = lambda r: r[:m] + r[m + 1:]  # noqa: E731
    old = tmp_path / "emotions.csv.1"                              # written by a version before media_s
    with open(old, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([drop(header), *map(drop, rows[:2000])])
    new = tmp_path / "emotions.csv"
    with open(new, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([header, *rows[2000:]])
    r = report(new, "--out", tmp_path / "out", "--tz", "UTC")
    assert r.returncode == 0, r.stderr
    assert "times: the wall clock, UTC (some rows have no media time" in r.stdout, r.stdout
    md = (tmp_path / "out/summary.md").read_text()
    assert f"| rows (one per face per frame) | {len(rows):,} |" in md and "| malformed rows skipped | 0 |" in md
    old.rename(tmp_path / "alone.csv")                             # and an old log on its own
    r = report(tmp_path / "alone.csv", "--out", tmp_path / "alone", "--tz", "UTC")
    assert r.returncode == 0 and "times: the wall clock, UTC;" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("span_s, period", [(50, "1 s"), (600, "5 s"), (8 * 3600, "5 min"), (3 * 86400, "30 min")])
def test_the_period_follows_the_span(tmp_path, span_s, period):
    log = wall_log(tmp_path / "emotions.csv", 401, span_s / 400)
    r = report(log, "--out", tmp_path / "out", "--tz", "UTC")
    assert r.returncode == 0, r.stderr
    assert f"; period {period} (from the span; --every sets it)" in r.stdout, r.stdout
    md = (tmp_path / "out/summary.md").read_text()
    bars = re.findall(r"^\| 2026-\S+ \S+ \| \d+ \|", md.split(f"## Per period ({period})")[1], re.M)
    assert 50 <= len(bars) <= MAX_BARS, len(bars)
    r = report(log, "--out", tmp_path / "given", "--tz", "UTC", "--every", "1h")
    assert r.returncode == 0 and "; period 1 h\n" in r.stdout, r.stdout


def test_the_chosen_period_gives_60_to_200_bars_from_minutes_to_years():
    span = 120.0
    while span < 5 * 365 * 86400:
        first = 1_764_000_000.0 + 0.37 * span                      # not aligned to any period
        p = choose_period(first, first + span)
        bars = int((first + span) // p) - int(first // p) + 1
        assert 60 <= bars <= 200, (span, p, bars)
        span *= 1.3


def test_times_are_written_in_the_zone_asked_for(tmp_path):
    log = wall_log(tmp_path / "emotions.csv", 100, 0.5)              # 2026-11-26 08:00:00 UTC on
    cases = [((), {"TZ": "America/New_York"}, "2026-11-26 03:00:00", "America/New_York"),    # the machine's zone
             (("--tz", "Europe/Berlin"), {}, "2026-11-26 09:00:00", "Europe/Berlin"),
             (("--tz", "UTC"), {}, "2026-11-26 08:00:00", "UTC")]
    for args, env, first, zone in cases:
        r = report(log, "--out", tmp_path / zone.replace("/", "_"), *args, **env)
        assert r.returncode == 0, r.stderr
        assert f"times: the wall clock, {zone};" in r.stdout, r.stdout
        md = (tmp_path / zone.replace("/", "_") / "summary.md").read_text()
        assert f"Times are the wall clock, {zone}." in md and f"| time range | {first} to " in md, md[:600]
    # --from without a zone is in --tz: 09:00:10 in Berlin is 08:00:10 UTC, the 21st row on
    r = report(log, "--out", tmp_path / "from", "--tz", "Europe/Berlin", "--from", "2026-11-26T09:00:10")
    assert r.returncode == 0, r.stderr
    assert "| rows (one per face per frame) | 80 |" in (tmp_path / "from/summary.md").read_text()
    r = report(log, "--out", tmp_path / "bad", "--tz", "Mars/Olympus_Mons")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "--tz" in lines[0] and "Mars/Olympus_Mons" in lines[0], r.stderr
