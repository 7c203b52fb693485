"""A time-conditioned multilayer perceptron for vector data (2-D toys, Gaussian mixtures, latents)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genlab.models.layers import FourierTimeFeatures, check_int, make_activation
from genlab.utils import as_time

__all__ = ["TimeMLP"]


class TimeMLP(nn.Module):
    r"""MLP ``f(x, t[, c])`` with Fourier features of the continuous time ``t ∈ [0, 1]``.

    The input of the first layer is the concatenation ``[x, φ(t), c]`` where ``φ`` are the sin/cos features of
    :class:`~genlab.models.layers.FourierTimeFeatures` (log-spaced frequencies from 1 to 1000 rad per unit
    time) and ``c`` an optional conditioning vector; then ``depth`` hidden layers of width ``hidden`` with the
    chosen activation, and a linear head of size ``out_dim``. Several heads are one wide head: for the
    multimarginal fields ``g_k`` (Albergo et al., 2023, arXiv:2310.03695) use ``out_dim=(K + 1) * dim`` and
    reshape the output to ``(B, K + 1, dim)``.

    Time is never range-checked here (the interpolant and the samplers own ``t ∈ [0, 1]``); it is embedded in
    float64 where the device allows and cast to the input dtype afterwards, so nearby times stay distinct.

    Args:
        dim: Size of the data vector ``x``.
        hidden: Width of the hidden layers.
        depth: Number of hidden layers (each a linear map followed by the activation), at least 1.
        time_features: Number of Fourier time features (even).
        cond_dim: Size of the conditioning vector ``c`` (0: unconditional).
        out_dim: Output size; defaults to ``dim``.
        activation: One of ``"silu"``, ``"relu"``, ``"gelu"``, ``"tanh"``, ``"elu"``, ``"softplus"``,
            ``"leaky_relu"``.

    Example:
        .. code-block:: python

            net = TimeMLP(2, hidden=128)
            v = net(x_t, t)          # x_t: (B, 2), t: (B,) or a float
    """

    def __init__(
        self,
        dim: int,
        *,
        hidden: int = 256,
        depth: int = 4,
        time_features: int = 32,
        cond_dim: int = 0,
        out_dim: int | None = None,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        check_int("dim", dim, minimum=1)
        check_int("hidden", hidden, minimum=1)
        check_int("depth", depth, minimum=1)
        check_int("cond_dim", cond_dim, minimum=0)
        if out_dim is not None:
            check_int("out_dim", out_dim, minimum=1)
        if (
            isinstance(time_features, bool)
            or not isinstance(time_features, int)
            or time_features < 2
            or (time_features % 2)
        ):
            raise ValueError(f"time_features must be an even int >= 2 (sin/cos pairs); got {time_features!r}")
        make_activation(activation)  # validates the name before anything is built
        self.dim = dim
        self.cond_dim = cond_dim
        self.out_dim = dim if out_dim is None else out_dim
        self._config: dict[str, Any] = {
            "dim": dim,
            "hidden": hidden,
            "depth": depth,
            "time_features": time_features,
            "cond_dim": cond_dim,
            "out_dim": out_dim,
            "activation": activation,
        }
        self.time_embed = FourierTimeFeatures(time_features)
        layers: list[nn.Module] = []
        width = dim + time_features + cond_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), make_activation(activation)]
            width = hidden
        layers.append(nn.Linear(width, self.out_dim))
        self.net = nn.Sequential(*layers)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable); ``TimeMLP(**net.config)`` rebuilds the net."""
        return dict(self._config)

    def forward(self, x: Tensor, t: Tensor | float, cond: Tensor | None = None) -> Tensor:
        """Evaluate the network.

        Args:
            x: Inputs of shape ``(B, dim)``.
            t: Times: a float, a 0-d tensor or a ``(B,)`` tensor.
            cond: Conditioning vectors of shape ``(B, cond_dim)``; required iff ``cond_dim > 0``.

        Returns:
            Outputs of shape ``(B, out_dim)`` in ``x``'s dtype.
        """
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {self.dim}) (dim={self.dim}); got {got}")
        t_vec = as_time(t, x, name="t", check_range=False)
        parts = [x, self.time_embed(t_vec).to(x.dtype)]
        if self.cond_dim > 0:
            if cond is None:
                raise ValueError(
                    f"this TimeMLP was built with cond_dim={self.cond_dim}; pass cond of shape "
                    f"(B, {self.cond_dim})"
                )
            if cond.ndim != 2 or cond.shape != (x.shape[0], self.cond_dim):
                raise ValueError(
                    f"cond must have shape ({x.shape[0]}, {self.cond_dim}) (batch, cond_dim); "
                    f"got {tuple(cond.shape)}"
                )
            parts.append(cond.to(x.dtype))
        elif cond is not None:
            raise ValueError("cond was given but this TimeMLP has cond_dim=0; build it with cond_dim=<size>")
        return self.net(torch.cat(parts, dim=1))
