"""Frame sources (camera, picamera2, video file, image file/folder, RTSP/HTTP URL) and the capture
thread that reads them.

A source is anything with ``open()``, ``read()`` and ``close()`` (the ``FrameSource`` protocol), so
tests can hand the loop a fake camera. ``read`` returns a ``Grab``, ``None`` at the end of the
stream (or when a live source stops delivering), or raises ``CorruptFrame`` for one bad frame.
The ``Capture`` thread only reads and queues, as in Frigate: a read that hangs in a driver can
never hang the loop, which waits on the queue with a timeout.
"""
from __future__ import annotations

import importlib
import importlib.util
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from fer_edge.common.config import CameraConfig, resolve_path
from fer_edge.common.invocation import command
from fer_edge.common.yamlsafe import clip
from fer_edge.edge.imageread import CorruptFrame, decode, normalize_image

MAX_SOURCE_CHARS = 4096        # PATH_MAX: a longer --source / edge.source names nothing
NET_TIMEOUT_MS = 10000          # OpenCV's open and read timeouts for rtsp:// and http:// sources
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm"})


class SourceError(RuntimeError):
    """A source cannot be opened; the message names it and says what to do."""


@dataclass(frozen=True)
class Grab:
    """One image as read from a source. ``label`` is what the CSV 'source' column shows."""
    image: np.ndarray
    label: str
    still: bool = False    # a photo: detected on its own, no tracking or smoothing across images


@runtime_checkable
class FrameSource(Protocol):
    name: str        # for messages: the device, file or URL
    live: bool       # True: camera/stream, reconnect when it stops; False: its end ends the run
    length: int | None   # frames to expect, when known after open() (files and folders, not looping)

    def open(self) -> None: ...
    def read(self) -> Grab | None: ...
    def close(self) -> None: ...


SECRET_QUERY_KEYS = ("token", "password", "passwd", "pass", "pwd", "secret", "key", "apikey", "api_key",
                     "auth", "access_token", "sig", "signature", "credential", "credentials")


def redact_url(url: str) -> str:
    """``url`` with its user:password and token-like query values replaced by ``***``; anything that is
    not a URL comes back unchanged."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.split("://", 1)[0] + "://***"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"***@{'[' + host + ']' if ':' in host else host}{port}"
    query = "&".join(
        f"{k}=***" if k.lower() in SECRET_QUERY_KEYS else (f"{k}={v}" if v or "=" in pair else k)
        for pair in parts.query.split("&") if pair for k, _, v in [pair.partition("=")])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class OpenCvSource:
    """cv2.VideoCapture: a camera index or /dev/videoN, a video file, or an rtsp/http URL."""

    def __init__(self, target: int | str, live: bool, loop: bool = False,
                 width: int = 0, height: int = 0, fps: int = 0, max_bad_frames: int = 250):
        self.target, self.live, self.loop = target, live, loop
        self.max_bad_frames = int(max_bad_frames)
        self.length: int | None = None
        self._bad, self._moved, self._bad_pos = 0, False, -1.0
        self.size = (width, height, fps)
        # What the log, messages and the web view show: never a URL's password or token.
        self.name = f"camera {target}" if isinstance(target, int) else redact_url(str(target))
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        if isinstance(self.target, str) and "://" in self.target:
            # A network camera that does not answer must not hold the open (or a read) for minutes.
            cap = cv2.VideoCapture(self.target, cv2.CAP_ANY, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, NET_TIMEOUT_MS,
                                                                cv2.CAP_PROP_READ_TIMEOUT_MSEC, NET_TIMEOUT_MS])
        else:
            cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            hint = ("check that the camera is connected and not used by another program (`v4l2-ctl --list-devices`), "
                    "or try it on a file: " + command("edge", "--source path/to/video.mp4", "SOURCE=path/to/video.mp4")
                    if self.live and not str(self.target).count("://") else
                    "check the URL and that the stream is up" if self.live else
                    "the file is not a video OpenCV can decode (corrupt or an unknown codec)")
            raise SourceError(f"cannot open source {self.name}: {hint}")
        if self.live and isinstance(self.target, int) or str(self.target).startswith("/dev/"):
            w, h, fps = self.size
            if w and h:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
            if fps:
                cap.set(cv2.CAP_PROP_FPS, fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)   # newest frame, not a backlog
        count = 0 if self.live else int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.length = count if count > 0 and not self.loop else None
        self._cap = cap

    def read(self) -> Grab | None:
        cap = self._cap
        if cap is None:
            return None
        ok, image = cap.read()
        if not ok and not self.live and self._damaged(cap):
            raise CorruptFrame(f"{self.name}: frame {int(cap.get(cv2.CAP_PROP_POS_FRAMES))} is unreadable "
                               "(a damaged stretch of the file); reading on")
        if not ok and self.loop and not self.live:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = cap.read()
        if not ok:
            return None
        self._bad, self._moved, self._bad_pos = 0, False, -1.0
        return Grab(normalize_image(image, self.name), self.name)

    def _damaged(self, cap) -> bool:
        """After a failed read of a file: True while frames may be left to read past (the position is
        short of the frame count). After ``max_bad_frames`` failed reads in a row: the end when the
        position never moved and at most 2% of the frames are left (a damaged tail, or a frame count
        that was an estimate), else SourceError."""
        total, pos = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_POS_FRAMES)
        if total <= 0 or pos >= total:
            return False
        self._moved |= self._bad_pos >= 0 and pos != self._bad_pos
        self._bad_pos = pos
        self._bad += 1
        if self._bad > self.max_bad_frames:
            if not self._moved and total - pos <= 0.02 * total:
                return False
            raise SourceError(f"{self.name}: more than {self.max_bad_frames} unreadable frames in a row at frame "
                              f"{int(pos)} of {int(total)}: the file is damaged (edge.max_bad_frames)")
        return True

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class ImageSource:
    """One image file, or every image of a folder (sorted by name); each image is one frame."""

    live = False

    def __init__(self, path: str | Path, loop: bool = False, max_image_mp: float = 40.0):
        self.path, self.loop, self.max_image_mp = Path(path), loop, float(max_image_mp)
        self.name = str(self.path)
        self.length: int | None = None
        self._files: list[Path] = []
        self._pos = 0

    def open(self) -> None:
        if self.path.is_dir():
            self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not self._files:
                raise SourceError(f"image folder {self.path} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        elif self.path.is_file():
            self._files = [self.path]
        else:
            raise SourceError(f"image source {self.path} not found")
        self._pos = 0
        self.length = None if self.loop else len(self._files)

    def read(self) -> Grab | None:
        if self._pos >= len(self._files):
            if not self.loop or not self._files:
                return None
            self._pos = 0
        path = self._files[self._pos]
        self._pos += 1
        try:
            if path.stat().st_size > self.max_image_mp * 16e6:     # more bytes than any image of that size
                raise CorruptFrame(f"{path}: {path.stat().st_size / 1e6:.0f} MB is too large for an image of at most "
                                   f"{self.max_image_mp:g} megapixels (edge.max_image_mp)")
            image = decode(path.read_bytes(), str(path), self.max_image_mp)    # as an upload is read
        except OSError as exc:
            raise CorruptFrame(f"{path}: cannot be read ({exc.strerror})") from None
        except ValueError as exc:
            raise CorruptFrame(str(exc)) from None
        return Grab(image, str(path), still=True)

    def close(self) -> None:
        self._files = []


class PiCameraSource:
    """The Raspberry Pi camera through picamera2 (apt: python3-picamera2; never from pip)."""

    live = True
    length: int | None = None

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30):
        self.size = (width, height, fps)
        self.name = "picamera2"
        self._cam = None

    def open(self) -> None:
        try:
            picamera2 = importlib.import_module("picamera2")
        except ImportError as exc:
            raise SourceError("source picamera2: the picamera2 module is not installed. On Raspberry Pi OS: "
                              "`sudo apt install python3-picamera2` and create the venv with "
                              "--system-site-packages; elsewhere use --source 0 (a USB camera).") from exc
        w, h, fps = self.size
        try:
            cam = picamera2.Picamera2()
        except IndexError as exc:    # its way of saying "no camera"
            raise SourceError("source picamera2: no camera detected. Check the ribbon cable and "
                              "`rpicam-hello --list-cameras`, or use --source 0 for a USB camera.") from exc
        try:
            # RGB888 is B,G,R in memory: exactly OpenCV's BGR, no conversion needed.
            cam.configure(cam.create_video_configuration(main={"size": (w, h), "format": "RGB888"},
                                                         controls={"FrameRate": fps}))
            cam.start()
        except Exception as exc:
            cam.close()
            raise SourceError(f"source picamera2: cannot start the camera at {w}x{h}: {exc}") from exc
        self._cam = cam

    def read(self) -> Grab | None:
        cam = self._cam
        if cam is None:
            return None
        try:
            image = cam.capture_array("main")
        except Exception:
            return None
        return Grab(normalize_image(image, self.name), self.name)

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()


def open_interruptible(source: FrameSource, stop: threading.Event, poll_s: float = 0.05) -> bool:
    """``source.open()`` in a helper thread, so that a driver or a network camera that blocks cannot
    hold up a SIGTERM: True when it opened, False when ``stop`` was set first (the helper closes the
    source if its open returns later). The open's own exception is raised here."""
    box: dict = {}
    done = threading.Event()

    def target() -> None:
        try:
            source.open()
        except BaseException as exc:        # noqa: BLE001 - handed to the caller
            box["error"] = exc
        done.set()
        if stop.is_set() and "error" not in box:
            try:
                source.close()
            except Exception:               # noqa: BLE001 - abandoned: nothing to report to
                pass

    threading.Thread(target=target, name=f"open {source.name}", daemon=True).start()
    while not done.wait(poll_s):
        if stop.is_set():
            return False
    if "error" in box:
        raise box["error"]
    return True


def is_raspberry_pi() -> bool:
    """True on a Raspberry Pi (by the device-tree model string)."""
    try:
        return "raspberry pi" in Path("/proc/device-tree/model").read_text(errors="ignore").lower()
    except OSError:
        return False


def make_source(spec: int | str, cam_cfg: CameraConfig, loop: bool = False, max_image_mp: float = 40.0,
                max_bad_frames: int = 250) -> FrameSource:
    """Pick the source for ``edge.source`` / ``--source`` (see config.yaml). Raises SourceError."""
    w, h, fps = cam_cfg.width, cam_cfg.height, cam_cfg.fps
    s = str(spec).strip()
    if s == "auto":
        if is_raspberry_pi() and importlib.util.find_spec("picamera2") is not None:
            return PiCameraSource(w, h, fps)
        return OpenCvSource(0, live=True, width=w, height=h, fps=fps)
    if s in ("picamera", "picamera2"):
        return PiCameraSource(w, h, fps)
    if s.isdigit():
        return OpenCvSource(int(s), live=True, width=w, height=h, fps=fps)
    if s.startswith("/dev/video"):
        if not Path(s).exists():
            raise SourceError(f"camera {s} not found: list cameras with `ls /dev/video*` or `v4l2-ctl --list-devices`")
        return OpenCvSource(s, live=True, width=w, height=h, fps=fps)
    if "://" in s:
        return OpenCvSource(s, live=True)
    kinds = ("pass a camera index (0), /dev/videoN, a video or image file, a folder of images or an "
             "rtsp:// / http:// URL (--source or edge.source)")
    if len(s) > MAX_SOURCE_CHARS:
        raise SourceError(f"source {clip(s)} is {len(s):,} characters long: {kinds}")
    p = resolve_path(s)                  # a relative path in config.yaml: from the repository (--source is absolute)
    try:
        if p.is_dir() or (p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS):
            return ImageSource(p, loop=loop, max_image_mp=max_image_mp)
        if p.is_file():
            return OpenCvSource(str(p), live=False, loop=loop, max_bad_frames=max_bad_frames)
    except OSError as exc:               # a name too long for the file system, a loop of links
        raise SourceError(f"source {clip(str(p))}: {exc.strerror or exc}: {kinds}") from None
    raise SourceError(f"source {clip(str(p))} not found: {kinds}")


@dataclass(frozen=True)
class Item:
    """What the capture thread hands the loop: kind is 'frame', 'corrupt', 'end' or 'error'."""
    kind: str
    grab: Grab | None = None
    timestamp: datetime | None = None
    read_ms: float = 0.0
    message: str = ""


class Capture:
    """Reads a source in a daemon thread into a bounded queue.

    Live sources drop the oldest queued frame when the loop is behind (counted in ``dropped``):
    the loop should work on the newest picture. Files and folders wait instead (no frame lost).
    """

    def __init__(self, source: FrameSource, queue_size: int = 2):
        self.source = source
        self.dropped = 0
        self._q: queue.Queue[Item] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture {source.name}", daemon=True)

    def start(self) -> "Capture":
        self._thread.start()
        return self

    def _put(self, item: Item) -> None:
        if self.source.live:
            while not self._stop.is_set():
                try:
                    self._q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self._q.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
        else:
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                grab = self.source.read()
            except CorruptFrame as exc:
                self._put(Item("corrupt", message=str(exc)))
                continue
            except Exception as exc:     # a driver/library error: the loop decides (reconnect or end)
                self._put(Item("error", message=f"{type(exc).__name__}: {exc}"))
                return
            if self._stop.is_set():
                return
            if grab is None:
                self._put(Item("end"))
                return
            self._put(Item("frame", grab, datetime.now(timezone.utc), (time.perf_counter() - t0) * 1e3))

    def get(self, timeout: float) -> Item | None:
        """The next item, or None when nothing arrived within ``timeout`` seconds."""
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self, join_s: float = 1.0) -> bool:
        """Ask the thread to stop; True if it ended (a read hung in a driver may not return)."""
        self._stop.set()
        self._thread.join(join_s)
        return not self._thread.is_alive()
