"""Couplings ``π(x0, x1)``: how source and target samples are paired for training.

``x0`` is the source (noise, or a corrupted/condition image), ``x1`` the target data. A coupling turns a
DataLoader batch into a :class:`CouplingSample` ``(x0, x1, cond, mask)``; build one by class or by name with
:func:`get_coupling`. A re-pairing coupling (:class:`ModelCoupling`, Reflow / DSBM-IMF) gets its pairing
function injected by the objective that owns the model, so this package never imports samplers or training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genlab.couplings.base import Coupling, CouplingSample, unpack_target
from genlab.couplings.data_dependent import (
    DataDependent,
    DownsampleMap,
    MaskedCoupling,
    SuperResolution,
    downsample_map,
    mask_velocity,
    tile_mask,
)
from genlab.couplings.independent import Independent
from genlab.couplings.minibatch_ot import (
    MAX_EXACT_BATCH,
    MinibatchOT,
    ot_plan,
    sample_pairs,
    sinkhorn_plan,
    squared_cost,
)
from genlab.couplings.model import ModelCoupling, Simulate
from genlab.couplings.multimarginal import MultimarginalCoupling, stack_marginals
from genlab.couplings.paired import Paired
from genlab.couplings.plan import ConditionalPlanCoupling

__all__ = [
    "COUPLINGS",
    "MAX_EXACT_BATCH",
    "ConditionalPlanCoupling",
    "Coupling",
    "CouplingSample",
    "DataDependent",
    "DownsampleMap",
    "Independent",
    "MaskedCoupling",
    "MinibatchOT",
    "ModelCoupling",
    "MultimarginalCoupling",
    "Paired",
    "Simulate",
    "SuperResolution",
    "downsample_map",
    "get_coupling",
    "mask_velocity",
    "ot_plan",
    "sample_pairs",
    "sinkhorn_plan",
    "squared_cost",
    "stack_marginals",
    "tile_mask",
    "unpack_target",
]


def _minibatch_ot(*, base: Coupling | str | dict[str, Any] | None = None, **kw: Any) -> MinibatchOT:
    return MinibatchOT(_resolve_base(base), **kw)


def _minibatch_sb(
    *, sigma: float, base: Coupling | str | dict[str, Any] | None = None, **kw: Any
) -> MinibatchOT:
    return MinibatchOT.schrodinger_bridge(sigma, base=_resolve_base(base), **kw)


def _resolve_base(base: Coupling | str | dict[str, Any] | None) -> Coupling | None:
    """A base coupling given as an object, a registry name, or ``{"name": ..., **kwargs}`` (configs)."""
    if base is None or isinstance(base, Coupling):
        return base
    if isinstance(base, str):
        return get_coupling(base)
    if isinstance(base, dict) and "name" in base:
        kw = dict(base)
        return get_coupling(kw.pop("name"), **kw)
    raise TypeError(f"base must be a Coupling, a registered name, or a dict with a 'name' key; got {base!r}")


COUPLINGS: dict[str, Callable[..., Coupling]] = {
    "independent": Independent,
    "paired": Paired,
    "data_dependent": DataDependent,
    "masked": MaskedCoupling,
    "inpainting": MaskedCoupling,
    "super_resolution": SuperResolution,
    "minibatch_ot": _minibatch_ot,
    "minibatch_sb": _minibatch_sb,
    "multimarginal": MultimarginalCoupling,
}
"""Name → constructor. ``"inpainting"`` aliases ``"masked"``; ``"minibatch_sb"`` is
:meth:`MinibatchOT.schrodinger_bridge` (needs ``sigma``); ``"minibatch_ot"`` and ``"minibatch_sb"`` accept
``base`` as a coupling, a name, or ``{"name": ..., **kwargs}``."""


def get_coupling(name: str, **kwargs: Any) -> Coupling:
    """Build a coupling by name.

    Args:
        name: One of :data:`COUPLINGS` (``"independent"``, ``"paired"``, ``"data_dependent"``, ``"masked"``,
            ``"inpainting"``, ``"super_resolution"``, ``"minibatch_ot"``, ``"minibatch_sb"``).
        **kwargs: Constructor arguments of that coupling.

    Returns:
        The coupling.

    Raises:
        ValueError: If ``name`` is unknown.
        TypeError: If ``kwargs`` do not fit the constructor (the message names the coupling).

    Example:
        .. code-block:: python

            coupling = get_coupling("minibatch_ot", method="sinkhorn", reg=0.05)
    """
    if not isinstance(name, str) or name not in COUPLINGS:
        raise ValueError(f"unknown coupling {name!r}; choose one of {sorted(COUPLINGS)}")
    try:
        return COUPLINGS[name](**kwargs)
    except TypeError as err:
        raise TypeError(f"get_coupling({name!r}): bad arguments {sorted(kwargs)}: {err}") from err
