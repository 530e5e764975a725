"""``python -m fer_edge.common.config --migrate FILE [--output OUT]``: move the keys that moved in a
config file to their new place (see migrate.py); exit 0 when done or nothing was to do, 2 on a bad file."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer_edge.common.config.fields import ConfigError
from fer_edge.common.config.migrate import migrate_file


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_edge.common.config",
                                 description="Move the keys that moved in a config file to their new place, "
                                             "keeping its comments; the old file is kept as FILE.bak.")
    ap.add_argument("--migrate", type=Path, required=True, metavar="FILE", help="the config file to rewrite")
    ap.add_argument("--output", type=Path, metavar="OUT",
                    help="write the result here instead (no .bak; nothing is written when nothing moved)")
    args = ap.parse_args(argv)
    try:
        print(migrate_file(args.migrate, args.output))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {args.output or args.migrate}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
