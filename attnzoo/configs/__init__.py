"""Experiment configs: each `configs/<name>.py` defines `get_config(arg=None)`.

`load_config("NAME")`, `load_config("NAME:arg")` or `load_config("path/to/file.py[:arg]")`,
then `apply_overrides(config, {"train.steps": "10"})` with values parsed to the field's type.
"""

import ast
import difflib
import importlib.util
import os

import ml_collections

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))


class ConfigError(ValueError):
    """A config name, override key or override value is invalid."""


def list_configs() -> list[str]:
    """Names of the configs that ship in `attnzoo/configs/`."""
    return sorted(
        f[:-3] for f in os.listdir(CONFIG_DIR) if f.endswith(".py") and not f.startswith("_")
    )


def _closest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    return f"; closest: {', '.join(close)}" if close else ""


def config_path(name: str) -> str:
    """The file of config `name` (a shipped config name or a path to a .py file)."""
    if name.endswith(".py") or os.sep in name:
        if not os.path.isfile(name):
            raise ConfigError(f"config file {name!r} does not exist")
        if not name.endswith(".py"):
            raise ConfigError(
                f"--config={name!r} is not a config: give a name from --list or a .py file "
                "defining get_config()"
            )
        return name
    if name not in list_configs():
        raise ConfigError(
            f"unknown config {name!r}{_closest(name, list_configs())} "
            "(see `python -m attnzoo.train --list`)"
        )
    return os.path.join(CONFIG_DIR, f"{name}.py")


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads `NAME`, `NAME:arg`, `path.py` or `path.py:arg`."""
    name, _, arg = spec.partition(":")
    path = config_path(name)
    module_spec = importlib.util.spec_from_file_location(
        f"attnzoo_config_{os.path.basename(name)}", path
    )
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # a user's file: any error is a bad config, not a crash
        raise ConfigError(f"config file {path} failed to load: {_one_line(e)}") from None
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"config file {path} has no get_config(); it is not a config module")
    try:
        config = module.get_config(arg or None)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"config {spec!r}: get_config raised {_one_line(e)}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(
            f"config {spec!r}: get_config returned a {type(config).__name__}, "
            "not an ml_collections.ConfigDict"
        )
    return config


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _parse(key: str, raw: str, current):
    """`raw` converted to the type of the field's current value."""

    def bad(kind):
        return ConfigError(f"bad value for --config.{key}: {raw!r} is not {kind}")

    if isinstance(current, bool):
        low = raw.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise bad("a bool (true/false)")
    if isinstance(current, int):
        try:
            return int(raw)
        except ValueError:
            raise bad("an int") from None
    if isinstance(current, float):
        try:
            return float(raw)
        except ValueError:
            raise bad("a float") from None
    if isinstance(current, str):
        return raw
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        if current is None:
            return raw
        raise bad(f"a {type(current).__name__} literal") from None
    if isinstance(current, (tuple, list)):
        if not isinstance(value, (tuple, list)):
            raise bad(f"a {type(current).__name__}")
        return type(current)(value)
    return value


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str]) -> None:
    """Sets dotted keys (`train.steps`) from strings, typed like the existing field."""
    for key, raw in overrides.items():
        node, parts = config, key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                known = node.keys() if isinstance(node, ml_collections.ConfigDict) else []
                where = ".".join(parts[:i]) or "config"
                raise ConfigError(
                    f"unknown override --config.{key}: {where} has no field "
                    f"{part!r}{_closest(part, known)}"
                )
            if i < len(parts) - 1:
                node = node[part]
        if isinstance(node[parts[-1]], ml_collections.ConfigDict):
            raise ConfigError(f"--config.{key} is a section; override one of its fields")
        try:
            node[parts[-1]] = _parse(key, raw, node[parts[-1]])
        except TypeError as e:
            raise ConfigError(f"bad value for --config.{key}: {e}") from None
