"""YAML for config files written by people, read without surprises: a bounded number of aliases
(a 400-byte "billion laughs" file expands to a billion values once anything walks it), a bounded
nesting depth (``[`` x 5000 overflows the parser's recursion), and values shown in messages cut to a
readable length."""
from __future__ import annotations

import reprlib

import yaml
from yaml.events import AliasEvent

MAX_ALIASES = 64        # config.yaml uses none; a hand-written file a few
MAX_DEPTH = 64          # config.yaml nests 4 deep

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 6
_short.maxlevel = 3


def short(value: object) -> str:
    """``repr(value)`` cut to about 80 characters, in bounded time and memory whatever the value."""
    return _short.repr(value)


def clip(text: str, n: int = 120) -> str:
    """``text`` as it is when short, else its first ``n`` characters and an ellipsis."""
    return text if len(text) <= n else text[:n] + "..."


class YamlLimit(ValueError):
    """The YAML text passes a limit: too many aliases or too deep."""


class LimitedLoader(yaml.SafeLoader):
    """yaml.SafeLoader with MAX_ALIASES and MAX_DEPTH."""

    def __init__(self, stream: object) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise YamlLimit(f"more than {MAX_ALIASES} aliases (*name), at line {mark.line + 1}: "
                                "a config needs none; write the values out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlLimit(f"nested more than {MAX_DEPTH} levels deep, at line {mark.line + 1}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
