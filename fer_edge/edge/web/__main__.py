"""`python -m fer_edge.edge.web` (`fer-web`, `make web`): the photo upload page and API alone, without a camera."""
from __future__ import annotations

import argparse
import logging
import sys

from fer_edge import __version__
from fer_edge.common.config import ConfigError, config_help, exit_on_config_error, load_config
from fer_edge.common.invocation import prog

log = logging.getLogger(__name__)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog=prog("web"),
                                 description="Serve the photo upload page and API (no camera, no live stream).")
    ap.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    ap.add_argument("--config", default=None, help=config_help())
    ap.add_argument("--model", help="int8 .tflite with its contract .json next to it (default: edge.model)")
    ap.add_argument("--host", help="bind address (default: web.host)")
    ap.add_argument("--port", type=int, help="port (default: web.port)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    args = ap.parse_args(argv)
    overrides = list(args.set)
    overrides += [("edge.model", args.model)] if args.model else []
    overrides += [("web.host", args.host)] if args.host else []
    overrides += [("web.port", args.port)] if args.port is not None else []
    import fer_edge.edge.detect  # noqa: F401 (its backends add their config sections, edge.detector.<backend>)
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        exit_on_config_error(exc)

    # Imported after the config check so a typo is reported without loading TFLite first.
    from fer_edge.edge.pipeline import Pipeline
    from fer_edge.edge.web.server import WebError, WebServer

    try:
        analyzer = Pipeline.from_config(cfg)
    except (ValueError, OSError) as exc:     # ContractError, ModelMismatchError, DetectorError are ValueErrors
        log.error("%s", exc)
        return 2
    try:
        server = WebServer(cfg, None, analyzer)
    except WebError as exc:
        log.error("%s", exc)
        return 2
    token = " (token required)" if cfg.web.token else ""
    print(f"serving the upload page on {server.url}upload{token}; no live stream. Ctrl+C stops.", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
