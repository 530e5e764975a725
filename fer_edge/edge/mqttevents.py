"""What the MQTT reporter sends, frame by frame: per-face events (``FaceEvents``), the current state,
and the topics with Home Assistant's discovery (``Topics``). No network here; see mqtt.py for that,
and docs/fleet.md for the topics and payloads."""
from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

from fer_edge import __version__

END_AFTER_S = 1.0          # a tracked face unseen this long has left (its `end` event)


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
