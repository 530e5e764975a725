"""Report to an MQTT broker: availability, per-face events, the current state, Home Assistant discovery.

The edge loop hands each frame's faces to ``MqttReporter.offer``: a bounded queue that never blocks
(a full queue drops the frame and counts it). One thread turns frames into messages and runs the
paho-mqtt client itself: it connects, reconnects with backoff, re-sends the retained messages after
each connection, and drops (and counts) what cannot be sent while the broker is away; while a
connection is being set up, frames wait in the queue. The CSV log stays the durable record. Topics and
payloads: docs/fleet.md.
"""
from __future__ import annotations

import json
import queue
import re
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from fer_edge import __version__
from fer_edge.common.config import Config, MqttConfig
from fer_edge.edge.mqttsetup import (
    MqttConfigError,  # noqa: F401 - raised at start, caught by loop.py
    describe,
    device_name,
    machine_tag,
    read_password,
    tls_files,
)
from fer_edge.edge.types import FrameResult

END_AFTER_S = 1.0          # a tracked face unseen this long has left (its `end` event)
BACKOFF_MAX_S = 30.0       # longest wait between connection attempts
STOP_FLUSH_S = 2.0         # at a clean exit, time allowed for `offline` to reach the broker
CONNACK_TIMEOUT_S = 10.0   # a broker that accepts TCP but does not answer the MQTT handshake in this is given up
SAY_EVERY_S = 60.0         # connection lost / connected again: one line per this at most (a flapping broker)


@dataclass(frozen=True)
class Snapshot:
    """What the loop hands over per frame: no image, only what the messages need."""
    time: datetime
    source: str
    still: bool
    fps: float
    faces: tuple      # (face_id, label, confidence, probs ndarray, (x, y, w, h)) per face


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FaceEvents:
    """Per tracked face: ``new`` when it appears, ``update`` when its label changes or every
    ``interval_s``, ``end`` once it has been gone ``END_AFTER_S`` (at once for photos, where each
    photo is a scene of its own). Also decides when the state is due."""

    def __init__(self, labels: tuple[str, ...], device: str, interval_s: float):
        self.labels, self.device, self.interval = labels, device, float(interval_s)
        self.faces: dict[int, dict] = {}        # face_id -> last event payload and bookkeeping
        self._state_key: tuple | None = None
        self._state_at = 0.0

    def _payload(self, kind: str, snap: Snapshot, face, start: datetime) -> dict:
        face_id, label, conf, probs, (x, y, w, h) = face
        return {"type": kind, "device": self.device, "source": snap.source, "face_id": int(face_id),
                "emotion": label, "confidence": round(float(conf), 4),
                "probabilities": {k: round(float(p), 4) for k, p in zip(self.labels, probs)},
                "box": {"x": int(x), "y": int(y), "w": int(w), "h": int(h)},
                "start_time": _iso(start), "timestamp": _iso(snap.time)}

    def feed(self, snap: Snapshot) -> list[dict]:
        now = snap.time.timestamp()
        events: list[dict] = []
        seen = {f[0] for f in snap.faces}
        for face_id in list(self.faces):
            old = self.faces[face_id]
            if snap.still or (face_id not in seen and now - old["seen"] >= END_AFTER_S):
                events.append(self._end(old))
                del self.faces[face_id]
        for face in snap.faces:
            face_id, label = face[0], face[1]
            rec = self.faces.get(face_id)
            if rec is None:
                self.faces[face_id] = rec = {"start": snap.time, "sent": now, "label": label}
                events.append(self._payload("new", snap, face, snap.time))
            elif label != rec["label"] or now - rec["sent"] >= self.interval:
                rec.update(sent=now, label=label)
                events.append(self._payload("update", snap, face, rec["start"]))
            # the face as last seen, for its `end` (the payload is built only then)
            rec.update(face=face, snap=snap, seen=now, seen_at=snap.time)
        return events

    def _end(self, rec: dict) -> dict:
        return {**self._payload("end", rec["snap"], rec["face"], rec["start"]), "end_time": _iso(rec["seen_at"])}

    def end_all(self) -> list[dict]:
        events = [self._end(r) for r in self.faces.values()]
        self.faces.clear()
        return events

    def state(self, snap: Snapshot) -> dict:
        labels = Counter(f[1] for f in snap.faces)
        conf: dict[str, float] = {}
        for f in snap.faces:
            conf[f[1]] = conf.get(f[1], 0.0) + float(f[2])
        dominant = max(labels, key=lambda k: (labels[k], conf[k])) if labels else "none"
        return {"device": self.device, "source": snap.source, "timestamp": _iso(snap.time),
                "faces": len(snap.faces), "dominant_emotion": dominant,
                "confidence": round(100.0 * conf[dominant] / labels[dominant], 1) if labels else 0.0,
                "emotions": dict(labels), "fps": round(float(snap.fps), 1),
                "tracked": [{"face_id": int(f[0]), "emotion": f[1], "confidence": round(float(f[2]), 4)}
                            for f in snap.faces]}

    def state_due(self, state: dict) -> bool:
        """On a change of the face count or the dominant emotion, else every interval."""
        key = (state["faces"], state["dominant_emotion"])
        now = time.monotonic()
        if key != self._state_key or now - self._state_at >= self.interval:
            self._state_key, self._state_at = key, now
            return True
        return False


class Topics:
    def __init__(self, prefix: str, device: str, discovery_prefix: str):
        base = f"{prefix}/{device}"
        self.available, self.events, self.state = f"{base}/available", f"{base}/events", f"{base}/state"
        self.claim = f"{base}/claim"        # retained: the client id of the device that uses this name
        self.device, self.discovery_prefix = device, discovery_prefix

    def discovery(self) -> list[tuple[str, dict]]:
        """Home Assistant MQTT discovery: one sensor per entry, bound to the availability topic."""
        dev = {"identifiers": [f"fer_edge_{self.device}"], "name": f"fer-edge {self.device}",
               "manufacturer": "fer-edge", "model": "FER-2013 int8 emotion logger", "sw_version": __version__}
        sensors = [
            ("emotion", "Emotion", "{{ value_json.dominant_emotion }}", {"icon": "mdi:emoticon-outline"}),
            ("faces", "Faces", "{{ value_json.faces }}", {"icon": "mdi:account-group", "state_class": "measurement"}),
            ("confidence", "Emotion confidence", "{{ value_json.confidence }}",
             {"unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:percent"}),
            ("fps", "Frame rate", "{{ value_json.fps }}",
             {"unit_of_measurement": "fps", "state_class": "measurement", "entity_category": "diagnostic",
              "icon": "mdi:speedometer"}),
        ]
        out = []
        for key, name, template, extra in sensors:
            object_id = f"{self.device}_{key}"
            out.append((f"{self.discovery_prefix}/sensor/{object_id}/config", {
                "name": name, "unique_id": f"fer_edge_{object_id}",
                # the entity id HA gives it (sensor.fer_edge_hall_emotion); HA >= 2025.10 reads this key
                "default_entity_id": "sensor." + re.sub(r"[^a-z0-9_]", "_", f"fer_edge_{object_id}".lower()),
                "state_topic": self.state, "value_template": template,
                "availability_topic": self.available, "payload_available": "online",
                "payload_not_available": "offline", "device": dev, **extra}))
        return out


class MqttReporter:
    """The MQTT side of one run. ``offer`` from the loop; everything else happens in its thread."""

    def __init__(self, m: MqttConfig, labels: tuple[str, ...], count: Callable[[str, int], None],
                 say: Callable[[str], None]):
        self.m, self.count, self.say = m, count, say
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

    @classmethod
    def from_config(cls, cfg: Config, labels, count, say) -> "MqttReporter | None":
        return cls(cfg.mqtt, labels, count, say) if cfg.mqtt.enabled else None

    # ---- the loop's side ------------------------------------------------------------------------
    def offer(self, result: FrameResult, fps: float) -> None:
        """Never blocks: a full queue (broker slow, thread behind) drops this frame and counts it."""
        f = result.frame
        snap = Snapshot(f.timestamp, f.source, f.still, fps,
                        tuple((x.face_id, x.label, x.confidence, x.probs, (x.box.x, x.box.y, x.box.w, x.box.h))
                              for x in result.faces))
        try:
            self.queue.put_nowait(snap)
        except queue.Full:
            self.dropped += 1
            self.count("mqtt_dropped", 1)

    def start(self) -> "MqttReporter":
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
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

    def _say_limited(self, text: str, always: bool = False) -> bool:
        """A connection change in one line, at most one per SAY_EVERY_S (``always``: this one regardless);
        the held ones are counted. Whether it was said."""
        now = time.monotonic()
        if now - self._said_at < SAY_EVERY_S and not always:
            self._held += 1
            return False
        held = f" ({self._held} more connection changes in the last {SAY_EVERY_S:g} s)" if self._held else ""
        self._said_at, self._held = now, 0
        self.say(text + held)
        return True

    def _on_claim(self, client, userdata, message) -> None:
        other = message.payload[:100].decode("utf-8", "replace")
        if message.topic == self.topics.claim and other and other != self.client_id and not self._claim_warned:
            self._claim_warned = True
            self.say(f"warning: MQTT broker {self.where}: another device ({other}) also reports as "
                     f"mqtt.device {self.device!r}: their states and Home Assistant entities mix; "
                     "give each device its own mqtt.device")

    def _fail(self, why: str) -> None:
        if why != self._failure_said:        # each new reason once, not every retry
            self._failure_said = why
            self.say(f"warning: MQTT broker {self.where}: {why}; retrying in the background (the CSV log goes on)")

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
            self.count("mqtt_reconnects", 1)
            # a loss that was told is followed by its recovery, whatever the limit
            self._say_limited(f"note: MQTT broker {self.where}: connected again", always=self._loss_told)
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
            self._loss_told = self._say_limited(f"warning: MQTT broker {self.where}: connection lost ({reason_code}); "
                                                "reconnecting in the background (the CSV log goes on)") or self._loss_told
        self.connected = False

    def _publish(self, topic: str, payload, qos: int | None = None) -> None:
        body = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        retain = topic != self.topics.events
        if self.connected:
            info = self._c.publish(topic, body, qos=self.m.qos if qos is None else qos, retain=retain)
            if info.rc == 0:
                self.sent += 1
                self.count("mqtt_sent", 1)
                return
        self.dropped += 1
        self.count("mqtt_dropped", 1)

    def _handle(self, snap: Snapshot) -> None:
        for ev in self.events.feed(snap):
            self._publish(self.topics.events, ev)
        state = self.events.state(snap)
        self._state = state
        if self.events.state_due(state):
            self._publish(self.topics.state, state)

    def _run(self) -> None:
        self._c = c = self._client()
        backoff, next_try, socket_open, opened_at = 1.0, 0.0, False, 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if not socket_open and now >= next_try:
                try:
                    c.connect(self.m.host, self.m.port, keepalive=self.m.keepalive_s)
                    socket_open, opened_at, self._acked = True, now, False
                except (OSError, ValueError) as exc:
                    self._fail(describe(exc))
                    next_try, backoff = now + backoff, min(backoff * 2, BACKOFF_MAX_S)
            if socket_open:
                rc = c.loop(timeout=0.02)
                if rc != 0:                           # the connection dropped (or CONNACK refused it)
                    if not self._acked:
                        self._fail("the connection was closed before the MQTT handshake finished (a TLS port while "
                                   "mqtt.tls.enabled is false, or the broker refuses this client)")
                    socket_open = self.connected = False
                    next_try, backoff = time.monotonic() + backoff, min(backoff * 2, BACKOFF_MAX_S)
                elif self.connected:
                    backoff = 1.0
                elif time.monotonic() - opened_at > CONNACK_TIMEOUT_S:
                    tls = "" if self.tls is not None else "a TLS port while mqtt.tls.enabled is false, or "
                    self._fail(f"no answer to the MQTT handshake within {CONNACK_TIMEOUT_S:g} s: {tls}not an MQTT "
                               "broker (check mqtt.port and mqtt.tls)")
                    sock = c.socket()
                    if sock is not None:
                        sock.close()
                    socket_open = False
                    next_try, backoff = time.monotonic() + backoff, min(backoff * 2, BACKOFF_MAX_S)
                else:                                 # the broker has not answered yet: frames wait in the
                    continue                          # (bounded) queue rather than be dropped
            try:
                snap = self.queue.get(timeout=0.02 if socket_open else 0.1)
            except queue.Empty:
                continue
            self._handle(snap)
            while True:                               # whatever else is waiting, without sleeping
                try:
                    self._handle(self.queue.get_nowait())
                except queue.Empty:
                    break
        # clean exit: the broker's answer to a connection still in its handshake (a short run), the rest
        # of the queue, the ends of the faces, `offline`, disconnect
        if socket_open:
            self._pump_until(lambda: self.connected)
        while True:
            try:
                self._handle(self.queue.get_nowait())
            except queue.Empty:
                break
        for ev in self.events.end_all():
            self._publish(self.topics.events, ev)
        if self.connected:
            if self._state is not None:
                self._publish(self.topics.state, {**self._state, "faces": 0, "dominant_emotion": "none",
                                                  "confidence": 0.0, "emotions": {}, "tracked": [], "fps": 0.0})
            info = c.publish(self.topics.available, "offline", qos=1, retain=True)
            self.sent += 1
            self.count("mqtt_sent", 1)
            if self._pump_until(info.is_published):
                c.disconnect()
                c.loop(timeout=0.05)
            else:                                     # a hung broker or a full in-flight window: no clean
                sock = c.socket()                     # DISCONNECT, so that the broker's last will says `offline`
                if sock is not None:
                    sock.close()
        self.connected = False

    def _pump_until(self, done: Callable[[], bool]) -> bool:
        """Run the client's network loop until ``done()``, the connection ends, or STOP_FLUSH_S pass."""
        deadline = time.monotonic() + STOP_FLUSH_S
        while not done() and time.monotonic() < deadline and self._c.loop(timeout=0.05) == 0:
            pass
        return done()

    def summary(self) -> str:
        return f"mqtt {self.where} as {self.device}: {self.sent} messages sent, {self.dropped} dropped, {self.reconnects} reconnects"

