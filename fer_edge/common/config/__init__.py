"""Load and validate config.yaml once, at start.

Every setting of the project is a field of a frozen dataclass, one per section (``offline.py``:
data, train, teacher, convert; ``service.py``: edge, web, mqtt; ``schema.py``: the whole ``Config``),
with its type, default and range; rules across keys are each section's ``check``. ``load_config``
reads the YAML file, applies ``key.path=value`` overrides (from CLI flags or make variables), rejects
unknown keys, wrong types and out-of-range values with a ``ConfigError`` that names the key path and
the value, and returns the ``Config``: read it as ``cfg.edge.detector.min_size``. Entry points turn
a ConfigError into a message on stderr and exit code 2 (``exit_on_config_error``).
``python -m fer_edge.common.config --migrate FILE`` moves keys that moved (``MOVED``) in a file.
"""
from __future__ import annotations

from fer_edge.common.config.fields import PLUGIN_TYPES, ConfigError, F, Section, build, schema_of, setting
from fer_edge.common.config.load import (
    DEFAULT_CONFIG,
    PACKAGE_DIR,
    ROOT,
    config_help,
    display_path,
    exit_on_config_error,
    from_mapping,
    from_saved,
    load_config,
    resolve_path,
)
from fer_edge.common.config.offline import (
    AugmentConfig,
    ConvertConfig,
    DataConfig,
    TeacherConfig,
    TrainConfig,
)
from fer_edge.common.config.schema import MOVED, PLUGIN_POINTS, SCHEMA, Config, register_plugin
from fer_edge.common.config.service import (
    TOPIC_PREFIX,
    TOPIC_WORD,
    CameraConfig,
    CsvConfig,
    DetectorConfig,
    EdgeConfig,
    MqttConfig,
    MqttTlsConfig,
    SmoothingConfig,
    TrackingConfig,
    WebConfig,
)
from fer_edge.common.config.validate import (
    apply_overrides,
    defaults,
    parse_override,
    validate,
    with_defaults,
)

__all__ = [
    "AugmentConfig", "CameraConfig", "Config", "ConfigError", "ConvertConfig", "CsvConfig", "DataConfig",
    "DEFAULT_CONFIG", "DetectorConfig", "EdgeConfig", "F", "MOVED", "MqttConfig", "MqttTlsConfig",
    "PACKAGE_DIR", "PLUGIN_POINTS", "PLUGIN_TYPES", "ROOT", "SCHEMA", "Section", "SmoothingConfig",
    "TOPIC_PREFIX", "TOPIC_WORD", "TeacherConfig", "TrackingConfig", "TrainConfig", "WebConfig",
    "apply_overrides", "build", "config_help", "defaults", "display_path", "exit_on_config_error",
    "from_mapping", "from_saved", "load_config", "parse_override", "register_plugin", "resolve_path", "schema_of",
    "setting", "validate", "with_defaults",
]
