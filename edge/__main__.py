"""``python -m edge``: the edge runtime (see edge/app.py)."""
import sys

from edge.app import main

sys.exit(main())
