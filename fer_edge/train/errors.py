"""Errors of a training run that are not about the data (those are train.data.DataError)."""


class TrainError(ValueError):
    """A run cannot be started, resumed, extended or finished as asked; the message says what to do."""
