"""Shared pieces every stage reads: labels, preprocessing, config, model contract."""

__version__ = "0.9.0"          # the release: `python -m edge --version`, the edge's start line
