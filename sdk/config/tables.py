"""Reading one table of the config file into a dataclass, strictly: every key must be a field,
every value of the field's type. A mistake is one ``ConfigError`` that names the file, the
table, the key and what the table takes, so ``[trust] verify_kye`` stops the camera at start
instead of running it unprotected.

Field metadata a section may set:
  ``"flag_only": "hint"``   the field comes from a flag or another table, never from this one
                             (the hint says where it goes instead);
  ``"relative_to_file"``    a path read relative to the config file's folder, not the working one;
  ``"reader"``              ``reader(value, file=..., name=...)`` reads the field's sub-table itself.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from ..errors import InputError

if typing.TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


class ConfigError(InputError):
    """The config file has a table, key or value MaskGate does not take."""


def file_keys(cls) -> list[str]:
    """The keys a table read into ``cls`` takes."""
    return [f.name for f in dataclasses.fields(cls) if "flag_only" not in f.metadata]


def read_table(cls: type[T], table: object, *, file: str, name: str, base: Path | None = None) -> T:
    """``cls`` from ``table`` (a TOML table); ``file`` and ``name`` (dotted: "turnstile.rules")
    say where it is in errors; ``base``: the folder that relative paths marked
    ``relative_to_file`` start from."""
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [{name}] must be a table, got {_shown(table)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        field = fields.get(key)
        if field is None or "flag_only" in field.metadata:
            moved = f" ({field.metadata['flag_only']})" if field is not None else ""
            raise ConfigError(f"{file}: [{name}] {key}: unknown key{moved}; [{name}] takes "
                              f"{', '.join(file_keys(cls)) or 'nothing'}")
        hint = hints[key]
        if "reader" in field.metadata:
            values[key] = field.metadata["reader"](value, file=file, name=f"{name}.{key}")
            continue
        if dataclasses.is_dataclass(hint) or dataclasses.is_dataclass(_optional(hint)):
            values[key] = None if value is None else read_table(_optional(hint) or hint, value, file=file,
                                                                 name=f"{name}.{key}", base=base)
            continue
        values[key] = convert(value, hint, where=f"{file}: [{name}] {key}",
                              base=base if field.metadata.get("relative_to_file") else None)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{file}: [{name}]: {exc}") from None


def _optional(hint: Any) -> Any:
    """X of ``X | None``, else None."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        return rest[0] if len(rest) == 1 else None
    return None


def convert(value: object, hint: Any, *, where: str, base: Path | None = None) -> Any:
    """``value`` as the annotated type ``hint``, or a ConfigError saying what was expected."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return convert(value, option, where=where, base=base)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else ConfigError(
            f"{where} = {_shown(value)}: expected {' or '.join(_expected(o) for o in options)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} = {_shown(value)}: expected one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {_shown(value)}: expected a list ({_expected(hint)})")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(v, args[0], where=f"{where}[{i}]", base=base) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where} = {_shown(value)}: expected {_expected(hint)}")
        return tuple(convert(v, a, where=f"{where}[{i}]", base=base) for i, (v, a) in enumerate(zip(value, args)))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {_shown(value)}: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {_shown(value)}: expected a whole number")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where} = {_shown(value)}: expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {_shown(value)}: expected a string")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} = {_shown(value)}: expected a path (a non-empty string)")
        path = Path(value).expanduser()
        return base / path if base is not None and not path.is_absolute() else path
    raise TypeError(f"{where}: no config reader for {hint!r}")  # a section declared a type this module lacks


def _expected(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return f"list of {_expected(args[0])}" if len(args) == 2 and args[1] is Ellipsis else \
            f"{len(args)} values"
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", Path: "a path"}
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if dataclasses.is_dataclass(hint):
        return "a table"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
