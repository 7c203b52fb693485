"""Closed-form oracle for the exponential-integrator sampler tests (DPM-Solver++, DEIS, BDIA).

Data x1 ~ N(μ, diag s²) with μ = m + k·x0 on a bridge (x0 the known source), path x_t = α x0 + β x1 + γ z. With n the
noise coefficient (α for a Gaussian source, γ on a bridge), known = α x0 on a bridge (else 0) and V = β²s² + n²:

    E[x1 | x_t] = μ + β s²/V · (x_t − known − βμ),
    Φ_{t→u}(x)  = known_u + β_u μ + √(V_u/V_t)·(x − known_t − β_t μ)      (exact PF-ODE map; ``samplers.md`` §0, §5)

because (x − known − βμ)/√V is invariant along the probability-flow ODE. ``s = 0`` is point-mass data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from genlab.interpolants import Interpolant
from genlab.models.field import Field
from genlab.samplers.base import Sampler

F64 = torch.float64


def _coeffs(interp: Interpolant, t: Tensor | float, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(α, β, n) at ``t`` shaped to broadcast against ``like`` (float64 math, cast to ``like``'s dtype)."""
    tt = torch.as_tensor(t, dtype=F64).reshape(-1)
    c = interp.schedule.coeffs(tt)
    n = c.alpha if interp.gaussian_source else c.gamma
    shape = (-1,) + (1,) * (like.ndim - 1)
    return tuple(v.reshape(shape).to(like.dtype) for v in (c.alpha, c.beta, n))  # type: ignore[return-value]


class GaussianPosterior(nn.Module):
    """Exact E[x1 | x_t] for x1 ~ N(m + k·x0, diag s²), returned as prediction kind ``kind`` (exact conversion)."""

    def __init__(self, interp: Interpolant, m: Sequence[float], s: Sequence[float] | float, *, k: float = 0.0,
                 kind: str = "x1") -> None:
        super().__init__()
        self.interp, self.kind, self.k = interp, kind, float(k)
        self.m = torch.as_tensor(m, dtype=F64)
        self.s = torch.as_tensor(s, dtype=F64).expand_as(self.m)

    def mean(self, x0: Tensor | None, like: Tensor) -> Tensor:
        mu = self.m.to(like.dtype).expand_as(like)
        return mu + self.k * x0 if (x0 is not None and self.k) else mu

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        a, b, n = _coeffs(self.interp, t, x_t)
        known = a * cond if self.interp.conditional_source else torch.zeros_like(x_t)
        mu = self.mean(cond, x_t)
        s2 = (self.s**2).to(x_t.dtype)
        v = b**2 * s2 + n**2
        x1_hat = mu + (b * s2 / v) * (x_t - known - b * mu)
        if self.kind == "x1":
            return x1_hat
        return self.interp.convert(x1_hat, "x1", self.kind, x_t, t, cond)


def gaussian_field(interp: Interpolant, m: Sequence[float], s: Sequence[float] | float, *, k: float = 0.0,
                   kind: str = "x1") -> Field:
    """A :class:`Field` whose network is the exact Gaussian posterior (of kind ``kind``)."""
    return Field(GaussianPosterior(interp, m, s, k=k, kind=kind), interp, kind)


def flow_map(interp: Interpolant, x: Tensor, t0: float, t1: float, m: Sequence[float], s: Sequence[float] | float,
             *, k: float = 0.0, x0: Tensor | None = None) -> Tensor:
    """Exact PF-ODE map Φ_{t0→t1}(x) for x1 ~ N(m + k·x0, diag s²)."""
    post = GaussianPosterior(interp, m, s, k=k)
    mu = post.mean(x0, x)
    s2 = (post.s**2).to(x.dtype)
    a0, b0, n0 = _coeffs(interp, t0, x)
    a1, b1, n1 = _coeffs(interp, t1, x)
    known0 = a0 * x0 if interp.conditional_source else torch.zeros_like(x)
    known1 = a1 * x0 if interp.conditional_source else torch.zeros_like(x)
    v0, v1 = b0**2 * s2 + n0**2, b1**2 * s2 + n1**2
    return known1 + b1 * mu + torch.sqrt(v1 / v0) * (x - known0 - b0 * mu)


def endpoint_errors(sampler: Sampler, field: Field, make_grid: Callable[[int], Tensor],
                    make_x: Callable[[Tensor], Tensor], reference: Callable[[Tensor, Tensor], Tensor],
                    steps: Sequence[int] = (16, 32, 64, 128), cond: Tensor | None = None) -> list[float]:
    """Max endpoint error against ``reference(x_init, grid)`` for each number of steps."""
    errs = []
    for n in steps:
        grid = make_grid(n)
        x = make_x(grid)
        res = sampler.sample(field, x, grid, cond=cond)
        errs.append(float((res.x - reference(x, grid)).abs().max()))
    return errs


def last_slope(errs: Sequence[float]) -> float:
    """Observed order log2(e_N / e_2N) of the last pair."""
    return math.log2(errs[-2] / errs[-1])


def assert_order(errs: Sequence[float], lo: float, hi: float) -> float:
    """Assert the last-pair order lies in [lo, hi] and return it."""
    p = last_slope(errs)
    assert lo <= p <= hi, f"observed order {p:.3f} outside [{lo}, {hi}]; errors {[f'{e:.3e}' for e in errs]}"
    return p
