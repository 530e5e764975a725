"""fer-edge: train a facial-expression model on FER-2013, convert it to int8 TFLite, run it on the edge."""

from fer_edge.common import logs as _logs

__version__ = "0.9.0"          # the release: `fer-edge --version`, the edge's start line, the CSV log's run line

_logs.install()                # one line per diagnostic on stderr, whichever entry point or test imports us
