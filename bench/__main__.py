"""Run the benchmarks and rewrite BENCHMARKS.md: ``python -m bench [--only NAME ...]``.

Each ``bench/bench_<name>.py`` exposes ``TITLE`` and ``run() -> str`` (a markdown section with
measured numbers). Sections of benchmarks not run this time are kept from the previous file, and so are
those of benchmarks that could not measure here (their text starts with "Not measured": ../shared or a
tool missing): the committed figures stay, and the run says which sections it skipped.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import platform
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "BENCHMARKS.md"
MARK = "<!-- bench:{} -->"
SKIPPED = "Not measured"


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"<!-- bench:([a-z_]+) -->\n", text)
    return {parts[i]: parts[i + 1].rstrip() + "\n" for i in range(1, len(parts) - 1, 2)}


def _write(sections: dict[str, str]) -> None:
    head = ("# Benchmarks\n\nAll figures are measured by `make bench` (`python -m bench`) on the machine named in each "
            "section; nothing here is typed by hand. Re-run to refresh a section.\n\n")
    OUT.write_text(head + "\n".join(MARK.format(k) + "\n" + v for k, v in sorted(sections.items())))


def main(argv=None) -> int:
    names = sorted(m.name[6:] for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--only", nargs="*", choices=names, help="run only these benchmarks")
    args = ap.parse_args(argv)
    old = _sections(OUT.read_text()) if OUT.is_file() else {}
    new = dict(old)
    skipped = []
    for name in args.only or names:
        mod = importlib.import_module(f"bench.bench_{name}")
        print(f"== bench {name}: {mod.TITLE}", flush=True)
        t0 = time.time()
        body = mod.run()
        if body.startswith(SKIPPED) and name in old:
            print(f"   skipped, the committed section is kept: {body.strip()}", flush=True)
            skipped.append(name)
            continue
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        new[name] = (f"## {mod.TITLE}\n\n_Measured {stamp} on {platform.machine()}, {platform.python_version()}, "
                     f"in {time.time() - t0:.0f} s. Reproduce: `make bench ARGS=\"--only {name}\"`._\n\n{body.rstrip()}\n")
        print(body, flush=True)
        _write(new)                 # after each section: a later benchmark that fails keeps what was measured
    _write(new)
    print(f"wrote {OUT}" + (f" (kept the sections of {', '.join(skipped)}: not measured here)" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
