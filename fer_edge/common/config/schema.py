"""The whole config (``Config``), its plain schema for the validator (``SCHEMA``), the plugin points
whose plugins add sections of their own, and the keys that moved."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fer_edge.common.config.fields import (
    PLUGIN_TYPES,
    ConfigError,
    F,
    Section,
    schema_of,
    section,
    section_type,
)
from fer_edge.common.config.offline import ConvertConfig, DataConfig, TeacherConfig, TrainConfig
from fer_edge.common.config.service import EdgeConfig, MqttConfig, WebConfig


@dataclass(frozen=True)
class Config(Section):
    """Every setting of the project; config.yaml holds the same keys, commented."""
    data: DataConfig = section(DataConfig)
    train: TrainConfig = section(TrainConfig)
    teacher: TeacherConfig = section(TeacherConfig)
    convert: ConvertConfig = section(ConvertConfig)
    edge: EdgeConfig = section(EdgeConfig)
    web: WebConfig = section(WebConfig)
    mqtt: MqttConfig = section(MqttConfig)

    def check(self) -> None:
        if self.data.val_fraction == 0 and self.train.lr_schedule == "plateau":
            raise ConfigError("config key 'train.lr_schedule': 'plateau' reduces the LR when the validation loss "
                              "stalls, and data.val_fraction 0 (a final fit) leaves no validation split; "
                              "use lr_schedule cosine or a val_fraction above 0")


# Sections whose plugins declare sub-sections of their own, with the key that picks one: each module of
# fer_edge/edge/detect/ adds edge.detector.<backend> when imported (register_plugin). A process that never
# imports them (training, conversion) keeps those sub-sections as given, unchecked.
PLUGIN_POINTS: dict[str, str] = {}
# The plain schema the validator walks: {key: F | nested schema}, plugin sections added as they register.
SCHEMA: dict[str, Any] = schema_of(Config, points=PLUGIN_POINTS)
# Keys that moved, old path -> new path: the old one is refused with the new one named.
MOVED = {f"edge.detector.{k}": f"edge.detector.{b}.{k}" for b, keys in (
    ("haar", ("profile", "scale_factor", "min_neighbors", "profile_every")),
    ("blazeface", ("min_score", "model_dir"))) for k in keys}


def schema_at(where: str) -> dict[str, Any]:
    node = SCHEMA
    for part in where.split("."):
        node = node[part]
    return node


def register_plugin(where: str, name: str, schema: type[Section] | dict[str, F]) -> type[Section]:
    """Add plugin ``name``'s own section ``where.name`` (a Section class, or ``{key: F(...)}`` to make one
    from) and make ``name`` a choice of the key that picks one. Returns the section class."""
    kind = schema if isinstance(schema, type) else section_type(name, schema)
    node, key = schema_at(where), PLUGIN_POINTS[where]
    if name in node and name not in (node[key].choices or ()):
        raise ValueError(f"{where}.{name} is a setting already; a plugin cannot take that name")
    node[name] = schema_of(kind)
    node[key] = replace(node[key], choices=tuple(dict.fromkeys((*(node[key].choices or ()), name))))
    PLUGIN_TYPES.setdefault(where, {})[name] = kind
    return kind
