"""``python -m fer_edge.edge``: the edge runtime (see fer_edge/edge/cli.py)."""
import sys

from fer_edge.edge.cli import main

sys.exit(main())
