"""Method registry: names → :class:`Guidance` / :class:`IterativeSolver` classes, with compatibility checks."""

from __future__ import annotations

from typing import Any

from genlab.inverse.methods import DDS, DPS, STSL, Dreamguider, Guidance, IterativeSolver, PiGDM
from genlab.inverse.problem import InverseProblem
from genlab.samplers.base import Sampler

__all__ = [
    "METHODS",
    "available_methods",
    "compatible_methods",
    "get_method",
    "missing_requirements",
    "register_method",
]

METHODS: dict[str, type[Guidance | IterativeSolver]] = {}


def register_method(cls: type[Guidance | IterativeSolver]) -> type[Guidance | IterativeSolver]:
    """Add a method class under ``cls.name`` (usable as a class decorator).

    Raises:
        ValueError: if the name is taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, (Guidance, IterativeSolver))):
        raise TypeError(f"a method must subclass Guidance or IterativeSolver, got {cls!r}")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is already registered by {METHODS[cls.name].__name__}")
    METHODS[cls.name] = cls
    return cls


for _cls in (DPS, PiGDM, DDS, STSL, Dreamguider):
    register_method(_cls)

from genlab.inverse.methods import (  # issue 13: the methods that win cells in deepinv
    DDRM,
    DiffPIR,
    MomentMatching,
)

for _cls in (MomentMatching, DDRM, DiffPIR):
    register_method(_cls)

from genlab.inverse.methods import PnPHVAE

register_method(PnPHVAE)

from genlab.inverse.methods import TDS, MCGdiff

for _cls in (MCGdiff, TDS):
    register_method(_cls)


def available_methods() -> list[str]:
    """Registered method names."""
    return sorted(METHODS)


def get_method(name: str | Guidance | IterativeSolver, **options: Any) -> Guidance | IterativeSolver:
    """Instantiate a method by name with its options (or return an instance unchanged).

    Args:
        name: Registered name or an instance.
        **options: Hyper-parameters (keys of the method's ``DEFAULTS``).

    Returns:
        The method.
    """
    if isinstance(name, (Guidance, IterativeSolver)):
        if options:
            raise ValueError("pass method options either to the instance or as keywords, not both")
        return name
    if not isinstance(name, str):
        raise TypeError(f"method must be a name or a Guidance/IterativeSolver instance, got {type(name).__name__}")
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {available_methods()}")
    return METHODS[name](**options)


def missing_requirements(
    method: Guidance | IterativeSolver,
    problem: InverseProblem,
    prior: Any,
    sampler: str | Sampler | None = None,
    eta: float | None = None,
) -> list[str]:
    """What ``method`` needs and (problem, prior, sampler) lacks — empty when they are compatible.

    Args:
        method: The method instance.
        problem: The problem.
        prior: The prior.
        sampler: Sampler name or instance (``None``: the method's default; iterative solvers take none).
        eta: DDIM η.

    Returns:
        Descriptions of the missing pieces.
    """
    if isinstance(method, Guidance):
        return method.missing(problem, prior, sampler or method.default_sampler, eta)
    return method.missing(problem, prior, sampler, eta)


def compatible_methods(problem: InverseProblem, prior: Any, sampler: str | None = None) -> list[str]:
    """Registered methods (with default options) that can run on this problem/prior (and sampler).

    Args:
        problem: The problem.
        prior: The prior.
        sampler: Optional sampler name to require.

    Returns:
        Method names.
    """
    out = []
    for name, cls in sorted(METHODS.items()):
        m = cls()
        eta = m.default_eta if isinstance(m, Guidance) and (sampler or m.default_sampler) == "ddim" else None
        if not missing_requirements(m, problem, prior, sampler, eta):
            out.append(name)
    return out
