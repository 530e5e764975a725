"""``python -m fer_edge.edge``: the edge runtime (see fer_edge/edge/cli.py)."""
import sys

from fer_edge.edge.signals import hold_early

hold_early()                                     # first: a SIGTERM during the imports below is a clean stop

from fer_edge.edge.cli import main  # noqa: E402

sys.exit(main())
