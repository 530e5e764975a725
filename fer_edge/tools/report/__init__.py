"""The emotion report of a CSV log (``fer-report``, ``python -m fer_edge.tools.report``): cli.py reads the
options and writes the report; rows.py reads a log's files and rows; read.py counts them (read.Report);
clock.py: the clock, time zone and period of its times; summary.py writes summary.md, plot.py the charts."""
