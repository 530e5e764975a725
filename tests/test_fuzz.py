"""Seeded fuzzing of every parser that reads untrusted bytes: the image header parsers (uploads, image
files and folders) and the report's reader of log files (lines, CSV rows, gzip). Each runs in a child process with a deadline,
because a parser that backtracks in the regex engine holds the GIL: a thread could not time it out.

``make test`` fuzzes for a few seconds; ``make fuzz`` (FUZZ_SECONDS=120) for longer. A failure
prints the seed and the input that broke it.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import cv2
import numpy as np

from tests.edge_support import ROOT

SECONDS = float(os.environ.get("FUZZ_SECONDS", "3"))
SLOW_CALL_S = 0.5       # one parse of at most 1 MB taking longer than this is a hang in the making

# Tokens each format's header is made of, repeated to provoke backtracking and long scans.
TOKENS = [b" ", b"\t", b"\n", b"#", b"#\n", b"0", b"9", b"\xff", b"\xff\xd8", b"\x00", b"x", b"P6", b",", b'"']


def adversarial() -> list[bytes]:
    """Inputs known to hurt naive parsers: the PNM pattern that backtracked exponentially, and long
    runs of every separator after every magic."""
    out = [b"P6" + b" " * 40 + b"x", b"P6" + b" " * 1000 + b"x", b"P6" + b"#\n" * 500 + b"x",
           b"P6 " + b"9" * 900 + b"x", b"P3" + b" \n" * 400 + b"1" + b" " * 200 + b"x"]
    magics = [b"P1", b"P5", b"P6", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP", b"BM",
              b"GIF89a", b"II*\x00", b"MM\x00*"]
    for m in magics:
        for t in TOKENS:
            out += [m + t * 60 + b"x", m + t * 5000]
    out.append(b"\xff\xd8\xff" + b"\xff" * (1 << 20))                # JPEG fill bytes to the end of the header
    out.append(b"II*\x00\x08\x00\x00\x00\xff\xff" + b"\x00" * 100)   # TIFF: 65535 directory entries declared
    return out


def samples() -> list[bytes]:
    img = np.random.default_rng(0).integers(0, 255, (23, 31, 3), np.uint8)
    out = [cv2.imencode(ext, img if ext not in (".pgm", ".pbm") else img[:, :, 0])[1].tobytes()[:2048]
           for ext in (".jpg", ".png", ".webp", ".bmp", ".tif", ".ppm", ".pgm", ".pbm")]
    out.append(b"GIF89a\x1f\x00\x17\x00")
    out.append(b"P2\n# a comment\n31 23\n255\n")
    return out


def report_rows():
    """The report's reader (bounded lines, CSV, row parser, gzip) on a log file holding the input;
    base inputs: a good log, plain and gzipped."""
    import atexit
    import gzip
    import shutil
    import tempfile
    from pathlib import Path

    from fer_edge.tools.report.read import Report
    from fer_edge.tools.report.rows import ReportError
    from tests.test_report_hostile import HEADER, LABELS, rows
    folder = Path(tempfile.mkdtemp(prefix="fuzz-report-"))
    atexit.register(shutil.rmtree, folder, True)
    good = (HEADER + rows(30)).encode()

    def check(b: bytes) -> None:
        path = folder / ("emotions.csv.1.gz" if b[:2] == b"\x1f\x8b" else "emotions.csv")
        path.write_bytes(b)
        rep = Report(LABELS, 60.0, 120.0, [path])
        try:
            rep.read(None, None)
        except ReportError:
            return                                          # another header: refused in one line
        if path.suffix != ".gz":                            # each counted row came from a line of its own
            assert rep.rows + rep.malformed + rep.outliers <= b.count(b"\n") + b.count(b"\r") + 1
        path.unlink()
    fixed = [HEADER.encode() + b"x" * 300_000, HEADER.encode() + b'"' * 100_000, HEADER.encode() + b"\x00" * 1000,
             gzip.compress(good)[:-9], b"\x1f\x8b" + good, HEADER.encode() + rows(1).replace("Z,", "-12:00,").encode()]
    return check, [good, gzip.compress(good)], fixed


def mutate(rng: random.Random, b: bytes) -> bytes:
    b = bytearray(b)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(4)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[pos:pos] = rng.choice(TOKENS) * rng.randint(1, 300)
        elif op == 2:
            del b[pos:pos + rng.randint(1, 16)]
        else:
            b = b[:pos]
    return bytes(b)


def fuzz(target: str, seconds: float, seed: int) -> None:
    """Run in the child: parse adversarial then mutated inputs for ``seconds``; raise on a wrong type,
    an exception, or one slow call."""
    rng = random.Random(seed)
    if target == "headers":
        from fer_edge.edge.imagesize import image_size

        def check(b: bytes) -> None:
            size = image_size(b)
            assert size is None or (len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size)), size
        base, fixed = samples(), adversarial()
    else:
        check, base, fixed = report_rows()
    deadline = time.monotonic() + seconds
    n, k = 0, 0
    while k < len(fixed) or time.monotonic() < deadline:
        b = fixed[k] if k < len(fixed) else mutate(rng, rng.choice(base))
        k += 1
        t0 = time.perf_counter()
        try:
            check(b)
        except Exception as exc:
            raise SystemExit(f"seed {seed}: {b[:200]!r}...: {type(exc).__name__}: {exc}") from None
        took = time.perf_counter() - t0
        if took > SLOW_CALL_S:
            raise SystemExit(f"seed {seed}: {took:.2f} s on {b[:200]!r}")
        n += 1
    print(f"{target}: {n} inputs")


def run_child(target: str) -> str:
    seed = int(os.environ.get("FUZZ_SEED", "0")) or random.SystemRandom().randrange(1, 1 << 30)
    code = f"from tests.test_fuzz import fuzz; fuzz({target!r}, {SECONDS}, {seed})"
    try:
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                           timeout=SECONDS + 60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{target}: the fuzzer hung (seed {seed}; FUZZ_SEED={seed} repeats it)") from None
    assert r.returncode == 0, f"FUZZ_SEED={seed}: {r.stderr[-2000:]}"
    return r.stdout


def test_every_image_header_parser_survives_adversarial_and_random_input():
    assert "inputs" in run_child("headers")



def test_the_report_row_parser_survives_adversarial_and_random_input():
    assert "inputs" in run_child("rows")
