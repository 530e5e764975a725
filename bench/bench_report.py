"""The log report and the web view's emotion history.

1. ``python -m fer_edge.tools.report`` on a 1,000,000-row log: the rows of a real log (the edge on
   ../shared/media/cap13_edit2.mp4, looped) repeated with their timestamps shifted, one row every 0.1 s
   (about 28 hours, with a 10-minute pause every 3 hours), as three files (the log and two rotated ones).
   Wall time and the report process's own peak RSS (ru_maxrss of the process itself).
2. The history ring's cost to the loop: ``python -m fer_edge.edge --web`` on the same looped clip
   (640x480) pinned to CPU 0, ``web.history_minutes`` 360 against 0, alternated three times each in
   the same run; frames/s over the loop (start-up excluded).
"""
from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.bench_edge import CLIP, _env, _run, _upscale

TITLE = "Log report (1 million rows) and the web view's history ring"
ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "media" / "cap13_edit2.mp4"
ROWS, TARGET_S, TARGET_MB = 1_000_000, 30.0, 300.0
FRAMES, ROUNDS = 3000, 3

MEASURE = r"""
import resource, runpy, sys, time
sys.argv = ["report", *sys.argv[1:]]
t0 = time.perf_counter()
try:
    runpy.run_module("fer_edge.tools.report", run_name="__main__")
except SystemExit as e:
    code = e.code
print("BENCH", code, time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
"""


def _big_log(tmp: Path) -> Path:
    seed = tmp / "seed.csv"
    subprocess.run([sys.executable, "-m", "fer_edge.edge", "--headless", "--loop", "--source", str(SOURCE),
                    "--max-frames", "2000", "--log", str(seed), "--quiet"], cwd=ROOT, env=_env(), check=True,
                   capture_output=True)
    with open(seed, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    log = tmp / "emotions.csv"
    parts = [log.with_name("emotions.csv.2"), log.with_name("emotions.csv.1"), log]   # oldest first
    t = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
    per = ROWS // len(parts) + 1
    n = 0
    for part in parts:
        with open(part, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            for _ in range(per):
                if n == ROWS:
                    break
                row = list(body[n % len(body)])
                row[0] = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
                row[1] = str(n)
                w.writerow(row)
                n += 1
                t += timedelta(seconds=0.1)
                if n % 108_000 == 0:
                    t += timedelta(minutes=10)
    return log


def _loop_fps(clip: Path, tmp: Path, history: int, tag: str) -> float:
    stats = tmp / f"{tag}.json"
    cmd = [sys.executable, "-m", "fer_edge.edge", "--headless", "--loop", "--web", "--source", str(clip),
           "--log", str(tmp / f"{tag}.csv"), "--max-frames", str(FRAMES), "--stats-json", str(stats),
           "--set", "web.port=18766", "--set", f"web.history_minutes={history}"]
    code, _, _, _, err, _ = _run(cmd)
    if code != 0:
        raise RuntimeError(f"edge exited {code}: {err[-2000:]}")
    s = json.loads(stats.read_text())
    return s["frames"] / (s["ended_unix"] - s["started_unix"])


def run() -> str:
    if not SOURCE.is_file() or not CLIP.is_file():
        return f"Not measured: {SOURCE} or {CLIP} is missing (../shared is only on developer/CI machines).\n"
    with tempfile.TemporaryDirectory(prefix="bench_report_") as d:
        tmp = Path(d)
        log = _big_log(tmp)
        size_mb = sum(p.stat().st_size for p in tmp.glob("emotions.csv*")) / 1e6
        r = subprocess.run([sys.executable, "-c", MEASURE, str(log), "--out", str(tmp / "out"), "--every", "1h", "--gap", "5min"],
                           cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
        line = [x for x in r.stderr.splitlines() if x.startswith("BENCH ")]
        if not line or line[0].split()[1] not in ("0", "None"):
            raise RuntimeError(f"report failed: {r.stderr[-2000:]}")
        _, _, secs, rss = line[0].split()
        secs, rss = float(secs), float(rss)
        written = sorted(p.name for p in (tmp / "out").iterdir())
        summary = (tmp / "out" / "summary.md").read_text()
        if f"| rows (one per face per frame) | {ROWS:,} |" not in summary:
            raise RuntimeError(f"the report did not count {ROWS:,} rows: {summary[:1500]}")
        clip = tmp / "cap12_640x480.mp4"
        _upscale(CLIP, clip)
        on, off = [], []
        for i in range(ROUNDS):
            off.append(_loop_fps(clip, tmp, 0, f"off{i}"))
            on.append(_loop_fps(clip, tmp, 360, f"on{i}"))
    m_on, m_off = statistics.median(on), statistics.median(off)
    slow = 100.0 * (m_off - m_on) / m_off
    yes = lambda ok: "yes" if ok else "**NO**"  # noqa: E731
    return "\n".join([
        f"Report of {ROWS:,} rows ({size_mb:.0f} MB in 3 files, about 28 h at one row per 0.1 s with a 10-minute "
        f"pause every 3 h), `--every 1h --gap 5min`: **{secs:.1f} s** ({yes(secs <= TARGET_S)}, target <= {TARGET_S:.0f} s), "
        f"peak RSS **{rss:.0f} MB** ({yes(rss <= TARGET_MB)}, target <= {TARGET_MB:.0f} MB); wrote {', '.join(written)}; "
        f"all {ROWS:,} rows counted, gaps found: {summary.split('## Gaps')[1].count(chr(10) + '| 2026')} (9 made).",
        "",
        f"History ring, `--web` on the looped clip at 640x480, {FRAMES} frames per run, {ROUNDS} runs each, alternated:",
        "",
        "| web.history_minutes | runs frames/s | median |",
        "|---|---|---|",
        f"| 0 (off) | {', '.join(f'{x:.0f}' for x in off)} | {m_off:.0f} |",
        f"| 360 | {', '.join(f'{x:.0f}' for x in on)} | {m_on:.0f} |",
        "",
        f"Difference: **{slow:+.1f}%** (the spread between runs of one setting: "
        f"{100 * (max(off) - min(off)) / m_off:.1f}%).",
    ]) + "\n"
