"""Re-pairing couplings: one end of the pair is produced by the current model.

Reflow (Liu, Gong & Liu, ICLR 2023, Algorithm 1: ``(Z0, Z1) = (X0, ODE_θ(X0))``) and the iterative Markovian
fitting of DSBM/IMF (Shi, De Bortoli, Campbell & Doucet, NeurIPS 2023, Algorithm 1: the next coupling is the
joint law of the end points of the learnt forward or backward process) both re-pair the data by simulating the
model being trained. The simulation is a sampler call, and samplers live above couplings, so the objective that
owns the model *injects* the pairing function: this module never imports ``genlab.samplers`` or
``genlab.training``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from genlab.couplings.base import Coupling, CouplingSample, unpack_target
from genlab.couplings.independent import Independent

__all__ = ["ModelCoupling", "Simulate"]

#: ``simulate(x, *, generator) -> Tensor``: map a batch of start points to the other end of the pair (same
#: shape). With a conditioning from the base coupling it is called as ``simulate(x, generator=g, cond=c)``.
Simulate = Callable[..., Tensor]


def _child_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """A fresh generator on ``generator``'s device seeded by one draw of it (``None`` stays ``None``)."""
    if generator is None:
        return None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator(device=generator.device).manual_seed(seed)


class ModelCoupling(Coupling):
    """Pairs ``(x0, simulate(x0))`` (``direction="forward"``) or ``(simulate(x1), x1)`` (``"backward"``).

    ``"forward"`` draws ``x0`` from the base coupling (default: independent Gaussian) and lets the model carry it
    to ``x1`` (Reflow; the forward half of a DSBM round); ``"backward"`` takes the data ``x1`` of the batch and
    lets the (backward) model carry it to ``x0`` (the backward half of a DSBM round). The simulation runs under
    ``torch.no_grad()``; the base coupling's ``cond`` (and ``mask``) are kept.

    Randomness: one draw of the caller's generator seeds a child generator for ``simulate`` (drawn *before* the
    base coupling's draws), so the simulation's noise does not depend on how much noise the base drew for this
    batch. Hence the pairs are batch-size invariant whenever the base coupling and ``simulate`` are (an ODE
    sampler, or an SDE sampler drawing its noise per sample).

    Args:
        simulate: The injected pairing function ``simulate(x, *, generator[, cond]) -> Tensor`` (e.g. "run the
            current EMA model from ``x`` with a registered sampler"), built by the objective that owns the model.
        base: Coupling that supplies the start points and the data (default :class:`Independent`).
        direction: ``"forward"`` (simulate from ``x0``) or ``"backward"`` (simulate from ``x1``).

    Raises:
        TypeError: If ``simulate`` is not callable or ``base`` is not a Coupling.
        ValueError: If ``direction`` is unknown.

    Example:
        .. code-block:: python

            # inside an objective (training layer), where samplers may be imported
            def simulate(x0, *, generator):
                return genlab.samplers.sample(ema_field, "heun", steps=8, x_init=x0, generator=generator).x
            coupling = ModelCoupling(simulate)
    """

    def __init__(
        self,
        simulate: Simulate,
        *,
        base: Coupling | None = None,
        direction: Literal["forward", "backward"] = "forward",
    ) -> None:
        if not callable(simulate):
            raise TypeError(
                f"simulate must be a callable simulate(x, *, generator); got {type(simulate).__name__}"
            )
        if base is not None and not isinstance(base, Coupling):
            raise TypeError(f"base must be a Coupling (or None for Independent); got {type(base).__name__}")
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
        self.simulate = simulate
        self.base = base if base is not None else Independent()
        self.direction = direction

    def __repr__(self) -> str:
        return f"ModelCoupling(direction={self.direction!r}, base={self.base!r})"

    def sample(self, batch: object, *, generator: torch.Generator | None = None) -> CouplingSample:
        """Draw the base pair, then replace its far end by the simulation of its near end.

        Args:
            batch: What the base coupling accepts (a tensor ``x1``, ``(x1, label, ...)``, ...).
            generator: Random generator: one draw seeds the simulation's child generator, then the base draws.

        Returns:
            :class:`CouplingSample` with the simulated end, the base's ``cond`` and ``mask``.

        Raises:
            ValueError: If ``simulate`` returns a tensor of another shape or a non-finite value.
        """
        unpack_target(batch, coupling="ModelCoupling")  # a clear error for a bad batch, before any draw
        child = _child_generator(generator)
        pair = self.base.sample(batch, generator=generator)
        start = pair.x0 if self.direction == "forward" else pair.x1
        kwargs = {"cond": pair.cond} if pair.cond is not None else {}
        with torch.no_grad():
            end = self.simulate(start, generator=child, **kwargs)
        if not isinstance(end, Tensor):
            raise TypeError(
                f"ModelCoupling: simulate returned a {type(end).__name__}; it must return a tensor"
            )
        if tuple(end.shape) != tuple(start.shape):
            raise ValueError(
                f"ModelCoupling: simulate returned shape {tuple(end.shape)} for start points of shape "
                f"{tuple(start.shape)}; it must map each sample to one of the same shape"
            )
        if not bool(torch.isfinite(end).all()):
            raise ValueError(
                "ModelCoupling: simulate returned NaN/inf; check the model or the sampler settings"
            )
        end = end.detach().to(device=start.device, dtype=start.dtype)
        if self.direction == "forward":
            return CouplingSample(x0=pair.x0, x1=end, cond=pair.cond, mask=pair.mask)
        return CouplingSample(x0=end, x1=pair.x1, cond=pair.cond, mask=pair.mask)
