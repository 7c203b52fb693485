"""Exact log-likelihoods through the probability-flow ODE (instantaneous change of variables).

For the PF-ODE ``dX/dt = b(t, X)`` of a path, ``d/dt log ρ_t(X_t) = −∇·b(t, X_t)`` (Chen et al. NeurIPS'18,
Neural ODEs, Thm. 1; Albergo et al. 2023, ``reference/interpolants.md`` §1.4), so integrating the augmented
system from the data end back to the source gives

    log ρ_{t_end}(x) = log ρ_{t_start}(X_{t_start}) − ∫_{t_start}^{t_end} ∇·b(t, X_t) dt.

The divergence is exact (one reverse-mode pass per dimension) for small dimensions and Hutchinson's unbiased
estimator ``E_v[vᵀ(∂b/∂x)v]`` with Rademacher probes otherwise (FFJORD, Grathwohl et al. ICLR'19); the probes
are drawn once per sample and kept fixed along the trajectory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from genlab.models.field import Field
from genlab.samplers.adaptive import ADAPTIVE_METHODS, _torchdiffeq
from genlab.samplers.base import CountingField, capabilities
from genlab.utils import check_finite, randn_per_sample

__all__ = [
    "EXACT_DIVERGENCE_MAX_DIM",
    "REGULAR_T_END",
    "LikelihoodResult",
    "default_t_end",
    "gaussian_source_log_prob",
    "log_likelihood",
]

#: Largest per-sample dimension for which the divergence is computed exactly by default.
EXACT_DIVERGENCE_MAX_DIM = 16

#: Data-side end of the integration when the PF-ODE velocity is singular at ``t = 1``.
REGULAR_T_END = 1.0 - 1e-5


@dataclass
class LikelihoodResult:
    """Output of :func:`log_likelihood` (all per-sample, shape ``(B,)`` unless stated).

    Attributes:
        log_prob: log ρ_{t_end}(x) in nats (t_end = 1: the model density of the data).
        log_prob_source: log ρ_{t_start}(x0) under the source density.
        delta: −∫ ∇·b dt along the trajectory, so ``log_prob = log_prob_source + delta``.
        nfe: Number of field evaluations (each also costs one or more backward passes for the divergence).
        x0: The state reached at t_start ``(B, ...)``.
    """

    log_prob: Tensor
    log_prob_source: Tensor
    delta: Tensor
    nfe: int
    x0: Tensor

    def bits_per_dim(self, dim: int | None = None) -> Tensor:
        """−log₂ ρ(x)/d (d defaults to the per-sample size of ``x0``)."""
        d = int(self.x0[0].numel()) if dim is None else int(dim)
        return -self.log_prob / (d * math.log(2))


def gaussian_source_log_prob(x0: Tensor, scale: Tensor | float) -> Tensor:
    """log N(x0; 0, scale² I) per sample.

    Args:
        x0: States ``(B, ...)``.
        scale: Standard deviation (a float or ``(B,)``).

    Returns:
        ``(B,)`` log-densities.
    """
    d = x0[0].numel()
    flat = x0.flatten(1)
    s = torch.as_tensor(scale, dtype=x0.dtype, device=x0.device)
    s = s.expand(x0.shape[0]) if s.ndim == 0 else s
    return -0.5 * (flat**2).sum(1) / s**2 - d * torch.log(s) - 0.5 * d * math.log(2 * math.pi)


def default_t_end(field: Field, x: Tensor, *, cond: Any | None = None) -> float:
    """The data-side end of the likelihood integration: ``1.0`` where the velocity is regular, else
    :data:`REGULAR_T_END`.

    The velocity is probed once at ``t = 1`` (without gradients); a conversion that is singular there (raises)
    or a non-finite velocity selects :data:`REGULAR_T_END`.

    Args:
        field: The field.
        x: States ``(B, ...)``.
        cond: Conditioning passed to the field.

    Returns:
        ``1.0`` or :data:`REGULAR_T_END`.
    """
    if field.kind == "velocity":
        return 1.0
    try:
        with torch.no_grad():
            b = field.predict(x, 1.0, "velocity", cond)
    except (ValueError, ZeroDivisionError, RuntimeError):
        return REGULAR_T_END
    return 1.0 if bool(torch.isfinite(b).all()) else REGULAR_T_END


def _divergence_exact(b: Tensor, y: Tensor) -> Tensor:
    bf = b.flatten(1)
    d = bf.shape[1]
    div = torch.zeros(b.shape[0], dtype=b.dtype, device=b.device)
    for i in range(d):
        (g,) = torch.autograd.grad(bf[:, i].sum(), y, retain_graph=i < d - 1)
        div = div + g.flatten(1)[:, i]
    return div


def _divergence_hutchinson(b: Tensor, y: Tensor, probes: Tensor) -> Tensor:
    k = probes.shape[1]
    div = torch.zeros(b.shape[0], dtype=b.dtype, device=b.device)
    for j in range(k):
        v = probes[:, j]
        (g,) = torch.autograd.grad((b * v).sum(), y, retain_graph=j < k - 1)
        div = div + (g * v).flatten(1).sum(1)
    return div / k


def log_likelihood(
    field: Field,
    x: Tensor,
    *,
    cond: Any | None = None,
    source_log_prob: Callable[[Tensor], Tensor] | None = None,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    exact_divergence: bool | None = None,
    n_hutchinson: int = 1,
    generator: torch.Generator | None = None,
    t_start: float = 0.0,
    t_end: float | None = None,
) -> LikelihoodResult:
    """Log-density of ``x`` under the model, by integrating the augmented PF-ODE from ``t_end`` to ``t_start``.

    Args:
        field: The field (converted to its velocity through the interpolant).
        x: States at ``t_end`` ``(B, ...)`` (data for ``t_end = 1``).
        cond: Conditioning passed to the field.
        source_log_prob: ``x0 ↦ log ρ_{t_start}(x0)`` ``(B,)``. Default for a Gaussian-source path: the Gaussian
            part of x_{t_start} = α(t_start)·ε + β(t_start)·x1, i.e. N(0, α(t_start)² I): the standard normal
            for flow matching (α(0) = 1), N(0, σ_max²) for VE, N(0, 1 − e^{−T(0)}) for VP. For VP/VE this
            neglects the β(t_start)·x1 part (β(0) ≈ 0.0066 for the linear VP), as every diffusion likelihood does;
            pass the exact source density when that matters. Other paths need an explicit ``source_log_prob``.
        method: torchdiffeq method (``"dopri5"``, ``"dopri8"``, ``"bosh3"``, ``"adaptive_heun"``).
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        exact_divergence: Exact divergence (``True``), Hutchinson (``False``), or automatic (``None``: exact when
            the per-sample dimension is ≤ :data:`EXACT_DIVERGENCE_MAX_DIM`).
        n_hutchinson: Rademacher probes per sample (averaged).
        generator: Random generator of the probes (drawn per sample: results do not depend on the batch size).
        t_start: Source-side end of the integration.
        t_end: Data-side end. Default (``None``): :func:`default_t_end`, i.e. ``t = 1`` where the field's
            velocity is finite there, else :data:`REGULAR_T_END` ``= 1 − 1e-5`` (e.g. a VP noise or score
            field, whose conversion to the velocity divides by α(t) → 0 at t = 1); the density at 1 − 1e-5
            differs from the one at 1 by the O(1e-5) transport over the last stretch.

    Returns:
        :class:`LikelihoodResult`.
    """
    if not isinstance(field, Field):
        raise TypeError(f"field must be a genlab Field, got {type(field).__name__}")
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise TypeError("x must be a floating-point tensor of shape (B, ...)")
    check_finite(x, name="x")
    if method not in ADAPTIVE_METHODS:
        raise ValueError(f"method must be one of {ADAPTIVE_METHODS}, got {method!r}")
    if t_end is None:
        t_end = default_t_end(field, x, cond=cond)
    if not (0.0 <= t_start < t_end <= 1.0):
        raise ValueError(f"need 0 <= t_start < t_end <= 1, got t_start={t_start}, t_end={t_end}")
    if not (isinstance(n_hutchinson, int) and n_hutchinson >= 1):
        raise ValueError(f"n_hutchinson must be a positive integer, got {n_hutchinson!r}")
    interp = field.interpolant
    if "velocity" not in capabilities(interp, field.kind):
        raise ValueError(f"log_likelihood needs the PF-ODE velocity; {interp!r} with a {field.kind!r} field does "
                         "not determine it")
    if source_log_prob is None:
        if not interp.gaussian_source:
            raise ValueError(f"{interp!r} has no Gaussian source: pass source_log_prob (log-density of the source "
                             "at t_start)")
        scale = interp.init_scale(t_start, x)

        def source_log_prob(z: Tensor) -> Tensor:
            return gaussian_source_log_prob(z, scale)

    counted = CountingField(field)
    dim = x[0].numel()
    exact = dim <= EXACT_DIVERGENCE_MAX_DIM if exact_divergence is None else bool(exact_divergence)
    probes = None
    if not exact:
        draw = randn_per_sample((x.shape[0], n_hutchinson, *x.shape[1:]), generator=generator, device=x.device,
                                dtype=x.dtype)
        probes = torch.where(draw >= 0, torch.ones_like(draw), -torch.ones_like(draw))

    def func(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        y = state[0]
        tt = min(max(float(t), t_start), t_end)
        with torch.enable_grad():
            yv = y.detach().requires_grad_(True)
            b = counted.predict(yv, tt, "velocity", cond)
            if not b.requires_grad:
                raise ValueError("the field's output does not depend differentiably on x_t (no autograd graph); "
                                 "log_likelihood needs a differentiable field")
            div = _divergence_exact(b, yv) if exact else _divergence_hutchinson(b, yv, probes)
        return b.detach(), div.detach()

    tdq = _torchdiffeq()
    times = torch.tensor([t_end, t_start], dtype=x.dtype, device=x.device)
    state0 = (x.detach(), torch.zeros(x.shape[0], dtype=x.dtype, device=x.device))
    try:
        xs, deltas = tdq.odeint(func, state0, times, rtol=rtol, atol=atol, method=method,
                                options={"step_t": times[-1:]})
    except AssertionError as err:
        raise ValueError(f"{method} failed: {err}; loosen rtol/atol") from None
    x0, delta = xs[-1], deltas[-1]
    lp0 = source_log_prob(x0)
    if not isinstance(lp0, Tensor) or lp0.shape != (x.shape[0],):
        raise ValueError(f"source_log_prob must return a tensor of shape ({x.shape[0]},)")
    return LikelihoodResult(log_prob=lp0 + delta, log_prob_source=lp0, delta=delta, nfe=counted.nfe, x0=x0)
