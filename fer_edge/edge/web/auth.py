"""Token check and safety headers for every response, as plain ASGI middleware.

Plain ASGI (not BaseHTTPMiddleware) so MJPEG streams pass through untouched. With ``web.token``
set, every request must carry it as ``Authorization: Bearer <token>`` or ``?token=<token>`` (the
query form lets an <img> tag or a bookmarked page use it); the comparison is constant-time.
"""
from __future__ import annotations

import hmac
import json
from urllib.parse import parse_qs

# Sent with every response: no caching of live data, no token leaking through Referer, no framing, and
# no script or style at all (TokenAuth replaces the policy with one that admits the pages' own).
SAFETY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
]


def request_token(scope) -> str | None:
    """The token a request carries (Bearer header first, then ?token=), or None."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, cred = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and cred.strip():
                return cred.strip()
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


class LoopbackHosts:
    """ASGI middleware for a server bound to loopback: 403 unless the Host header names this machine.

    DNS rebinding points a web site's own name at 127.0.0.1, so a page the user opens becomes
    "same-origin" with this server; the Host header still carries that site's name."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope.get("headers", ())).get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in LOOPBACK_NAMES:
                body = json.dumps({"error": f"Host {host[:80]!r} refused: this server answers only to 127.0.0.1, "
                                            "localhost or [::1] (set web.host to serve other names)"}).encode()
                await send({"type": "http.response.start", "status": 403, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *SAFETY_HEADERS]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class TokenAuth:
    """ASGI middleware: 401 unless the request carries ``token`` (when one is configured); adds the
    safety headers, with ``policy`` as the Content-Security-Policy, to every response."""

    def __init__(self, app, token: str, policy: bytes):
        self.app = app
        self.token = token.encode("utf-8")
        self.headers = [(k, policy if k == b"content-security-policy" else v) for k, v in SAFETY_HEADERS]

    def _allowed(self, scope) -> bool:
        if not self.token:
            return True
        given = request_token(scope)
        return given is not None and hmac.compare_digest(given.encode("utf-8"), self.token)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *self.headers]}
            await send(message)

        if self._allowed(scope):
            await self.app(scope, receive, send_with_headers)
            return
        body = json.dumps({"error": "missing or wrong token: send 'Authorization: Bearer <web.token>' "
                                    "or add ?token=<web.token> to the URL"}).encode()
        await send_with_headers({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="fer-edge"')]})
        await send({"type": "http.response.body", "body": body})
