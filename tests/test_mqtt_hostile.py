"""MQTT against hostile or broken peers (issue 37), with real sockets and a real mosquitto: a broker
that never answers the handshake, one that drops every connection after a second, two devices with one
name, a password file MQTT cannot carry. Each is said in words, once or at a bounded rate."""
from __future__ import annotations

import logging
import socket
import threading
import time

import cv2
import numpy as np
import pytest

from tests.edge_support import run_edge

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (requirements-edge.txt)")

from bench.mqtt_broker import MOSQUITTO, Broker, free_port  # noqa: E402

LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


class Lines(logging.Handler):
    """The messages the MQTT reporter logs while attached."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(autouse=True)
def _detach_lines():
    yield
    logger = logging.getLogger("fer_edge.edge.mqtt")
    for h in [h for h in logger.handlers if isinstance(h, Lines)]:
        logger.removeHandler(h)


def reporter(port: int, device: str = "hall", **mqtt):
    """An MqttReporter on 127.0.0.1:port; the lines it logs go to ``.lines``."""
    from fer_edge.common.config import load_config
    from fer_edge.edge.mqtt import MqttReporter
    sets = {"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": port, "mqtt.device": device,
            **{f"mqtt.{k}": v for k, v in mqtt.items()}}
    cfg = load_config(None, [(k, v) for k, v in sets.items()])
    r = MqttReporter(cfg.mqtt, LABELS)
    handler = Lines()                   # its own lines: those logged by its thread
    handler.addFilter(lambda record: r._thread is not None and record.thread == r._thread.ident)
    logging.getLogger("fer_edge.edge.mqtt").addHandler(handler)
    r.lines = handler.lines
    return r


class Silent:
    """A TCP server that accepts and never says a word (a hung broker, a TLS port waiting for a hello),
    or, with ``forward_to``, a proxy to a broker that cuts every connection after ``cut_s``."""

    def __init__(self, forward_to: int | None = None, cut_s: float = 1.0):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.forward_to, self.cut_s, self.conns = forward_to, cut_s, []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.forward_to:
                threading.Thread(target=self._proxy, args=(c,), daemon=True).start()

    def _proxy(self, c: socket.socket) -> None:
        up = socket.create_connection(("127.0.0.1", self.forward_to))
        end = time.monotonic() + self.cut_s
        for a, b in ((c, up), (up, c)):
            threading.Thread(target=self._pipe, args=(a, b, end), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket, end: float) -> None:
        try:
            while (left := end - time.monotonic()) > 0:
                a.settimeout(left)
                try:
                    data = a.recv(4096)
                except TimeoutError:
                    break
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def reporter_for(port: int, seconds: float, *ends):
    """A reporter run against ``port`` for ``seconds``, then stopped, and ``ends`` called (the peers' close)."""
    r = reporter(port).start()
    try:
        time.sleep(seconds)
    finally:
        r.close()
        for end in ends:
            end()
    return r


def test_a_broker_that_never_answers_is_named_within_the_connect_timeout_once(monkeypatch):
    import fer_edge.edge.mqtt as m
    monkeypatch.setattr(m, "CONNACK_TIMEOUT_S", 1.5)
    server = Silent()
    r = reporter_for(server.port, 9, server.close)
    said = [x for x in r.lines if "no answer to the MQTT handshake" in x]
    assert len(said) == 1 and "mqtt.tls" in said[0], r.lines
    assert len(server.conns) >= 2, "it stopped retrying"


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed")
def test_a_broker_that_drops_every_connection_is_said_at_a_bounded_rate(tmp_path):
    broker = Broker(tmp_path).start()
    proxy = Silent(forward_to=broker.port, cut_s=1.0)
    r = reporter_for(proxy.port, 12, proxy.close, broker.stop)
    assert len(proxy.conns) >= 4, "the flapping was not reproduced"
    assert 1 <= len(r.lines) <= 2, r.lines


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed")
def test_two_machines_with_one_device_name_get_distinct_client_ids_and_a_warning(tmp_path):
    from fer_edge.edge.mqttsetup import machine_tag
    ids = []
    for i in range(2):
        (tmp_path / f"machine-id-{i}").write_text(f"{i:032x}\n")
        ids.append(machine_tag((str(tmp_path / f"machine-id-{i}"),)))
    assert ids[0] != ids[1] and machine_tag() == machine_tag()
    broker = Broker(tmp_path).start()
    a, b = reporter(broker.port), reporter(broker.port)
    assert a.client_id == b.client_id and "hall" in a.client_id       # one machine: one id
    a.client_id, b.client_id = f"fer-edge-hall-{ids[0]}", f"fer-edge-hall-{ids[1]}"   # as on two machines
    a.start()
    time.sleep(1.5)
    b.start()
    try:
        time.sleep(4)
    finally:
        a.close()
        b.close()
        broker.stop()
    for r in (a, b):
        assert r.reconnects == 0, r.lines                  # nobody knocked off the broker
        assert sum("also reports as mqtt.device 'hall'" in x for x in r.lines) == 1, r.lines


def test_a_password_file_mqtt_cannot_carry_is_refused_at_start(tmp_path):
    pw = tmp_path / "password"
    pw.write_bytes(b"x" * 70000)
    cv2.imwrite(str(tmp_path / "grey.jpg"), np.full((48, 64, 3), 128, np.uint8))
    r = run_edge("--headless", "--source", str(tmp_path / "grey.jpg"), "--log", str(tmp_path / "e.csv"),
                 "--set", "mqtt.enabled=true", "--set", f"mqtt.port={free_port()}", "--set", "mqtt.username=u",
                 "--set", f"mqtt.password_file={pw}", timeout=90)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert any("mqtt.password_file" in x and "65535" in x for x in lines), r.stderr
