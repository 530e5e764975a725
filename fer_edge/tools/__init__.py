"""The offline tools, beside the edge service: the model check (``fer-check``, check.py) and the emotion
report of a CSV log (``fer-report``, report/)."""
