"""Report to an MQTT broker: availability, per-face events, the current state, Home Assistant discovery.

``MqttReporter`` is a sink: the edge loop hands it each frame's result (``write``), a bounded queue that
never blocks (a full queue drops the frame and counts it). One thread turns frames into messages
(mqttevents.py) and runs the paho-mqtt client itself: it connects, reconnects with backoff, re-sends the
retained messages after each connection, and drops (and counts) what cannot be sent while the broker is
away; while a connection is being set up, frames wait in the queue. The CSV log stays the durable
record. Topics and payloads: docs/fleet.md.
"""
from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import time
from typing import Callable

from fer_edge.common.config import Config, MqttConfig
from fer_edge.edge.mqttevents import FaceEvents, Snapshot, Topics
from fer_edge.edge.mqttsetup import describe, device_name, machine_tag, read_password, tls_files
from fer_edge.edge.types import FrameResult

log = logging.getLogger(__name__)

BACKOFF_MAX_S = 30.0       # longest wait between connection attempts
STOP_FLUSH_S = 2.0         # at a clean exit, time allowed for `offline` to reach the broker
CONNACK_TIMEOUT_S = 10.0   # a broker that accepts TCP but does not answer the MQTT handshake in this is given up
SAY_EVERY_S = 60.0         # connection lost / connected again: one line per this at most (a flapping broker)

__all__ = ["FaceEvents", "MqttReporter", "Snapshot", "Topics"]


class MqttReporter:
    """The MQTT side of one run, a sink. ``write`` from the loop; everything else happens in its thread."""

    name = "mqtt"

    def __init__(self, m: MqttConfig, labels: tuple[str, ...]):
        self.m = m
        self.device = device_name(m.device)
        self.topics = Topics(m.topic_prefix, self.device, m.discovery_prefix)
        self.where = f"{m.host}:{m.port}"
        self.password = read_password(m.password_file)
        self.tls = tls_files(m.tls)
        self.client_id = f"fer-edge-{self.device}-{machine_tag()}"   # unique per machine, even with one name
        self.events = FaceEvents(labels, self.device, m.update_interval_s)
        self.queue: queue.Queue[Snapshot] = queue.Queue(maxsize=m.queue_size)
        self.sent = self.dropped = self.reconnects = 0
        self.connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: dict | None = None
        self._ever_connected = False
        self._failure_said = ""
        self._said_at, self._held = float("-inf"), 0
        self._loss_told = False
        self._claim_warned = False
        self._acked = False                 # this connection got its CONNACK
        self._open, self._opened_at = False, 0.0       # a socket to the broker, since when
        self._next_try, self._backoff = 0.0, 1.0

    @classmethod
    def from_config(cls, cfg: Config, labels: tuple[str, ...]) -> "MqttReporter | None":
        """From the ``mqtt`` section; None when it is off. Raises MqttConfigError for unusable files."""
        return cls(cfg.mqtt, labels) if cfg.mqtt.enabled else None

    # ---- the loop's side ------------------------------------------------------------------------
    def write(self, result: FrameResult) -> None:
        """Never blocks: a full queue (broker slow, thread behind) drops this frame and counts it."""
        f = result.frame
        snap = Snapshot(f.timestamp, f.source, f.still, result.fps,
                        tuple((x.face_id, x.label, x.confidence, x.probs, (x.box.x, x.box.y, x.box.w, x.box.h))
                              for x in result.faces))
        try:
            self.queue.put_nowait(snap)
        except queue.Full:
            self.dropped += 1

    def counters(self) -> dict[str, int]:
        return {"mqtt_sent": self.sent, "mqtt_dropped": self.dropped, "mqtt_reconnects": self.reconnects}

    def summary(self) -> str:
        return (f"mqtt {self.where} as {self.device}: {self.sent} messages sent, {self.dropped} dropped, "
                f"{self.reconnects} reconnects")

    def start(self) -> "MqttReporter":
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Send what is queued, say `offline` (retained) and disconnect; at most a few seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_FLUSH_S + 3.0)

    # ---- the thread ----------------------------------------------------------------------------
    def _client(self):
        import paho.mqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        if self.m.username:
            c.username_pw_set(self.m.username, self.password)
        if self.tls is not None:
            c.tls_set(ca_certs=self.tls.get("ca_file"), certfile=self.tls.get("cert_file"),
                      keyfile=self.tls.get("key_file"), cert_reqs=ssl.CERT_REQUIRED)
        c.will_set(self.topics.available, "offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_claim
        return c

    def _say_limited(self, level: int, text: str, always: bool = False) -> bool:
        """A connection change in one line, at most one per SAY_EVERY_S (``always``: this one regardless);
        the held ones are counted. Whether it was said."""
        now = time.monotonic()
        if now - self._said_at < SAY_EVERY_S and not always:
            self._held += 1
            return False
        held = f" ({self._held} more connection changes in the last {SAY_EVERY_S:g} s)" if self._held else ""
        self._said_at, self._held = now, 0
        log.log(level, text + held)
        return True

    def _on_claim(self, client, userdata, message) -> None:
        other = message.payload[:100].decode("utf-8", "replace")
        if message.topic == self.topics.claim and other and other != self.client_id and not self._claim_warned:
            self._claim_warned = True
            log.warning(f"MQTT broker {self.where}: another device ({other}) also reports as "
                        f"mqtt.device {self.device!r}: their states and Home Assistant entities mix; "
                        "give each device its own mqtt.device")

    def _fail(self, why: str) -> None:
        if why != self._failure_said:        # each new reason once, not every retry
            self._failure_said = why
            log.warning(f"MQTT broker {self.where}: {why}; retrying in the background (the CSV log goes on)")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            login = f" as {self.m.username!r}" if self.m.username else ""
            self._fail(f"refused the connection{login}: {reason_code}"
                       + (" (check mqtt.username and mqtt.password_file)" if "auth" in str(reason_code).lower()
                          or "password" in str(reason_code).lower() else ""))
            return
        self.connected = self._acked = True
        self._failure_said = ""
        if self._ever_connected:
            self.reconnects += 1
            # a loss that was told is followed by its recovery, whatever the limit
            self._say_limited(logging.INFO, f"MQTT broker {self.where}: connected again", always=self._loss_told)
            self._loss_told = False
        self._ever_connected = True
        client.subscribe(self.topics.claim, qos=1)            # another device's claim arrives first (retained),
        client.publish(self.topics.claim, self.client_id, qos=1, retain=True)   # then this one replaces it
        self._publish(self.topics.available, "online", qos=1)
        for topic, payload in self.topics.discovery():
            self._publish(topic, payload, qos=1)
        if self._state is not None:
            self._publish(self.topics.state, self._state)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected and not self._stop.is_set():
            self._loss_told = self._say_limited(
                logging.WARNING, f"MQTT broker {self.where}: connection lost ({reason_code}); "
                                 "reconnecting in the background (the CSV log goes on)") or self._loss_told
        self.connected = False

    def _publish(self, topic: str, payload, qos: int | None = None) -> None:
        body = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        retain = topic != self.topics.events
        if self.connected:
            info = self._c.publish(topic, body, qos=self.m.qos if qos is None else qos, retain=retain)
            if info.rc == 0:
                self.sent += 1
                return
        self.dropped += 1

    def _handle(self, snap: Snapshot) -> None:
        for ev in self.events.feed(snap):
            self._publish(self.topics.events, ev)
        state = self.events.state(snap)
        self._state = state
        if self.events.state_due(state):
            self._publish(self.topics.state, state)

    def _drain(self) -> None:
        """Whatever is waiting in the queue, without sleeping."""
        while True:
            try:
                self._handle(self.queue.get_nowait())
            except queue.Empty:
                return

    def _run(self) -> None:
        self._c = self._client()
        while not self._stop.is_set():
            if not self._network():                   # the broker has not answered yet: frames wait in the
                continue                              # (bounded) queue rather than be dropped
            try:
                snap = self.queue.get(timeout=0.02 if self._open else 0.1)
            except queue.Empty:
                continue
            self._handle(snap)
            self._drain()
        self._finish()

    def _retry_later(self) -> None:
        self._next_try, self._backoff = time.monotonic() + self._backoff, min(self._backoff * 2, BACKOFF_MAX_S)

    def _close_socket(self) -> None:
        sock = self._c.socket()
        if sock is not None:
            sock.close()

    def _network(self) -> bool:
        """Connect when due and run the client's network loop once; False while a new connection
        waits for the broker's answer to its handshake."""
        c, now = self._c, time.monotonic()
        if not self._open and now >= self._next_try:
            try:
                c.connect(self.m.host, self.m.port, keepalive=self.m.keepalive_s)
                self._open, self._opened_at, self._acked = True, now, False
            except (OSError, ValueError) as exc:
                self._fail(describe(exc))
                self._retry_later()
        if not self._open:
            return True
        if c.loop(timeout=0.02) != 0:                 # the connection dropped (or CONNACK refused it)
            if not self._acked:
                self._fail("the connection was closed before the MQTT handshake finished (a TLS port while "
                           "mqtt.tls.enabled is false, or the broker refuses this client)")
            self._open = self.connected = False
            self._retry_later()
        elif self.connected:
            self._backoff = 1.0
        elif time.monotonic() - self._opened_at > CONNACK_TIMEOUT_S:
            tls = "" if self.tls is not None else "a TLS port while mqtt.tls.enabled is false, or "
            self._fail(f"no answer to the MQTT handshake within {CONNACK_TIMEOUT_S:g} s: {tls}not an MQTT "
                       "broker (check mqtt.port and mqtt.tls)")
            self._close_socket()
            self._open = False
            self._retry_later()
        else:
            return False
        return True

    def _finish(self) -> None:
        """A clean exit: the broker's answer to a connection still in its handshake (a short run), the
        rest of the queue, the ends of the faces, `offline`, disconnect."""
        if self._open:
            self._pump_until(lambda: self.connected)
        self._drain()
        for ev in self.events.end_all():
            self._publish(self.topics.events, ev)
        if self.connected:
            if self._state is not None:
                self._publish(self.topics.state, {**self._state, "faces": 0, "dominant_emotion": "none",
                                                  "confidence": 0.0, "emotions": {}, "tracked": [], "fps": 0.0})
            info = self._c.publish(self.topics.available, "offline", qos=1, retain=True)
            self.sent += 1
            if self._pump_until(info.is_published):
                self._c.disconnect()
                self._c.loop(timeout=0.05)
            else:                                     # a hung broker or a full in-flight window: no clean
                self._close_socket()                  # DISCONNECT, so that the broker's last will says `offline`
        self.connected = False

    def _pump_until(self, done: Callable[[], bool]) -> bool:
        """Run the client's network loop until ``done()``, the connection ends, or STOP_FLUSH_S pass."""
        deadline = time.monotonic() + STOP_FLUSH_S
        while not done() and time.monotonic() < deadline and self._c.loop(timeout=0.05) == 0:
            pass
        return done()
