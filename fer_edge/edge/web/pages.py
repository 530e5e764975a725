"""The HTML pages, assembled once at start from assets/: each page gets the shared stylesheet and
its script inlined, so a page is one request (and works with ?token= without cookies or a CDN)."""
from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
PAGES = {"live": "live.js", "nolive": None, "upload": "upload.js"}


def load() -> dict[str, str]:
    """{page name: complete HTML}; read from the package, never from a request path."""
    style = (ASSETS / "style.css").read_text(encoding="utf-8")
    common = (ASSETS / "common.js").read_text(encoding="utf-8")
    out = {}
    for name, script in PAGES.items():
        html = (ASSETS / f"{name}.html").read_text(encoding="utf-8")
        js = common + ((ASSETS / script).read_text(encoding="utf-8") if script else "")
        out[name] = html.replace("/*STYLE*/", style).replace("/*SCRIPT*/", js)
    return out
