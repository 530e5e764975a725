"""``python -m fer_edge.edge``: the edge runtime (see fer_edge/edge/app.py)."""
import sys

from fer_edge.edge.app import main

sys.exit(main())
