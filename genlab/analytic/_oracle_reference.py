"""The pre-issue-13 exact GMM oracle (per-sample broadcast triangular solves), kept verbatim as the reference that
the fast oracle must match to 1e-12 in float64 (``tests/analytic/test_gmm_oracle_fast.py``) and as the "before"
timing of ``experiments/bench_gmm_oracle.py``. Private: nothing in genlab imports it."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.analytic.fields import ConditionalGMM, PosteriorMeans
from genlab.analytic.gmm import GaussianMixture
from genlab.interpolants.interpolant import Interpolant
from genlab.utils import as_time

__all__ = ["reference_posterior_means"]


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def reference_posterior_means(
    interpolant: Interpolant,
    x_t: Tensor,
    t: Tensor | float,
    *,
    source: GaussianMixture | str | None,
    target: GaussianMixture | ConditionalGMM,
    x0: Tensor | None = None,
) -> PosteriorMeans:
    """Exact posterior means of both ends and the score of ρ_t at ``x_t`` (float64 internally).

    Args:
        interpolant: The path.
        x_t: States ``(B, d)``.
        t: Time(s).
        source: ``"gaussian"`` (N(0, I)), a :class:`GaussianMixture`, or ``None`` when ``x0`` is known (bridges).
        target: The data distribution, or a :class:`ConditionalGMM` given x0.
        x0: Known source per sample (bridges).

    Returns:
        :class:`PosteriorMeans` in ``x_t``'s dtype.
    """
    if x_t.ndim != 2:
        raise ValueError(f"exact fields work on vectors (B, d); got x_t of shape {tuple(x_t.shape)}")
    b, d = x_t.shape
    dt = torch.float64 if x_t.device.type != "mps" else torch.float32
    dev = x_t.device
    x = x_t.to(dt)
    tt = as_time(t, x_t).to(dt)
    # ---- components of the source: means (B|1, K0, d), covs (K0, d, d), log-weights (K0,)
    if x0 is not None:
        if x0.shape != x_t.shape:
            raise ValueError(f"x0 must have the shape of x_t {tuple(x_t.shape)}, got {tuple(x0.shape)}")
        mu0 = x0.to(dt)[:, None, :]
        c0 = torch.zeros(1, d, d, dtype=dt, device=dev)
        lw0 = torch.zeros(1, dtype=dt, device=dev)
    elif isinstance(source, GaussianMixture):
        gm = source.to(dev, dt)
        if gm.dim != d:
            raise ValueError(f"source dimension {gm.dim} differs from x_t's {d}")
        mu0, c0, lw0 = gm.means[None], gm.covs, torch.log(gm.weights)
    elif source == "gaussian":
        mu0 = torch.zeros(1, 1, d, dtype=dt, device=dev)
        c0 = torch.eye(d, dtype=dt, device=dev)[None]
        lw0 = torch.zeros(1, dtype=dt, device=dev)
    else:
        raise ValueError("source must be 'gaussian', a GaussianMixture, or None with a known x0 (bridges)")
    # ---- components of the target
    if isinstance(target, ConditionalGMM):
        if x0 is None:
            raise ValueError("a ConditionalGMM target needs the known source x0")
        gm1 = target.base.to(dev, dt)
        mu1 = gm1.means[None] + target.scale * x0.to(dt)[:, None, :]
    elif isinstance(target, GaussianMixture):
        gm1 = target.to(dev, dt)
        mu1 = gm1.means[None]
    else:
        raise TypeError(f"target must be a GaussianMixture or ConditionalGMM, got {type(target).__name__}")
    if gm1.dim != d:
        raise ValueError(f"target dimension {gm1.dim} differs from x_t's {d}")
    c1, lw1 = gm1.covs, torch.log(gm1.weights)
    k0, k1 = c0.shape[0], c1.shape[0]
    eye = torch.eye(d, dtype=dt, device=dev)

    uniform = bool((tt == tt[0]).all())
    out0 = torch.empty_like(x)
    out1 = torch.empty_like(x)
    outs = torch.empty_like(x)
    chunk = b if uniform else max(1, int(2e6 // max(1, k0 * k1 * d * d)))
    for sl in _chunks(b, chunk):
        tc = tt[sl][:1] if uniform else tt[sl]  # (n',)
        c = interpolant.schedule.coeffs(tc)
        al, be, ga = c.alpha[:, None, None, None, None], c.beta[:, None, None, None, None], c.gamma
        ga = ga[:, None, None, None, None] if interpolant.schedule.has_noise else torch.zeros_like(al)
        cov = al**2 * c0[None, :, None] + be**2 * c1[None, None, :] + ga**2 * eye  # (n', K0, K1, d, d)
        chol, info = torch.linalg.cholesky_ex(cov)
        if bool((info != 0).any()):
            # A singular C_ij: x_t is a point mass given the pair (a bridge at its known source t = 0, a point-mass
            # target at t = 1). Factor C + δI there instead; r = 0 on the support, so the posterior means take
            # their exact limits (e.g. E[x1 | x0] at the bridge start) and only the singular score is regularised.
            scale = cov.diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp_min(1.0)[..., None, None]
            jitter = torch.where((info != 0)[..., None, None], 1e-12 * scale * eye, torch.zeros_like(cov))
            chol = torch.linalg.cholesky(cov + jitter)
        m0 = mu0[sl] if mu0.shape[0] > 1 else mu0
        m1 = mu1[sl] if mu1.shape[0] > 1 else mu1
        a2 = c.alpha[:, None, None, None]
        b2 = c.beta[:, None, None, None]
        mean = a2 * m0[:, :, None, :] + b2 * m1[:, None, :, :]  # (n|1, K0, K1, d)
        r = x[sl][:, None, None, :] - mean  # (n, K0, K1, d)
        half = torch.linalg.solve_triangular(chol, r[..., None], upper=False)  # (n, K0, K1, d, 1)
        sol = torch.linalg.solve_triangular(chol.transpose(-1, -2), half, upper=True).squeeze(-1)  # C⁻¹ r
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (n', K0, K1)
        logp = -0.5 * (half.squeeze(-1).pow(2).sum(-1) + logdet + d * math.log(2 * math.pi))
        logw = logp + lw0[None, :, None] + lw1[None, None, :]
        w = torch.softmax(logw.flatten(1), dim=1).view_as(logw)[..., None]  # (n, K0, K1, 1)
        e0 = m0[:, :, None, :] + c.alpha[:, None, None, None] * torch.einsum("kij,nklj->nkli", c0, sol)
        e1 = m1[:, None, :, :] + c.beta[:, None, None, None] * torch.einsum("lij,nklj->nkli", c1, sol)
        out0[sl] = (w * e0).sum((1, 2))
        out1[sl] = (w * e1).sum((1, 2))
        outs[sl] = -(w * sol).sum((1, 2))
    score = outs.to(x_t.dtype) if interpolant.has_noise else None
    return PosteriorMeans(out0.to(x_t.dtype), out1.to(x_t.dtype), score)
