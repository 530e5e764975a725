"""fer-edge: train a facial-expression model on FER-2013, convert it to int8 TFLite, run it on the edge."""

__version__ = "0.9.0"          # the release: `fer-edge --version`, the edge's start line, the CSV log's run line
