"""Closed-form Gaussian oracles for sampler tests (``reference/samplers.md`` §0, §5, §9).

Data x1 ~ N(μ, diag s²) (μ = m + k·x0 for bridges), path x_t = α x0 + β x1 + γ z (genlab names: for a Gaussian
source the noise coefficient is α and z is absent; for a bridge x0 is known and the noise coefficient is γ).
With n the noise coefficient and V = β²s² + n², the exact denoiser is

    E[x1 | x_t] = μ + β s²/V · (x_t − known − β μ),

and the PF-ODE map is Φ_{t→u}(x) = known_u + β_u μ + √(V_u/V_t)(x − known_t − β_t μ), because the standardised
residual (x − known − βμ)/√V is invariant along the probability-flow ODE (known = α x0 on a bridge, else 0).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.interpolants import Interpolant
from genlab.models.field import Field

__all__ = ["GaussianX1", "gaussian_field", "gaussian_flow_map", "gaussian_marginal_std"]

F64 = torch.float64


def _abn(interp: Interpolant, t: Tensor | float, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    tt = torch.as_tensor(t, dtype=F64, device=like.device).reshape(-1)
    c = interp.schedule.coeffs(tt)
    n = c.alpha if interp.gaussian_source else c.gamma
    shape = (-1,) + (1,) * (like.ndim - 1)
    return (c.alpha.reshape(shape).to(like.dtype), c.beta.reshape(shape).to(like.dtype),
            n.reshape(shape).to(like.dtype))


class GaussianX1(nn.Module):
    """Exact E[x1 | x_t] for x1 ~ N(m + k·x0, diag s²) (``s = 0``: point mass at m + k·x0).

    With ``kind="velocity"`` (Gaussian source only) it returns the exact PF-ODE velocity
    b = β̇ E[x1|x_t] + α̇ E[x0|x_t], E[x0|x_t] = α/V·(x_t − βμ), which stays finite where α = 0.

    Args:
        interp: The path (Gaussian source or bridge).
        m: Data mean ``(d,)``.
        s: Data std ``(d,)`` or a float.
        k: Bridges: how much the data mean follows the known x0.
        kind: ``"x1"`` or ``"velocity"``.
    """

    def __init__(self, interp: Interpolant, m: Tensor, s: Tensor | float, k: float = 0.0,
                 kind: str = "x1") -> None:
        super().__init__()
        self.interp = interp
        self.kind = kind
        self.m = torch.as_tensor(m, dtype=F64)
        self.s = torch.as_tensor(s, dtype=F64).expand_as(self.m)
        self.k = float(k)
        self.calls = 0

    def mu(self, x0: Tensor | None, like: Tensor) -> Tensor:
        mu = self.m.to(like.device, like.dtype).expand_as(like)
        if x0 is not None and self.k:
            mu = mu + self.k * x0
        return mu

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        self.calls += 1
        a, b, n = _abn(self.interp, t, x_t)
        known = a * cond if self.interp.conditional_source else torch.zeros_like(x_t)
        mu = self.mu(cond, x_t)
        s2 = (self.s**2).to(x_t.device, x_t.dtype)
        r = x_t - known - b * mu
        v = b**2 * s2 + n**2
        # where V = 0 (a bridge at its condition end, or point-mass data at the data end) the residual r is 0
        gain = torch.where(v > 0, b * s2 / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
        x1_hat = mu + gain * r
        if self.kind == "x1":
            return x1_hat
        tt = torch.as_tensor(t, dtype=F64, device=x_t.device).reshape(-1)
        c = self.interp.schedule.coeffs(tt)
        shape = (-1,) + (1,) * (x_t.ndim - 1)
        da, db = c.d_alpha.reshape(shape).to(x_t.dtype), c.d_beta.reshape(shape).to(x_t.dtype)
        return db * x1_hat + da * (a / v) * r


def gaussian_field(interp: Interpolant, m: Tensor, s: Tensor | float, k: float = 0.0, kind: str = "x1") -> Field:
    """A Field of kind ``kind`` (``"x1"`` or ``"velocity"``) with the exact Gaussian posterior."""
    return Field(GaussianX1(interp, m, s, k, kind), interp, kind)


def gaussian_marginal_std(interp: Interpolant, s: Tensor, t: float) -> Tensor:
    """√V_t = √(β_t² s² + n_t²) per dimension."""
    c = interp.schedule.coeffs(torch.tensor([t], dtype=F64))
    n = c.alpha if interp.gaussian_source else c.gamma
    return torch.sqrt(c.beta**2 * s**2 + n**2)


def gaussian_flow_map(interp: Interpolant, m: Tensor, s: Tensor | float, x: Tensor, t_from: float, t_to: float,
                      *, x0: Tensor | None = None, k: float = 0.0) -> Tensor:
    """Exact PF-ODE map Φ_{t_from → t_to}(x) for Gaussian data (float64)."""
    m = torch.as_tensor(m, dtype=F64)
    s = torch.as_tensor(s, dtype=F64).expand_as(m)
    a0, b0, n0 = _abn(interp, t_from, x)
    a1, b1, n1 = _abn(interp, t_to, x)
    mu = m.expand_as(x) + (k * x0 if x0 is not None else 0)
    kn0 = a0 * x0 if interp.conditional_source else 0
    kn1 = a1 * x0 if interp.conditional_source else 0
    v0 = b0**2 * s**2 + n0**2
    v1 = b1**2 * s**2 + n1**2
    return kn1 + b1 * mu + torch.sqrt(v1 / v0) * (x - kn0 - b0 * mu)
