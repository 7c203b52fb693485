"""Sampler registry: names → sampler classes, plus prefixed factories (``diffusers:<Scheduler>``)."""

from __future__ import annotations

from collections.abc import Callable

from genlab.samplers.base import Sampler

__all__ = ["SAMPLERS", "available_samplers", "get_sampler", "register_prefix", "register_sampler"]

SAMPLERS: dict[str, type[Sampler]] = {}
_PREFIXES: dict[str, Callable[..., Sampler]] = {}


def register_sampler(cls: type[Sampler]) -> type[Sampler]:
    """Class decorator adding a finished sampler to the registry under ``cls.name``."""
    if cls.name in SAMPLERS and SAMPLERS[cls.name] is not cls:
        raise ValueError(f"sampler name {cls.name!r} is already registered by {SAMPLERS[cls.name].__name__}")
    SAMPLERS[cls.name] = cls
    return cls


def register_prefix(prefix: str, factory: Callable[..., Sampler]) -> None:
    """Register a factory for names ``"<prefix>:<rest>"`` (called as ``factory(rest, **kwargs)``)."""
    _PREFIXES[prefix] = factory


def available_samplers() -> list[str]:
    """Registered names (prefixed families shown as ``"<prefix>:<name>"``)."""
    return sorted(SAMPLERS) + [f"{p}:<name>" for p in sorted(_PREFIXES)]


def get_sampler(name: str | Sampler, **kwargs) -> Sampler:
    """Instantiate a sampler by name.

    Args:
        name: Registered name, ``"<prefix>:<rest>"``, or a :class:`Sampler` instance (returned as is).
        **kwargs: Constructor arguments.

    Returns:
        The sampler.
    """
    if isinstance(name, Sampler):
        if kwargs:
            raise ValueError("pass sampler options either to the instance or as keywords, not both")
        return name
    if not isinstance(name, str):
        raise TypeError(f"sampler must be a name or a Sampler, got {type(name).__name__}")
    if ":" in name:
        prefix, rest = name.split(":", 1)
        if prefix not in _PREFIXES:
            raise ValueError(f"unknown sampler prefix {prefix!r}; available: {sorted(_PREFIXES)}")
        return _PREFIXES[prefix](rest, **kwargs)
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; available: {available_samplers()}")
    try:
        return SAMPLERS[name](**kwargs)
    except TypeError as err:
        raise TypeError(f"bad options for sampler {name!r}: {err}") from None
