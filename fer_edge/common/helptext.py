"""The description a command's ``--help`` shows: the first paragraph of its module's docstring."""
from __future__ import annotations


def summary(doc: str | None) -> str:
    """The first paragraph of ``doc`` on one line, with reStructuredText's ``double backticks`` as single ones."""
    first = (doc or "").strip().split("\n\n", 1)[0]
    return " ".join(first.split()).replace("``", "`")
