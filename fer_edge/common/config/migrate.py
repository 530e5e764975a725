"""Move keys that moved (``MOVED``) in a config file to their new place, keeping the file's comments.

An edited config.yaml from an older version (e.g. the flat ``edge.detector.profile`` of before the
detector plugins) is refused by this version, naming the new key; ``migrate_file`` rewrites it. The
lines move as they are, comments included, into the new sub-section (added at the end of its section
when absent). When the file's layout defeats that (flow style, odd indentation), the file is written
again from its values, without comments. Either way the result is checked to hold the same values."""
from __future__ import annotations

import copy
import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from fer_edge.common.config.fields import ConfigError
from fer_edge.common.config.load import read_yaml
from fer_edge.common.config.schema import MOVED

KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+)\s*:(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_key_line(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith("#")


def _key(line: str) -> str | None:
    m = KEY.match(line)
    return m.group(2) if m else None


def _value(line: str) -> str:
    """What follows the key's colon on its line, comment left out."""
    m = KEY.match(line)
    return m.group(3).split("#")[0].strip() if m else ""


def _block(lines: list[str], path: str) -> tuple[int, int, int] | None:
    """(first line, end, children's indent) of the block-style section at ``path``; None if not found."""
    start, end, indent = 0, len(lines), 0
    for part in path.split("."):
        found = next((i for i in range(start, end) if _is_key_line(lines[i]) and _indent(lines[i]) == indent
                      and _key(lines[i]) == part), None)
        if found is None or _value(lines[found]):
            return None                                   # absent, or a flow-style / scalar value
        start, end = found + 1, found + 1
        while end < len(lines) and (not _is_key_line(lines[end]) or _indent(lines[end]) > indent):
            end += 1
        children = [_indent(lines[i]) for i in range(start, end) if _is_key_line(lines[i])]
        if not children:
            return None
        indent = children[0]
    return start, end, indent


def _entry(lines: list[str], i: int, end: int) -> int:
    """The end of the entry starting at line ``i`` (its continuation lines are indented deeper)."""
    j, own = i + 1, _indent(lines[i])
    while j < end and (not lines[j].strip() or _indent(lines[j]) > own) and not lines[j].lstrip().startswith("#"):
        j += 1
    while j > i + 1 and not lines[j - 1].strip():
        j -= 1
    return j


def _moves(raw: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """{parent path: {new sub-section: [keys]}} of the moved keys ``raw`` holds."""
    out: dict[str, dict[str, list[str]]] = {}
    for old, new in MOVED.items():
        parent, key = old.rsplit(".", 1)
        node: Any = raw
        for part in parent.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node:
            out.setdefault(parent, {}).setdefault(new.split(".")[-2], []).append(key)
    return out


def migrated_values(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with every moved key in its new place; refuses a key set in both places."""
    out = copy.deepcopy(raw)
    for parent, sections in _moves(raw).items():
        node = out
        for part in parent.split("."):
            node = node[part]
        for sub, keys in sections.items():
            own = node.setdefault(sub, {})
            if not isinstance(own, dict):
                raise ConfigError(f"config key '{parent}.{sub}' must be a mapping")
            for key in keys:
                if key in own:
                    raise ConfigError(f"config key '{parent}.{key}' is now '{parent}.{sub}.{key}', and both are "
                                      "set: keep one")
                own[key] = node.pop(key)
    return out


def _move_lines(lines: list[str], parent: str, sections: dict[str, list[str]]) -> list[str] | None:
    found = _block(lines, parent)
    if found is None:
        return None
    start, end, indent = found
    taken: dict[str, list[str]] = {}
    keep = list(lines[:start])
    i = start
    while i < end:
        key = _key(lines[i]) if _is_key_line(lines[i]) and _indent(lines[i]) == indent else None
        j = _entry(lines, i, end) if key else i + 1
        sub = next((s for s, keys in sections.items() if key in keys), None)
        (taken.setdefault(sub, []) if sub else keep).extend(lines[i:j])
        i = j
    body, rest = keep[start:], lines[end:]
    for sub, moved in taken.items():
        body = _insert(body, sub, moved, indent)
    return keep[:start] + body + rest


def _insert(body: list[str], sub: str, moved: list[str], indent: int) -> list[str]:
    """``moved`` lines (at ``indent``) into sub-section ``sub`` of a section's ``body``, made when absent."""
    at = next((i for i, line in enumerate(body) if _is_key_line(line) and _indent(line) == indent
               and _key(line) == sub), None)
    if at is None:
        last = max((i for i, line in enumerate(body) if line.strip()), default=-1) + 1
        return body[:last] + [" " * indent + f"{sub}:\n"] + [" " * 2 + line for line in moved] + body[last:]
    end = at + 1
    while end < len(body) and (not _is_key_line(body[end]) or _indent(body[end]) > indent):
        end += 1
    children = [_indent(line) for line in body[at + 1:end] if _is_key_line(line)]
    shift = (children[0] if children else indent + 2) - indent
    while end > at + 1 and not body[end - 1].strip():
        end -= 1
    return body[:end] + [" " * shift + line for line in moved] + body[end:]


def migrate_text(text: str, raw: dict[str, Any]) -> tuple[str, bool]:
    """The file's text with the moved keys in their new place, and whether its comments were kept."""
    want = migrated_values(raw)
    lines = [line if line.endswith("\n") else line + "\n" for line in text.splitlines()]
    for parent, sections in _moves(raw).items():
        moved = _move_lines(lines, parent, sections)
        if moved is None:
            break
        lines = moved
    else:
        out = "".join(lines)
        try:
            if yaml.safe_load(out) == want:
                return out, True
        except yaml.YAMLError:
            pass
    return yaml.safe_dump(want, sort_keys=False), False


def migrate_file(path: Path, output: Path | None = None) -> str:
    """Rewrite ``path`` with its moved keys in their new place (the old file kept as ``path.bak``), or
    write the result to ``output`` instead. Returns what was done, in one line; raises ConfigError."""
    raw = read_yaml(path) or {}
    moves = _moves(raw)
    if not moves:
        return f"{path}: no moved keys, nothing to change"
    text, kept = migrate_text(path.read_text(encoding="utf-8"), raw)
    target = output or path
    if output is None:
        shutil.copy2(path, path.with_name(path.name + ".bak"))
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    shutil.copymode(path, tmp)
    os.replace(tmp, target)
    names = ", ".join(f"{parent}.{k} -> {parent}.{sub}.{k}" for parent, subs in moves.items()
                      for sub, keys in subs.items() for k in keys)
    how = "" if kept else " (its layout kept no comments: compare with the .bak)"
    where = f"{path}, written to {output}" if output else f"{path} (the file before: {path.name}.bak)"
    return f"moved {names} in {where}{how}"
