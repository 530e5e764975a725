"""What the MQTT reporter settles at start: the device name, a client id unique to this machine, the
password and TLS files (refused at start when unusable), and failures put in words."""
from __future__ import annotations

import hashlib
import re
import socket
import ssl
from pathlib import Path

from fer_edge.common.config import MqttTlsConfig, resolve_path

MAX_PASSWORD_BYTES = 65535      # MQTT's length field: a longer password cannot be sent at all
MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")


class MqttConfigError(ValueError):
    """A problem with the mqtt section found at start (a missing password or certificate file)."""


def device_name(configured: str) -> str:
    """The configured device name, or this machine's hostname made topic-safe."""
    if configured:
        return configured
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname().split(".")[0]).strip("-")
    return name[:64] or "fer-edge"


def machine_tag(files: tuple[str, ...] = MACHINE_ID_FILES) -> str:
    """8 hex digits that differ between machines (from the machine id; SD cards cloned before first
    boot get their own), so two devices never share an MQTT client id, which the broker would
    answer by knocking each off in turn. Falls back to the hostname and the MAC address."""
    for f in files:
        try:
            text = Path(f).read_text(encoding="ascii", errors="replace")[:64].strip()
        except OSError:
            continue
        if text:
            return hashlib.sha256(text.encode()).hexdigest()[:8]
    import uuid
    return hashlib.sha256(f"{socket.gethostname()}-{uuid.getnode()}".encode()).hexdigest()[:8]


def read_password(path: str) -> str | None:
    if not path:
        return None
    p = resolve_path(path)
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_PASSWORD_BYTES + 3)
        text = raw.decode("utf-8").strip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise MqttConfigError(f"config key 'mqtt.password_file': cannot read {p}: {why}; "
                              "put the broker password in that file (one line)") from None
    if len(text.encode()) > MAX_PASSWORD_BYTES:
        raise MqttConfigError(f"config key 'mqtt.password_file': {p} holds more than {MAX_PASSWORD_BYTES} bytes, "
                              "more than MQTT can send: put only the broker password in that file (one line)")
    return text


def tls_files(t: MqttTlsConfig) -> dict | None:
    if not t.enabled:
        return None
    files = {}
    for key in ("ca_file", "cert_file", "key_file"):
        if getattr(t, key):
            p = resolve_path(getattr(t, key))
            if not p.is_file():
                raise MqttConfigError(f"config key 'mqtt.tls.{key}': {p} does not exist; "
                                      "give the PEM file's path or leave it empty")
            files[key] = str(p)
    return files


def describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate was refused ({exc.verify_message}): check mqtt.tls.ca_file"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc}): check mqtt.tls and that the port speaks TLS"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running, on this port?)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out (host down or a firewall?)"
    return str(exc) or type(exc).__name__
