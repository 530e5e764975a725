"""The two ways a conversion fails, mapped to exit codes by ``python -m fer_edge.convert``."""
from __future__ import annotations


class ConvertInputError(ValueError):
    """Bad input (Keras file, model shape, calibration data): exit code 2. The message names the
    file and says what to do."""


class ParityError(RuntimeError):
    """The converted model disagrees too much with the float model: exit code 1. Nothing is
    written to the output directory."""
