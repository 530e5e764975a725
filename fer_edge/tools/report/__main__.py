"""``python -m fer_edge.tools.report LOG``: see cli.py."""
import sys

from fer_edge.tools.report.cli import main

sys.exit(main())
