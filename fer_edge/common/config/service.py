"""The sections of the edge service: ``edge`` (camera, detector, tracking, smoothing, csv), ``web``, ``mqtt``."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fer_edge.common.config.fields import ConfigError, Section, plugins, section, setting
from fer_edge.common.yamlsafe import short

NUM = (int, float)
TOPIC_WORD = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOPIC_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,7}")


@dataclass(frozen=True)
class CameraConfig(Section):
    width: int = setting(int, 640, min=16, max=8192)
    height: int = setting(int, 480, min=16, max=8192)
    fps: int = setting(int, 30, min=1, max=240)
    stall_timeout_s: float = setting(NUM, 5.0, min=0.1, max=3600)
    reconnect_attempts: int = setting(int, 0, min=0, max=100000)
    reconnect_backoff_s: float = setting(NUM, 1.0, min=0.0, max=600)
    reconnect_backoff_max_s: float = setting(NUM, 30.0, min=0.0, max=3600)


@dataclass(frozen=True)
class DetectorConfig(Section):
    """The keys every backend shares, and each registered backend's own section (``backends``), which
    its module declares (``fer_edge/edge/detect``); ``backend`` picks one."""
    backend: str = setting(str, "haar")
    min_size: int = setting(int, 24, min=8, max=4096)
    max_faces: int = setting(int, 5, min=1, max=100)
    detect_width: int = setting(int, 320, min=0, max=8192)
    margin: float = setting(float, 0.0, min=-0.5, max=1.0)
    full_scan_every: int = setting(int, 15, min=1, max=10000)
    backends: dict[str, Any] = plugins("backend")

    @property
    def own(self) -> Any:
        """The chosen backend's own section (``edge.detector.<backend>``), None when it has none."""
        return self.backends.get(self.backend)


@dataclass(frozen=True)
class TrackingConfig(Section):
    iou_threshold: float = setting(float, 0.3, min=0.0, max=1.0)
    max_missed: int = setting(int, 10, min=0, max=10000)


@dataclass(frozen=True)
class SmoothingConfig(Section):
    method: str = setting(str, "logema", choices=("none", "ema", "logema", "window"))
    alpha: float = setting(float, 0.4, min=0.01, max=1.0)
    window: int = setting(int, 5, min=1, max=1000)
    hysteresis: float = setting(float, 0.15, min=0.0, max=1.0)


@dataclass(frozen=True)
class CsvConfig(Section):
    fsync: str = setting(str, "interval", choices=("always", "interval", "never"))
    fsync_interval_s: float = setting(NUM, 5.0, min=0.0, max=3600)
    rotate_mb: float = setting(NUM, 50.0, min=0.0, max=1e6)
    keep: int = setting(int, 5, min=0, max=1000)
    min_interval_s: float = setting(NUM, 0.0, min=0.0, max=86400)
    on_error: str = setting(str, "retry", choices=("retry", "exit"))


@dataclass(frozen=True)
class EdgeConfig(Section):
    model: str = setting(str, "models/emotion_int8.tflite")
    source: str | int = setting((str, int), "auto")
    loop: bool = setting(bool, False)
    display: str = setting(str, "auto", choices=("auto", "on", "off"))
    log: str = setting(str, "logs/emotions.csv")
    max_frames: int = setting(int, 0, min=0)
    threads: int = setting(int, 1, min=1, max=16)
    flip_tta: bool | str = setting((bool, str), "auto", choices=(True, False, "auto"))
    max_image_mp: float = setting(NUM, 40.0, min=0.1, max=1000)
    max_bad_frames: int = setting(int, 250, min=0, max=1000000)
    camera: CameraConfig = section(CameraConfig)
    detector: DetectorConfig = section(DetectorConfig)
    tracking: TrackingConfig = section(TrackingConfig)
    smoothing: SmoothingConfig = section(SmoothingConfig)
    csv: CsvConfig = section(CsvConfig)


@dataclass(frozen=True)
class WebConfig(Section):
    enabled: bool = setting(bool, False)
    host: str = setting(str, "127.0.0.1")
    port: int = setting(int, 8080, min=1, max=65535)
    token: str = setting(str, "")
    max_upload_mb: float = setting(NUM, 10.0, min=0.01, max=1024)
    max_concurrent_predictions: int = setting(int, 2, min=1, max=64)
    stream_fps: float = setting(NUM, 10.0, min=0.1, max=60)
    jpeg_quality: int = setting(int, 80, min=10, max=100)
    history_minutes: int = setting(int, 360, min=0, max=1440)
    max_connections: int = setting(int, 100, min=4, max=10000)
    request_timeout_s: float = setting(NUM, 10.0, min=0.5, max=3600)

    def check(self) -> None:
        token = self.token
        if token and not (token.isascii() and token.isprintable() and " " not in token):
            raise ConfigError("config key 'web.token': use printable ASCII without spaces (letters, digits, "
                              "punctuation); other characters cannot be sent in an HTTP Authorization header")


@dataclass(frozen=True)
class MqttTlsConfig(Section):
    enabled: bool = setting(bool, False)
    ca_file: str = setting(str, "")
    cert_file: str = setting(str, "")
    key_file: str = setting(str, "")

    def check(self) -> None:
        if self.key_file and not self.cert_file:
            raise ConfigError("config key 'mqtt.tls.key_file': set mqtt.tls.cert_file too (the client certificate "
                              "it belongs to)")


@dataclass(frozen=True)
class MqttConfig(Section):
    enabled: bool = setting(bool, False)
    host: str = setting(str, "localhost")
    port: int = setting(int, 1883, min=1, max=65535)
    device: str = setting(str, "")
    topic_prefix: str = setting(str, "fer")
    discovery_prefix: str = setting(str, "homeassistant")
    keepalive_s: int = setting(int, 30, min=2, max=3600)
    qos: int = setting(int, 0, choices=(0, 1))
    username: str = setting(str, "")
    password_file: str = setting(str, "")
    update_interval_s: float = setting(NUM, 5.0, min=0.2, max=3600)
    queue_size: int = setting(int, 256, min=8, max=100000)
    tls: MqttTlsConfig = section(MqttTlsConfig)

    def check(self) -> None:
        if self.device and not TOPIC_WORD.fullmatch(self.device):
            raise ConfigError(f"config key 'mqtt.device': {short(self.device)} cannot be a topic level: use 1-64 "
                              "letters, digits, '-' or '_' (e.g. living-room)")
        for key in ("topic_prefix", "discovery_prefix"):
            value = getattr(self, key)
            if not TOPIC_PREFIX.fullmatch(value):
                raise ConfigError(f"config key 'mqtt.{key}': {short(value)} is not a topic prefix: use words of "
                                  "letters, digits, '-' or '_' separated by '/', without wildcards (e.g. fer)")
