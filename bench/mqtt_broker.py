"""A real MQTT broker for the MQTT benchmark and tests: Debian's mosquitto as a plain process on a free
loopback port, and a subscriber that records what it sees."""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto as a plain process; ``extra`` lines go into its listener config."""

    def __init__(self, tmp: Path, extra: str = ""):
        self.port, self.tmp, self.extra = free_port(), tmp, extra
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        conf = self.tmp / f"mosquitto-{self.port}.conf"
        # user: mosquitto started as root would switch to its own user, which cannot read the test files
        conf.write_text(f"listener {self.port} 127.0.0.1\npersistence false\nlog_dest stderr\nuser {getpass.getuser()}\n"
                        + (self.extra or "allow_anonymous true\n"))
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.tmp / "mosquitto.log", "a"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {(self.tmp / 'mosquitto.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Listener:
    """A subscriber to '#' that records (time, topic, payload, retained)."""

    def __init__(self, port: int, **login):
        self.msgs: list[tuple[float, str, str, bool]] = []
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2)
        if login:
            self.c.username_pw_set(login["username"], login["password"])
        subscribed = threading.Event()
        self.c.on_message = self._on
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe("#", qos=1)
        self.c.on_subscribe = lambda c, u, mid, codes, p: subscribed.set()
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        if not subscribed.wait(20):              # nothing published from here on can be missed
            self.close()
            raise RuntimeError(f"the test subscriber could not subscribe on port {port}")

    def _on(self, client, userdata, m) -> None:
        with self.lock:
            self.msgs.append((time.monotonic(), m.topic, m.payload.decode(), bool(m.retain)))

    def on(self, topic: str) -> list[str]:
        with self.lock:
            return [p for _, t, p, _ in self.msgs if t == topic]

    def wait(self, topic: str, payload: str | None = None, timeout: float = 60) -> float:
        """Time (monotonic) the first message on ``topic`` (with ``payload``) arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for t0, t, p, _ in self.msgs:
                    if t == topic and (payload is None or p == payload):
                        return t0
            time.sleep(0.02)
        raise AssertionError(f"nothing on {topic} ({payload}) within {timeout} s; got {sorted({t for _, t, _, _ in self.msgs})}")

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()
