"""What every detector backend shares: the interface, the registry, the start-up error, and box helpers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, TypeVar

import numpy as np

from fer_edge.common.config import F, Section, register_plugin
from fer_edge.edge.framing import FRAMINGS, Framing
from fer_edge.edge.types import Box, Detection


class DetectorError(ValueError):
    """A detector cannot be built (missing package, missing or altered model file); raised at start."""


class Detector(Protocol):
    backend: str
    max_faces: int

    def describe(self) -> str:
        """The backend as the start line names it, e.g. ``haar+profile``."""
        ...

    def detect(self, image: np.ndarray, thorough: bool = True) -> list[Detection]:
        """A full scan; without ``thorough`` a backend may leave its costliest part out."""
        ...

    def scan(self, image: np.ndarray) -> list[Detection]:
        """A full scan of the next video frame: the backend decides which scans are thorough."""
        ...

    def detect_near(self, image: np.ndarray, near: list[Box]) -> list[Detection]:
        """The cheap search near last frame's faces, between full scans."""
        ...


@dataclass(frozen=True)
class Backend:
    """A registered backend: its config section ``edge.detector.<name>`` and how it is built from
    the common keys (``DetectorConfig``), its own section (an instance of ``section``) and the
    interpreter threads."""
    name: str
    section: type[Section]
    build: Callable[[Any, Any, int], Detector]


BACKENDS: dict[str, Backend] = {}
T = TypeVar("T")


def register(name: str, schema: type[Section] | dict[str, F], framing: Framing | None = None) -> Callable[[T], T]:
    """Class decorator of a backend module: ``@register("haar", HaarConfig)`` on a class with
    ``from_config(common, own, threads)``. Adds ``edge.detector.<name>`` to the config: ``schema`` is
    its section, a frozen dataclass of ``setting``s (or ``{key: F(...)}`` to make one from). Adds
    ``framing`` (how its boxes map onto FER's face square) for the detections it names ``name``."""
    def add(cls: T) -> T:
        section = register_plugin("edge.detector", name, schema)
        BACKENDS[name] = Backend(name, section, getattr(cls, "from_config"))
        if framing is not None:
            FRAMINGS[name] = framing
        return cls
    return add


def overlap_small(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area (1.0 when one box lies inside the other)."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    small = min(a.area, b.area)
    return ix * iy / small if small > 0 else 0.0


def suppress_nested(dets: list[Detection], limit: int, max_overlap: float = 0.6) -> list[Detection]:
    """Keep detections in the given order of preference, without those that mostly lie inside one
    already kept; then the largest ``limit`` of them, largest first.

    Haar's neighbour grouping leaves a smaller duplicate inside a face now and then, and the frontal
    and profile cascades find the same half-turned face twice; logging it as a second person would be
    wrong."""
    keep: list[Detection] = []
    for d in dets:
        if all(overlap_small(d.box, k.box) < max_overlap for k in keep):
            keep.append(d)
    return sorted(keep, key=lambda d: d.box.area, reverse=True)[:limit]


def clip_box(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> Box | None:
    """Round and clip a float box to the frame; None when nothing of it is left."""
    bx0, by0 = max(0, int(round(x0))), max(0, int(round(y0)))
    bx1, by1 = min(w, int(round(x1))), min(h, int(round(y1)))
    if bx1 - bx0 < 2 or by1 - by0 < 2:
        return None
    return Box(bx0, by0, bx1 - bx0, by1 - by0)
