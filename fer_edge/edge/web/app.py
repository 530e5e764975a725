"""The web view as a Starlette app: live page, MJPEG stream, JSON API, metrics, photo upload.

``create_app(cfg, live, analyzer)``: ``live`` is the edge loop's RecentResults (None when the upload
page runs alone, `make web`); ``analyzer`` is a Pipeline of its own, used only for uploads and
guarded by a lock because requests run concurrently and a TFLite interpreter is not thread-safe.
Each route is a function of its own (``ROUTES``) that finds this shared ``WebState`` on the app.
"""
from __future__ import annotations

import base64
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from fer_edge.common.config import Config
from fer_edge.common.invocation import command
from fer_edge.edge import overlay
from fer_edge.edge.telemetry import RecentResults
from fer_edge.edge.types import Face, Frame, FrameResult
from fer_edge.edge.web import pages, prom
from fer_edge.edge.web.auth import LoopbackHosts, TokenAuth
from fer_edge.edge.web.stream import BOUNDARY, Broadcaster
from fer_edge.edge.web.upload import UploadError, decode_image, read_image_field

if TYPE_CHECKING:
    from fer_edge.edge.face_classifier import EmotionClassifier


class Analyzer(Protocol):
    """What uploads need from the edge Pipeline (its own instance: interpreters are not thread-safe)."""
    labels: tuple[str, ...]
    classifier: EmotionClassifier

    def analyze_image(self, image: np.ndarray) -> list[Face]: ...


def face_json(face: Face, labels: tuple[str, ...]) -> dict:
    """One face as JSON: id, box in frame pixels, top emotion, confidence, all probabilities; named as in
    the CSV and MQTT (`emotion`, `probabilities`). `label` and `probs` repeat them for one release (0.9.x)."""
    b = face.box
    probs = {name: round(float(p), 4) for name, p in zip(labels, face.probs)}
    return {"face_id": int(face.face_id), "box": {"x": int(b.x), "y": int(b.y), "w": int(b.w), "h": int(b.h)},
            "emotion": face.label, "confidence": round(float(face.confidence), 4), "probabilities": probs,
            "label": face.label, "probs": dict(probs)}


class WebState:
    """What the handlers share: config, the live state, the upload analyzer and its lock."""

    def __init__(self, cfg: Config, live: RecentResults | None, analyzer: Analyzer | None):
        w = cfg.web
        self.live = live
        self.analyzer = analyzer
        self.labels: tuple[str, ...] = tuple(analyzer.labels) if analyzer is not None else (live.labels if live else ())
        self.max_bytes = int(w.max_upload_mb * 2**20)
        self.max_mp = cfg.edge.max_image_mp
        # Uploads in flight (body, decoded image, annotation): bounded, so 50 at once cannot take the memory.
        self.slots = threading.BoundedSemaphore(w.max_concurrent_predictions)
        # Bodies being received: a few times more, each within web.request_timeout_s, so slow senders
        # neither hold the analysis slots nor hold anything past their deadline.
        self.bodies = threading.BoundedSemaphore(4 * w.max_concurrent_predictions)
        self.body_timeout_s = w.request_timeout_s
        self.stream_fps = w.stream_fps
        self.jpeg_quality = w.jpeg_quality
        self.stall_timeout_s = cfg.edge.camera.stall_timeout_s
        self.started = time.time()
        self.stopping = threading.Event()          # set by WebServer.stop(): streams end
        self.analyze_lock = threading.Lock()
        self.predictions = 0
        self.pages = pages.load()
        self.broadcaster = Broadcaster(live, self.stream_fps, self.jpeg_quality, self.stopping) if live is not None else None

    def uptime(self) -> float:
        return time.time() - (self.live.started if self.live is not None else self.started)

    def analyze(self, image) -> tuple[list[Face], bytes]:
        """Faces of one photo and the annotated JPEG (runs in a worker thread)."""
        assert self.analyzer is not None           # the upload routes exist only with an analyzer
        with self.analyze_lock:
            faces = self.analyzer.analyze_image(image)
            self.predictions += 1
        result = FrameResult(Frame(image, 0, "upload", datetime.now(timezone.utc)), tuple(faces))
        annotated = overlay.draw(image, result, self.labels, None)
        ok, buf = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding of the annotated upload failed ({annotated.shape})")
        return faces, buf.tobytes()


def cross_site(request: Request) -> str:
    """Why a POST from another web site is refused, or "" for this server's own page and for
    non-browser clients. A multipart POST is a CORS "simple request": any page the user opens could
    send one to 127.0.0.1 without a preflight. Browsers name the sending page in Origin (and say
    cross-site in Sec-Fetch-Site), and those must be this server itself."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site[:40]}): upload from this server's own page"
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
        return f"cross-origin request from {origin[:80]!r} refused: upload from this server's own page"
    return ""


def _no_live() -> JSONResponse:
    return JSONResponse({"error": "no live stream is running: this server was started without a camera "
                                  f"({command('web')}); start the edge service with web.enabled: true, or upload a photo at /upload"},
                        status_code=503)


def _state(request: Request) -> WebState:
    st: WebState = request.app.state.web
    return st


async def index(request: Request) -> Response:
    st = _state(request)
    return HTMLResponse(st.pages["live" if st.live is not None else "nolive"])


async def upload_page(request: Request) -> Response:
    return HTMLResponse(_state(request).pages["upload"])


async def api_latest(request: Request) -> Response:
    st = _state(request)
    live = st.live
    if live is None:
        return JSONResponse({"live": False, "faces": [], "fps": 0.0, "uptime_s": round(st.uptime(), 1)})
    result, fps, seq = live.snapshot()
    body: dict[str, Any] = {"live": True, "seq": seq, "fps": round(fps, 2), "uptime_s": round(st.uptime(), 1),
                            "watchers": live.watchers, "frame": None, "faces": []}
    if result is not None:
        f = result.frame
        body["frame"] = {"index": f.index, "source": f.source, "timestamp": f.timestamp.isoformat(),
                         "width": int(f.image.shape[1]), "height": int(f.image.shape[0])}
        body["faces"] = [face_json(face, live.labels or st.labels) for face in result.faces]
    return JSONResponse(body)


async def api_health(request: Request) -> Response:
    st = _state(request)
    live = st.live
    body = {"status": "ok", "live": live is not None, "uptime_s": round(st.uptime(), 1),
            "model_loaded": st.analyzer is not None, "labels": list(st.labels)}
    if st.analyzer is not None:
        body["model"] = st.analyzer.classifier.info()
    if live is not None:
        result, fps, _ = live.snapshot()
        age = (datetime.now(timezone.utc) - result.frame.timestamp).total_seconds() if result else None
        body.update(frames=live.metrics.frames, fps=round(fps, 2),
                    last_frame_age_s=None if age is None else round(age, 2))
        # No frame for longer than the camera stall timeout: the loop is stuck or reconnecting.
        waited = age if age is not None else st.uptime()
        if waited > st.stall_timeout_s:
            body["status"] = "stalled"
            return JSONResponse(body, status_code=503)
    return JSONResponse(body)


async def api_history(request: Request) -> Response:
    live = _state(request).live
    if live is None or live.history is None:
        return JSONResponse({"error": "no history: the live loop is not running here, or web.history_minutes is 0"},
                            status_code=404)
    raw = request.query_params.get("minutes", "10")
    try:
        minutes = float(raw)
        if not 0 < minutes <= live.history.size / 60:
            raise ValueError
    except ValueError:
        return JSONResponse({"error": f"minutes={raw!r}: give a number of minutes from 1 to "
                                      f"{live.history.size // 60} (web.history_minutes)"}, status_code=400)
    return JSONResponse(live.history_series(int(minutes * 60)))


async def metrics(request: Request) -> Response:
    st = _state(request)
    live = st.live
    if live is not None:
        result, fps, _ = live.snapshot()
        text = prom.render(live.metrics_snapshot(), fps, len(result.faces) if result else 0,
                           st.uptime(), live.watchers, st.predictions, live.jpeg_encodes)
    else:
        text = prom.render(None, 0.0, 0, st.uptime(), 0, st.predictions)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


async def stream(request: Request) -> Response:
    st = _state(request)
    if st.broadcaster is None:
        return _no_live()
    return StreamingResponse(st.broadcaster.frames(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}")


async def predict(request: Request) -> Response:
    st = _state(request)
    if st.analyzer is None:
        return JSONResponse({"error": "no model loaded: start with --model PATH"}, status_code=503)
    refused = cross_site(request)
    if refused:
        return JSONResponse({"error": refused}, status_code=403)
    busy = JSONResponse({"error": "busy: other photos are being analysed; try again in a second"},
                        status_code=503, headers={"Retry-After": "1"})
    if not st.bodies.acquire(blocking=False):
        return busy
    try:
        try:                                          # the body first, within its deadline ...
            data, filename = await read_image_field(request, st.max_bytes, st.body_timeout_s)
        except UploadError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        if not st.slots.acquire(blocking=False):      # ... then a decode and analysis slot
            return busy
        try:
            try:
                image = await run_in_threadpool(decode_image, data, filename, st.max_mp)
            except UploadError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status)
            del data
            faces, jpeg = await run_in_threadpool(st.analyze, image)
        finally:
            st.slots.release()
    finally:
        st.bodies.release()
    return JSONResponse({"width": int(image.shape[1]), "height": int(image.shape[0]),
                         "faces": [face_json(f, st.labels) for f in faces],
                         "annotated_jpeg_base64": base64.b64encode(jpeg).decode("ascii")})


ROUTES = (
    Route("/", index), Route("/upload", upload_page),
    Route("/stream.mjpg", stream), Route("/api/latest", api_latest), Route("/api/health", api_health),
    Route("/metrics", metrics), Route("/api/predict", predict, methods=["POST"]),
    Route("/api/history", api_history),
)


def create_app(cfg: Config, live: RecentResults | None, analyzer: Analyzer | None, loopback_only: bool = False) -> Starlette:
    """The ASGI app (token check included). ``analyzer`` may be None: then /api/predict answers 503.
    ``loopback_only`` (a server bound to loopback): requests must name 127.0.0.1, localhost or [::1].
    The handlers find the shared WebState as ``request.app.state.web``."""
    st = WebState(cfg, live, analyzer)
    app = Starlette(routes=list(ROUTES))
    app.state.web = st
    app.add_middleware(TokenAuth, token=cfg.web.token, policy=pages.content_security_policy(st.pages))
    if loopback_only:
        app.add_middleware(LoopbackHosts)
    return app
