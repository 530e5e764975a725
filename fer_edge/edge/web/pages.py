"""The HTML pages, assembled once at start from assets/: each page gets the shared stylesheet and
its script inlined, so a page is one request (and works with ?token= without cookies or a CDN), its
script preceded by the emotion palette (common/palette.py); and the Content-Security-Policy that lets
exactly those inline blocks run, by their SHA-256."""
from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fer_edge.common import palette

ASSETS = Path(__file__).resolve().parent / "assets"
PAGES = {"live": "live.js", "nolive": None, "upload": "upload.js"}


def load() -> dict[str, str]:
    """{page name: complete HTML}; read from the package, never from a request path."""
    style = (ASSETS / "style.css").read_text(encoding="utf-8")
    common = '"use strict";\n' + palette.script() + (ASSETS / "common.js").read_text(encoding="utf-8")
    out = {}
    for name, script in PAGES.items():
        html = (ASSETS / f"{name}.html").read_text(encoding="utf-8")
        js = common + ((ASSETS / script).read_text(encoding="utf-8") if script else "")
        out[name] = html.replace("/*STYLE*/", style).replace("/*SCRIPT*/", js)
    return out


INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


def _source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(pages: dict[str, str]) -> bytes:
    """The policy sent with every response: the pages' own <script> and <style> blocks by hash (no other
    inline code runs, so injected markup cannot), everything else only from this server."""
    allowed: dict[str, set[str]] = {"script": set(), "style": set()}
    for html in pages.values():
        for kind, body in INLINE.findall(html):
            allowed[kind].add(_source(body))
    script, style = (" ".join(sorted(allowed[k])) or "'none'" for k in ("script", "style"))
    return (f"default-src 'none'; script-src {script}; style-src {style}; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'").encode("ascii")
