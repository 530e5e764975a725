"""How a config section is declared: a frozen dataclass whose fields carry their setting's spec.

``setting(type, default, min=, max=, choices=)`` declares one key, ``section(Cls)`` a nested section,
``plugins(key)`` the sub-sections that plugins register (``key`` picks one). ``schema_of`` turns a
section class into the plain schema the validator walks; ``build`` turns a validated mapping into the
section's value and runs each section's ``check`` (its rules across keys)."""
from __future__ import annotations

import copy
from dataclasses import MISSING, Field, dataclass, field, fields, make_dataclass
from typing import Any, TypeVar

SPEC, SECTION, PLUGINS = "fer_edge.config.spec", "fer_edge.config.section", "fer_edge.config.plugins"


class ConfigError(ValueError):
    """A config problem; the message names the key path, the value and what is allowed."""


@dataclass(frozen=True)
class F:
    """One setting: its type(s), default and allowed values."""
    type: type | tuple[type, ...]
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False

    def final(self, value: Any) -> Any:
        """A validated value as its section holds it: a number of a float key as a float, a list as a tuple."""
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, list):
            return tuple(value)
        return value


def spec_field(spec: F) -> Any:
    """The dataclass field of one setting."""
    default = spec.final(copy.deepcopy(spec.default))
    return field(default=default, metadata={SPEC: spec})


def setting(type_: type | tuple[type, ...], default: Any, *, min: float | None = None,
            max: float | None = None, choices: tuple[Any, ...] | None = None) -> Any:
    """One key of a section: its YAML type(s), default and allowed values (see ``F``). The field's
    annotation is the type the section holds (``final``)."""
    return spec_field(F(type_, default, min=min, max=max, choices=choices))


def section(cls: type[Section]) -> Any:
    """A nested section."""
    return field(default_factory=cls, metadata={SECTION: cls})


def plugins(key: str) -> Any:
    """The sub-sections of registered plugins, by name; the setting ``key`` of this section picks one."""
    return field(default_factory=dict, metadata={PLUGINS: key})


@dataclass(frozen=True)
class Section:
    """A config section: read its keys as attributes, e.g. ``cfg.edge.detector.min_size``."""

    def check(self) -> None:
        """Rules across this section's keys, and values a type alone cannot check; raises ConfigError."""

    def to_dict(self) -> dict[str, Any]:
        """The section as plain YAML-ready values, keys in declaration order (a run's saved config.yaml)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if PLUGINS in f.metadata:
                out.update({k: v.to_dict() if isinstance(v, Section) else copy.deepcopy(v) for k, v in value.items()})
            elif isinstance(value, Section):
                out[f.name] = value.to_dict()
            else:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


S = TypeVar("S", bound=Section)
# Plugin sections by plugin point ("edge.detector") and name, as plugins register them.
PLUGIN_TYPES: dict[str, dict[str, type[Section]]] = {}


def section_type(name: str, schema: dict[str, F]) -> type[Section]:
    """A section class made from a plugin's ``{key: F(...)}``."""
    made = make_dataclass(f"{name.title()}Config", [(k, Any, spec_field(spec)) for k, spec in schema.items()],
                          bases=(Section,), frozen=True)
    return made


def schema_of(cls: type[Section], where: str = "", points: dict[str, str] | None = None) -> dict[str, Any]:
    """The plain schema of a section class: ``{key: F | nested schema}``; plugin points go into ``points``."""
    out: dict[str, Any] = {}
    for f in fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        if SECTION in f.metadata:
            out[f.name] = schema_of(f.metadata[SECTION], path, points)
        elif PLUGINS in f.metadata:
            if points is not None:
                points[where] = f.metadata[PLUGINS]
        else:
            out[f.name] = f.metadata[SPEC]
    return out


def _own_names(cls: type[Section]) -> set[str]:
    return {f.name for f in fields(cls)}


def _value(f: Field[Any], cls: type[Section], raw: dict[str, Any], where: str, check: bool) -> Any:
    path = f"{where}.{f.name}" if where else f.name
    if SECTION in f.metadata:
        sub = raw.get(f.name)
        return build(f.metadata[SECTION], sub if isinstance(sub, dict) else {}, path, check)
    if PLUGINS in f.metadata:
        kinds, own = PLUGIN_TYPES.get(where, {}), _own_names(cls)
        return {k: build(kinds[k], v, f"{where}.{k}", check) if k in kinds else copy.deepcopy(v)
                for k, v in raw.items() if k not in own and isinstance(v, dict)}
    if f.name in raw:
        return f.metadata[SPEC].final(copy.deepcopy(raw[f.name]))
    return MISSING


def build(cls: type[S], raw: dict[str, Any], where: str = "", check: bool = True) -> S:
    """The value of section ``cls`` at ``where`` from a validated mapping; keys it lacks take their defaults,
    keys it does not know are left out. With ``check``, every section's own rules run (inner ones first)."""
    values = {f.name: _value(f, cls, raw, where, check) for f in fields(cls)}
    made = cls(**{k: v for k, v in values.items() if v is not MISSING})
    if check:
        made.check()
    return made
