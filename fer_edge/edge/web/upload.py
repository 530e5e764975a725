"""Read an uploaded photo from a request, entirely in memory, with a size cap.

Starlette's ``request.form()`` spools file parts larger than 1 MB to a temporary file on disk.
Here the raw body is read by us (Content-Length checked first, then the streamed bytes counted),
and the multipart parser is given a spool limit above the body size, so nothing ever touches the
disk. Nothing from the request (file name, field names) is used as a path.
"""
from __future__ import annotations

import asyncio
import logging

import numpy as np
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from fer_edge.edge.imageread import as_bgr, decode
from fer_edge.edge.imagesize import ImageTooLarge

log = logging.getLogger(__name__)

FIELD = "image"
UPLOAD_MP = 12.0        # larger photos are analysed at a reduced size (faces stay far above the model's 48x48)


class UploadError(Exception):
    """A rejected upload: HTTP status and a message that says what to send instead."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


async def read_body(request: Request, max_bytes: int, timeout_s: float = 10.0) -> bytes:
    """The whole request body, or UploadError 413 as soon as it is known to exceed ``max_bytes``,
    408 when it has not arrived within ``timeout_s`` (a client trickling bytes holds nothing longer)."""
    too_big = UploadError(413, f"upload larger than the limit of {max_bytes / 2**20:g} MB (web.max_upload_mb); "
                               "send a smaller photo")
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise too_big
        except ValueError:
            raise UploadError(400, f"bad Content-Length header {declared[:40]!r}") from None
    chunks, total = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():     # a lying or absent Content-Length is caught here
                total += len(chunk)
                if total > max_bytes:
                    raise too_big
                chunks.append(chunk)
    except TimeoutError:
        raise UploadError(408, f"the upload did not arrive within {timeout_s:g} s (web.request_timeout_s; "
                               f"{total} bytes came): send it over a faster link or raise the limit") from None
    except ClientDisconnect:
        log.info(f"an upload was abandoned by the client after {total} bytes")
        raise UploadError(400, "the client disconnected during the upload") from None
    return b"".join(chunks)


async def _once(body: bytes):
    yield body


async def read_image_field(request: Request, max_bytes: int, timeout_s: float = 10.0) -> tuple[bytes, str]:
    """(raw bytes of the multipart field ``image``, its client file name for display only)."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise UploadError(415, f"expected multipart/form-data with the photo in field '{FIELD}', "
                               f"got Content-Type {ctype[:80]!r}")
    body = await read_body(request, max_bytes, timeout_s)
    parser = MultiPartParser(request.headers, _once(body), max_files=1, max_fields=16)
    parser.spool_max_size = len(body) + 1     # keep every part in memory: the body is already capped
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise UploadError(400, f"malformed multipart body: {exc}") from None
    part = form.get(FIELD)
    if part is None or isinstance(part, str):
        raise UploadError(400, f"no file in multipart field '{FIELD}'; send the photo as field '{FIELD}'")
    try:
        data = await part.read()
    finally:
        await part.close()
    return data, part.filename or ""


def decode_image(data: bytes, filename: str = "", max_mp: float = 40.0) -> np.ndarray:
    """Photo bytes -> BGR image, read as image files and folders are (imageread.decode: EXIF
    orientation, any depth), above UPLOAD_MP megapixels at 1/2, 1/4 or 1/8 of its size. Its size is read
    from the header first: UploadError 413 above ``max_mp`` megapixels (a decompression bomb never gets
    decoded), 415 for anything else that cannot be read."""
    name = f" ({filename[:80]!r})" if filename else ""
    try:
        return as_bgr(decode(data, f"the uploaded image{name}", max_mp, reduce_above_mp=UPLOAD_MP))
    except ImageTooLarge as exc:
        raise UploadError(413, str(exc)) from None
    except ValueError:
        raise UploadError(415, f"the uploaded file{name} is not an image this server can read: "
                               "send a JPEG, PNG, BMP, WebP or TIFF photo") from None
