"""Validated TOML configuration: typed getters with errors that name file, table and key.

data = load_toml(path)
section = Section(data.get("gateway", {}), path, "gateway")
port = section.integer("port", 11112, low=1, high=65535)
section.done()   # unknown keys are errors: a typo never silently drops a setting
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pacsguard.core.errors import PacsguardError

_MISSING: Any = object()


class ConfigError(PacsguardError):
    """A configuration file is missing, unreadable or holds a bad value."""


def load_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"configuration file {path} cannot be read ({type(exc).__name__})"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


class Section:
    """One TOML table; every getter records the key as known, ``done()`` rejects the rest."""

    def __init__(self, data: Any, file: Path, where: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: [{where}] must be a table")
        self.data, self.file, self.where = data, file, where
        self._known: set[str] = set()

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.file}: [{self.where}] {key}: {message}")

    def _get(self, key: str, default: Any) -> Any:
        self._known.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise self.error(key, "is required")
        return default

    def has(self, key: str) -> bool:
        return key in self.data

    def string(self, key: str, default: Any = _MISSING, *, choices: Sequence[str] = ()) -> Any:
        value = self._get(key, default)
        if value is None or value is default:
            return value
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "must be a non-empty string")
        if choices and value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)} (got {value!r})")
        return value

    def ae_title(self, key: str, default: Any = _MISSING) -> Any:
        value = self.string(key, default)
        if value is None or value is default:
            return value
        if len(value) > 16 or not value.isascii() or "\\" in value or not value.isprintable():
            raise self.error(key, "must be an AE title: 1-16 printable ASCII characters, no '\\'")
        return value.strip()

    def integer(
        self, key: str, default: Any = _MISSING, *, low: int | None = None, high: int | None = None
    ) -> Any:
        value = self._get(key, default)
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "must be an integer")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(key, f"must be between {low} and {high} (got {value})")
        return value

    def number(self, key: str, default: Any = _MISSING, *, low: float = 0.0) -> Any:
        value = self._get(key, default)
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, "must be a number")
        if value < low:
            raise self.error(key, f"must be at least {low} (got {value})")
        return float(value)

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def strings(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is None:
            return value
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, "must be a list of non-empty strings")
        return list(value)

    def path(self, key: str, default: Any = _MISSING) -> Any:
        """A path; relative ones are taken from the configuration file's folder."""
        value = self.string(key, default)
        if value is None or value is default:
            return value
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.file.parent / path)

    def table(self, key: str) -> Section:
        value = self._get(key, {})
        return Section(value, self.file, f"{self.where}.{key}" if self.where else key)

    def tables(self, key: str) -> list[Section]:
        value = self._get(key, [])
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            raise self.error(key, "must be an array of tables ([[...]])")
        name = f"{self.where}.{key}" if self.where else key
        return [Section(item, self.file, f"{name} #{n + 1}") for n, item in enumerate(value)]

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._known)
        if unknown:
            raise ConfigError(f"{self.file}: [{self.where}] unknown key(s): {', '.join(unknown)}")
