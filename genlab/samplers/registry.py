"""Sampler registry: names → sampler classes, plus prefixed factories (``diffusers:<Scheduler>``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genlab.samplers.base import Sampler

__all__ = ["ALIASES", "SAMPLERS", "SamplerSupport", "available_samplers", "get_sampler", "register_prefix",
           "register_sampler", "resolve_name", "sampler_support"]

SAMPLERS: dict[str, type[Sampler]] = {}
_PREFIXES: dict[str, Callable[..., Sampler]] = {}

#: Names users type → the recommended registered variant (resolved by :func:`get_sampler`; an alias whose target is
#: not registered is ignored). ``deis``: DEIS-tAB (Zhang & Chen ICLR'23, the paper's best variant); ``dpm++``,
#: ``dpmpp``, ``dpm_solver``: DPM-Solver++(2M) (Lu et al. 2022: the recommended solver for guided and unguided
#: sampling); ``uni_pc``/``unipc_bh2``: UniPC with B(h) = e^h − 1 (Zhao et al. 2023).
ALIASES: dict[str, str] = {
    "deis": "deis_tab",
    "dpm++": "dpmpp_2m",
    "dpmpp": "dpmpp_2m",
    "dpm_solver": "dpmpp_2m",
    "dpm-solver": "dpmpp_2m",
    "dpm_solver++": "dpmpp_2m",
    "dpm-solver++": "dpmpp_2m",
    "uni_pc": "unipc",
    "uni-pc": "unipc",
    "dpm_solver_3": "dpm_solver_v3",
    "dpm-solver-v3": "dpm_solver_v3",
}


def resolve_name(name: str) -> str:
    """A registered sampler name for ``name`` (aliases resolved; unknown names returned unchanged)."""
    if name in SAMPLERS:
        return name
    target = ALIASES.get(name.lower())
    return target if target is not None and target in SAMPLERS else name


def register_sampler(cls: type[Sampler]) -> type[Sampler]:
    """Class decorator adding a finished sampler to the registry under ``cls.name``."""
    if cls.name in SAMPLERS and SAMPLERS[cls.name] is not cls:
        raise ValueError(f"sampler name {cls.name!r} is already registered by {SAMPLERS[cls.name].__name__}")
    SAMPLERS[cls.name] = cls
    return cls


def register_prefix(prefix: str, factory: Callable[..., Sampler]) -> None:
    """Register a factory for names ``"<prefix>:<rest>"`` (called as ``factory(rest, **kwargs)``)."""
    _PREFIXES[prefix] = factory


@dataclass(frozen=True)
class SamplerSupport:
    """Whether a registered sampler runs, with default options, on a given field.

    Attributes:
        name: Registered name.
        ok: ``True`` when the sampler accepts the field's path and its recommended grid builds.
        reason: Why it refuses (the sampler's own error message), ``None`` when ``ok``.
    """

    name: str
    ok: bool
    reason: str | None = None


def sampler_support(field: Any, *, steps: int = 10) -> dict[str, SamplerSupport]:
    """For every registered sampler: does it run on ``field`` with default options, and if not, why not.

    A sampler is supported when its :meth:`~Sampler.check` accepts the field and its recommended grid of ``steps``
    steps builds; nothing is evaluated.

    Args:
        field: A :class:`~genlab.models.field.Field`.
        steps: Steps of the recommended grid that is built.

    Returns:
        Name → :class:`SamplerSupport`, sorted by name.
    """
    out: dict[str, SamplerSupport] = {}
    for name in sorted(SAMPLERS):
        try:
            smp = SAMPLERS[name]()
            smp.check(field)
            smp.recommended_grid(field, steps)
        except (ValueError, TypeError) as err:
            out[name] = SamplerSupport(name, False, str(err))
        else:
            out[name] = SamplerSupport(name, True)
    return out


def available_samplers(field: Any | None = None) -> list[str]:
    """Registered names; with ``field``, only those that run on it with default options.

    Args:
        field: Optional :class:`~genlab.models.field.Field`; :func:`sampler_support` gives the reasons of the others.

    Returns:
        Sorted names (without a field, prefixed families are listed as ``"<prefix>:<name>"``).
    """
    if field is None:
        return sorted(SAMPLERS) + [f"{p}:<name>" for p in sorted(_PREFIXES)]
    return [name for name, sup in sampler_support(field).items() if sup.ok]


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
    name = resolve_name(name)
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; available: {available_samplers()} (aliases: "
                         f"{sorted(a for a, t in ALIASES.items() if t in SAMPLERS)})")
    try:
        return SAMPLERS[name](**kwargs)
    except TypeError as err:
        raise TypeError(f"bad options for sampler {name!r}: {err}") from None
