"""Strict dataclass configs: load from YAML/dicts, dotted ``--set`` overrides, dump back to plain YAML.

A config schema is a tree of ``@dataclass`` classes with type-annotated fields. :func:`from_dict` builds it
from a plain mapping and refuses anything it cannot place: an unknown key is an error naming the key and the
allowed ones, a value of the wrong type is an error naming the key, the value and the expected type. A
dataclass that sets the class attribute ``__extra_field__ = "kwargs"`` instead collects unknown keys into that
(dict) field: the "name + constructor arguments" sections (``model: {name: mlp, hidden: 128}``) use this, and
the owner of the schema checks those arguments against the constructor it calls.

Overrides are ``"a.b.c=value"`` strings; the value is parsed with ``yaml.safe_load`` (so ``true``, ``3``,
``[32, 64]``, ``{k: v}`` and ``null`` work). YAML 1.1 reads ``1e-3`` as a string; a string in float scientific
notation is accepted where a float is expected.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

__all__ = [
    "ConfigError",
    "apply_overrides",
    "dump_yaml",
    "from_dict",
    "load_yaml",
    "parse_override",
    "to_dict",
]

T = TypeVar("T")

_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|nan)$", re.IGNORECASE)


class ConfigError(ValueError):
    """A config key or value that does not fit the schema (the message names the key and the fix)."""


def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp) if a is not Ellipsis)
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it (converted where lossless)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if not any(type(value) is type(a) and value == a for a in allowed):
            raise ConfigError(f"{where}: {value!r} is not allowed; choose one of {list(allowed)}")
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: null is not allowed; expected {_type_name(tp)}")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        if len(errors) == 1:
            raise ConfigError(errors[0])
        raise ConfigError(f"{where}: {value!r} does not fit {_type_name(tp)}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, path=where)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list ({_type_name(tp)}), got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items ({_type_name(tp)}), got {value!r}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        args = typing.get_args(tp)
        val_tp = args[1] if len(args) == 2 else Any
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _convert(v, val_tp, _where(where, k))
        return out
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, path: str = "") -> T:
    """Build the dataclass ``cls`` from a plain mapping, strictly.

    Missing keys take the field defaults; nested dataclass fields are built recursively.

    Args:
        cls: A dataclass type.
        data: Mapping of field names to values (``None`` means "all defaults").
        path: Dotted location of this mapping, used in error messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: On unknown keys (the message lists the allowed ones), wrong types or missing required
            keys.
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"from_dict: cls must be a dataclass type, got {cls!r}")
    where = path or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    extra_field = getattr(cls, "__extra_field__", None)
    kwargs: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where}: keys must be strings, got {key!r}")
        if key in fields and key != extra_field:
            kwargs[key] = _convert(value, hints[key], _where(path, key))
        elif extra_field is not None:
            extras[key] = value
        else:
            allowed = [k for k in fields]
            raise ConfigError(f"unknown key {_where(path, key)!r}; allowed keys: {allowed}")
    if extra_field is not None:
        if extra_field in data:
            nested = data[extra_field]
            if not isinstance(nested, Mapping):
                raise ConfigError(f"{_where(path, extra_field)}: expected a mapping, got {nested!r}")
            clash = sorted(set(nested) & set(extras))
            if clash:
                raise ConfigError(f"{where}: {clash} given both inline and under {extra_field!r}")
            extras = {**nested, **extras}
        kwargs[extra_field] = dict(extras)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {[_where(path, m) for m in missing]}")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(path)
    return obj


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """The plain (YAML/JSON-serialisable) dict of a config dataclass; ``__extra_field__`` entries are inlined.

    Args:
        obj: A dataclass instance built by :func:`from_dict` (or by hand).

    Returns:
        Nested dicts, lists and scalars only; ``from_dict(type(obj), to_dict(obj)) == obj``.
    """
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
        raise TypeError(f"to_dict: expected a dataclass instance, got {type(obj).__name__}")
    extra_field = getattr(type(obj), "__extra_field__", None)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name == extra_field:
            for k, v in value.items():
                out[k] = _plain(v)
        else:
            out[f.name] = _plain(value)
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``"a.b.c=value"`` into ``(["a", "b", "c"], yaml.safe_load(value))``.

    Args:
        item: The override string.

    Returns:
        The key path and the parsed value.

    Raises:
        ConfigError: Without ``=`` or with an empty key.
    """
    import yaml

    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value (e.g. train.lr=1e-3)")
    key, raw = item.split("=", 1)
    keys = [k.strip() for k in key.strip().split(".")]
    if not keys or any(not k for k in keys):
        raise ConfigError(f"override {item!r} has an empty key; write key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({err})") from None
    return keys, value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a deep copy of ``data`` with dotted overrides applied (intermediate mappings are created).

    Args:
        data: Plain nested mapping (e.g. a loaded YAML file).
        overrides: Strings ``"a.b=value"``; later ones win.

    Returns:
        The updated copy. Unknown keys are kept and reported later by :func:`from_dict`.

    Raises:
        ConfigError: If an override walks into a value that is not a mapping.
    """
    out = _plain(dict(data))
    for item in overrides:
        keys, value = parse_override(item)
        node = out
        for i, k in enumerate(keys[:-1]):
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(
                    f"override {item!r}: {'.'.join(keys[: i + 1])!r} is {nxt!r}, not a section; cannot set "
                    f"{'.'.join(keys)!r}"
                )
            node = nxt
        node[keys[-1]] = value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load`` (an empty file is ``{}``).

    Args:
        path: The file.

    Returns:
        The mapping.

    Raises:
        FileNotFoundError: If the file does not exist.
        ConfigError: If the file is not a YAML mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def dump_yaml(data: Mapping[str, Any]) -> str:
    """Plain YAML text of a nested mapping (key order kept).

    Args:
        data: Mapping of plain values (see :func:`to_dict`).

    Returns:
        The YAML text.
    """
    import yaml

    return yaml.safe_dump(_plain(dict(data)), sort_keys=False, default_flow_style=None, width=110)
