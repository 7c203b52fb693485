"""Multimarginal networks as fields: a simplex network ``net(x, a)`` evaluated along a simplex path (kind ``"g"``).

The multimarginal interpolant (:mod:`genlab.interpolants.multimarginal`, Albergo, Boffi, Lindsey & Vanden-Eijnden,
ICLR'24, arXiv:2310.03695) lives in the bottom layer and knows nothing of networks; this module turns a network with
K + 1 heads into a time network along a path (:class:`PathConditionedNet`) and into a :class:`Field` of the
multi-head kind ``"g"`` (:class:`MultimarginalField`) that every sampler can drive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from genlab.interpolants.multimarginal import RestrictedMultimarginal
from genlab.interpolants.simplex import SimplexPath
from genlab.models.field import Field

__all__ = ["MultimarginalField", "PathConditionedNet"]


class PathConditionedNet(nn.Module):
    """A simplex network ``net(x, a[, cond])`` evaluated along a path: ``forward(x_t, t[, cond]) = g(a(t), x_t)``.

    ``a`` is passed as a ``(B, K + 1)`` tensor in the data dtype; the output is checked and returned stacked,
    ``(B, K + 1, *x_t.shape[1:])``. A :class:`~genlab.models.TimeMLP` built with ``cond_dim=K+1`` and
    ``out_dim=(K+1)·dim`` becomes a simplex network as ``lambda x, a: mlp(x, a[:, 0], a)`` (any scalar can go in
    the time slot; a_0 is one natural choice).

    Args:
        net: The simplex network.
        restricted: The :class:`~genlab.interpolants.RestrictedMultimarginal` giving the path and K.

    Raises:
        TypeError: ``net`` is not callable or ``restricted`` is not a ``RestrictedMultimarginal``.
    """

    def __init__(self, net: Callable[..., Tensor], restricted: RestrictedMultimarginal) -> None:
        super().__init__()
        if not callable(net):
            raise TypeError(f"net must be callable as net(x, a); got {type(net).__name__}")
        if not isinstance(restricted, RestrictedMultimarginal):
            raise TypeError(f"restricted must be a RestrictedMultimarginal, got {type(restricted).__name__}")
        self.net = net
        self.restricted = restricted

    def forward(self, x_t: Tensor, t: Tensor | float, cond: Any | None = None) -> Tensor:
        """Stacked heads ``(B, K + 1, ...)`` at ``(a(t), x_t)`` (a(t) evaluated in the schedule dtype)."""
        a, _ = self.restricted.simplex(t, x_t)
        a = a.to(x_t.dtype)
        out = self.net(x_t, a) if cond is None else self.net(x_t, a, cond)
        return self.restricted.mm.heads(out, x_t)


class MultimarginalField(Field):
    """A multimarginal network ``net(x, a[, cond])`` (K+1 stacked heads g_k) along a simplex path: a field of kind ``"g"``.

    Outputs kind ``"g"`` of shape ``(B, K+1, ...)``; ``predict(x_t, t, kind)`` converts through
    :class:`~genlab.interpolants.RestrictedMultimarginal` (velocity Σ ȧ_k g_k, score −g_0/a_0, x0 = g_i, x1 = g_j,
    drifts). Samplers see its capabilities through ``interpolant.capabilities("g")``.

    Args:
        net: The simplex network ``net(x, a[, cond])`` (either head layout).
        interpolant: ``Multimarginal.restrict(path)``.

    Raises:
        TypeError: ``interpolant`` is not a ``RestrictedMultimarginal``.
    """

    def __init__(self, net: Callable[..., Tensor], interpolant: RestrictedMultimarginal) -> None:
        if not isinstance(interpolant, RestrictedMultimarginal):
            raise TypeError(f"interpolant must be a RestrictedMultimarginal (Multimarginal.restrict(path)), "
                            f"got {type(interpolant).__name__}")
        super().__init__(PathConditionedNet(net, interpolant), interpolant, "g")

    def forward(self, x_t: Tensor, t: Tensor | float, cond: Any | None = None) -> Tensor:
        """Stacked heads ``(B, K+1, ...)`` at ``(a(t), x_t)``; the time is handed over as given, so a(t) is computed
        in the schedule dtype (float64 where available) rather than the data dtype."""
        return self.net(x_t, t) if cond is None else self.net(x_t, t, cond)

    def on_path(self, path: SimplexPath) -> MultimarginalField:
        """The same network along another path of the same simplex (all-to-all transport from one model).

        Args:
            path: A :class:`~genlab.interpolants.SimplexPath` on the same Δ^K.

        Returns:
            A new :class:`MultimarginalField` sharing the network.
        """
        return MultimarginalField(self.net.net, self.interpolant.mm.restrict(path, project=self.interpolant.project))
