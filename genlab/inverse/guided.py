"""Guidance as a field and a post-step hook, so a guidance method runs inside any compatible registered sampler.

:class:`GuidedField` is a :class:`~genlab.models.Field` of kind ``"x1"`` on the prior's path. Each evaluation runs
the method's own (counted, possibly differentiable) evaluation of the prior (:meth:`Guidance.predict`), with
gradients enabled inside the field whatever the sampler's grad mode, and returns:

* for ``"field"`` methods (score mode), the conditioned prediction ``x̂1|y = x̂1 + (α²/β)·g``
  (``reference/inverse.md`` §0; ``α, β`` the interpolant's noise and data coefficients), which every sampler
  converts to the kind it needs;
* otherwise x̂1 itself, keeping the differentiable prediction (:attr:`GuidedField.last`) and the method's
  correction (:attr:`GuidedField.pending`) for :meth:`GuidedField.hook` and for ``"transition"`` methods.

:meth:`GuidedField.hook` adds the pending correction after each sampler step (DPS's and ΠGDM's updates), and
:meth:`GuidedField.transition` hands the sampler's step to a method that re-shapes it (STSL, Dreamguider, DDS).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from genlab.inverse.methods.base import Guidance, SolveContext
from genlab.models.field import Field
from genlab.samplers.base import Prediction, StepInfo
from genlab.utils import NoiseStream, check_finite

__all__ = ["GuidedField"]


class GuidedField(Field):
    """The prior's field as a guidance method sees it (see the module docstring).

    Args:
        method: The guidance method.
        ctx: The run's context (problem, prior, counted model, the sampler's step, noise stream).
    """

    def __init__(self, method: Guidance, ctx: SolveContext) -> None:
        super().__init__(ctx.prior.field, ctx.prior.interpolant, "x1")
        self.method = method
        self.ctx = ctx
        #: The differentiable prediction of the latest evaluation.
        self.last: Prediction | None = None
        #: ``(time, correction)`` of the latest evaluation (``"hook"`` placement).
        self.pending: tuple[float, Tensor | None] | None = None

    def forward(self, x_t: Tensor, t: Tensor | float, cond: Any | None = None) -> Tensor:
        """x̂1 (conditioned in score mode) at ``(x_t, t)``; one counted evaluation of the prior."""
        pred = self.method.predict(x_t, t, self.ctx)
        self.last = pred
        if self.method.placement == "transition":
            return pred("x1").detach()
        out = self.method.guide(pred, t, self.ctx)
        self.pending = (float(t), out.correction)
        return out.x1

    def hook(self, info: StepInfo) -> Tensor | None:
        """Post-step hook: the sampler's new state plus the correction of the evaluation at the step's start."""
        if self.pending is None:
            raise RuntimeError("the guided field was not evaluated during this step")
        t_eval, correction = self.pending
        if abs(t_eval - info.t) > 1e-9:
            raise RuntimeError(f"the last evaluation (t={t_eval:.6g}) is not at the step's start (t={info.t:.6g}); "
                               "post-step guidance needs one evaluation per step")
        x = info.x if correction is None else info.x + correction.to(info.x.dtype)
        return check_finite(x, name=f"{self.method.name} state after step {info.i} (t={info.t_next:.4g})")

    def transition(self, x: Tensor, t: Tensor, t_next: Tensor, pred: Prediction, noise: NoiseStream | None) -> Tensor:
        """The sampler's step re-shaped by the method (:meth:`Guidance.step` with the sampler's Step)."""
        if self.last is None:
            raise RuntimeError("the guided field was not evaluated before the transition")
        x_next = self.method.step(x, t, t_next, self.last, self.ctx).detach()
        return check_finite(x_next, name=f"{self.method.name} state after the step to t={float(t_next):.4g}")
