"""A coupling that draws ``x1 ~ π(·|x0)`` from a conditional plan (Light SB's closed-form plan, a benchmark truth).

Light SB (Korotin, Gushchin & Burnaev, ICLR 2024, Prop. 3.2) learns the entropic-OT plan in closed form; other
trainers (flow matching on a Brownian bridge, SB-CFM, DSBM's first coupling) can consume its pairs through this
coupling. The plan is any object with ``sample_plan(x0, *, generator) -> x1`` (e.g.
:class:`genlab.models.light_sb.LightSB`, or :class:`genlab.analytic.eot_benchmark.EOTBenchmark`'s ``truth``), so
this module imports nothing from ``genlab.models``.
"""

from __future__ import annotations

from typing import Any

import torch

from genlab.couplings.base import Coupling, CouplingSample, unpack_target
from genlab.couplings.independent import Independent

__all__ = ["ConditionalPlanCoupling"]


class ConditionalPlanCoupling(Coupling):
    """Pairs ``(x0, y)`` with ``x0`` from ``base`` and ``y ~ plan(·|x0)`` replacing the batch's ``x1``.

    Args:
        plan: Object with ``sample_plan(x0, *, generator=...) -> Tensor`` of ``x0``'s shape.
        base: Coupling supplying ``x0`` (e.g. ``Independent(source=p0)`` for a data source); default
            :class:`Independent` (Gaussian source).

    Raises:
        TypeError: If ``plan`` has no ``sample_plan`` method or ``base`` is not a Coupling.
    """

    def __init__(self, plan: Any, *, base: Coupling | None = None) -> None:
        if not callable(getattr(plan, "sample_plan", None)):
            raise TypeError(
                f"plan must have a method sample_plan(x0, *, generator) (e.g. a LightSB); got {type(plan).__name__}"
            )
        if base is not None and not isinstance(base, Coupling):
            raise TypeError(f"base must be a Coupling or None; got {type(base).__name__}")
        self.plan = plan
        self.base = base if base is not None else Independent()

    def __repr__(self) -> str:
        return f"ConditionalPlanCoupling(plan={type(self.plan).__name__}, base={self.base!r})"

    def sample(self, batch: object, *, generator: torch.Generator | None = None) -> CouplingSample:
        """Draw ``x0`` from the base coupling and ``x1 ~ plan(·|x0)`` (no gradient through the plan).

        Args:
            batch: What the base coupling accepts.
            generator: Random generator (base draws first, then the plan's).

        Returns:
            :class:`CouplingSample` ``(x0, x1)`` with the base's ``cond``/``mask``.

        Raises:
            ValueError: If the plan returns another shape.
        """
        unpack_target(batch, coupling="ConditionalPlanCoupling")
        pair = self.base.sample(batch, generator=generator)
        with torch.no_grad():
            x1 = self.plan.sample_plan(pair.x0, generator=generator)
        if tuple(x1.shape) != tuple(pair.x0.shape):
            raise ValueError(
                f"ConditionalPlanCoupling: sample_plan returned shape {tuple(x1.shape)} for x0 of shape "
                f"{tuple(pair.x0.shape)}; a plan must return one target per source"
            )
        return CouplingSample(x0=pair.x0, x1=x1.to(pair.x1.dtype), cond=pair.cond, mask=pair.mask)
