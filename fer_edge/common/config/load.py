"""Reading config.yaml: the file, overrides, validation and the typed ``Config``; where relative paths
point; the one-line exit on a bad config."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

from fer_edge.common.config.fields import ConfigError, build
from fer_edge.common.config.schema import Config
from fer_edge.common.config.validate import apply_overrides, validate, with_defaults
from fer_edge.common.yamlsafe import LimitedLoader, YamlLimit, short

PACKAGE_DIR = Path(__file__).resolve().parents[2]      # fer_edge/: in a checkout, or installed by pip


def _root() -> Path:
    """In a checkout or an installed service (config.yaml beside the package) relative paths are relative
    to that folder; a package installed by pip has none, so they are relative to the current directory."""
    checkout = PACKAGE_DIR.parent
    if (checkout / "config.yaml").is_file():
        return checkout
    return Path.cwd()


ROOT = _root()
DEFAULT_CONFIG = ROOT / "config.yaml"   # absent for an installed package run outside a checkout: the defaults apply


def config_help() -> str:
    """What --help says of --config: the checkout's config.yaml, or the current folder's outside one."""
    if ROOT == PACKAGE_DIR.parent:
        return f"config file (default: {DEFAULT_CONFIG})"
    return "config file (default: ./config.yaml when the current folder has one, else the built-in defaults)"


class _UniqueKeyLoader(LimitedLoader):
    """yaml.safe_load that refuses a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"config key {short(key)} appears twice (lines {seen[key] + 1} and "
                                  f"{key_node.start_mark.line + 1}): keep one")
            seen[key] = key_node.start_mark.line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep)
        return mapping


def from_mapping(raw: dict[str, Any], overrides: Iterable[str | tuple[str, Any]] = ()) -> Config:
    """A config from a plain mapping (e.g. ``defaults()`` changed) and overrides; raises ConfigError."""
    return build(Config, validate(apply_overrides(raw, overrides)))


def from_saved(saved: dict[str, Any]) -> Config:
    """A run's own saved config (config.yaml in its folder), which was checked when the run started:
    keys added since take their defaults, keys since removed or moved are left out."""
    return build(Config, with_defaults(saved), check=False)


def read_yaml(path: Path) -> Any:
    """A config file's YAML, every problem with it as a ConfigError naming the file."""
    if not path.is_file():
        raise ConfigError(f"config file {path} not found: pass --config PATH or copy config.yaml from the repository")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text (a binary file, or saved as UTF-16?): "
                          "save it as UTF-8 or copy config.yaml from the repository") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except YamlLimit as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())[:300]}") from None
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections (data:, train:, edge:, ...), "
                          f"got a YAML {type(raw).__name__}")
    return raw


def load_config(path: str | Path | None = None, overrides: Iterable[str | tuple[str, Any]] = ()) -> Config:
    """Read, override and validate a config file. Raises ConfigError naming the key and value."""
    if not path and not DEFAULT_CONFIG.is_file() and ROOT != PACKAGE_DIR.parent:
        return from_mapping({}, overrides)   # installed, no config.yaml: defaults
    path = Path(path) if path else DEFAULT_CONFIG
    raw = read_yaml(path)
    try:
        return from_mapping(raw or {}, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def resolve_path(p: str | Path, base: Path = ROOT) -> Path:
    """Relative paths in config are relative to the repository root (where config.yaml lives). A file
    the package ships (the default model and its contract, installed by pip) is found in the package
    when the repository (or the current directory) has no such file."""
    p = Path(p).expanduser()
    if p.is_absolute():
        return p
    shipped = PACKAGE_DIR / p
    return shipped if not (base / p).exists() and shipped.is_file() else base / p


def display_path(p: str | Path) -> str:
    """A path as recorded in reports and contracts: relative to the repository (or to the folder it
    sits in, as ``../shared/...``) when it lies there, so that files written here mean the same on
    another machine; otherwise absolute."""
    p = Path(os.path.abspath(Path(p).expanduser()))
    for base, prefix in ((ROOT, Path()), (ROOT.parent, Path(".."))):
        try:
            return str(prefix / p.relative_to(base))
        except ValueError:
            continue
    return str(p)


def exit_on_config_error(exc: ConfigError) -> None:
    """The config's one-line error, then exit 2."""
    logging.getLogger(__name__).error("%s", exc)
    sys.exit(2)
