"""Field for multimarginal networks: stacked heads g_k evaluated along a simplex path."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from genlab.interpolants.multimarginal import PathConditionedNet, RestrictedMultimarginal
from genlab.models.field import Field

__all__ = ["MultimarginalField"]


class MultimarginalField(Field):
    """A multimarginal network ``net(x, a[, cond])`` (K+1 stacked heads g_k) along a simplex path.

    Outputs kind ``"g"`` of shape ``(B, K+1, ...)``; ``predict(x_t, t, kind)`` converts through
    :class:`RestrictedMultimarginal` (velocity Σ ȧ_k g_k, score −g_0/a_0, x0 = g_i, x1 = g_j, drifts).
    """

    def __init__(self, net: Callable[..., Tensor], interpolant: RestrictedMultimarginal) -> None:
        if not isinstance(interpolant, RestrictedMultimarginal):
            raise TypeError(f"interpolant must be a RestrictedMultimarginal (Multimarginal.restrict(path)), "
                            f"got {type(interpolant).__name__}")
        # Field validates kinds against KINDS; 'velocity' passes its checks and is replaced by the real kind 'g'
        super().__init__(PathConditionedNet(net, interpolant), interpolant, "velocity")
        self.kind = "g"

    def forward(self, x_t: Tensor, t: Tensor | float, cond: Any | None = None) -> Tensor:
        """Stacked heads ``(B, K+1, ...)`` at ``(a(t), x_t)``."""
        return self.net(x_t, t) if cond is None else self.net(x_t, t, cond)

    def on_path(self, path) -> MultimarginalField:
        """The same network along another path of the same simplex (all-to-all transport from one model)."""
        return MultimarginalField(self.net.net, self.interpolant.mm.restrict(path, project=self.interpolant.project))
