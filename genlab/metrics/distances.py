"""Distances between sample sets and between Gaussians.

* :func:`sliced_wasserstein`: ``SW_p`` (Rabin et al. 2011; Bonneel et al. 2015) with the exact 1-D ``W_p``
  between empirical measures of possibly different sizes.
* :func:`mmd2` / :func:`mmd`: maximum mean discrepancy with a sum of RBF kernels (Gretton et al., JMLR 2012,
  Eq. 3 biased V-statistic and Lemma 6 unbiased U-statistic).
* :func:`energy_distance`: Székely & Rizzo's energy distance ``2E|X−Y| − E|X−X'| − E|Y−Y'|``.
* :func:`frechet_distance`, :func:`gaussian_w2`, :func:`gaussian_w2_samples`: the closed-form 2-Wasserstein
  (Bures–Wasserstein) distance between Gaussians (Dowson & Landau 1982; Givens & Shortt 1984), the formula
  behind FID (Heusel et al. 2017, Eq. 6).

Samples are ``(N, d)`` tensors (``(N,)`` is read as ``d = 1``; ``(N, ...)`` is flattened per sample). All
arithmetic runs in float64 where the device supports it; results are 0-d tensors on the inputs' device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.utils import schedule_dtype

__all__ = [
    "GaussianMoments",
    "energy_distance",
    "frechet_distance",
    "gaussian_moments",
    "gaussian_w2",
    "gaussian_w2_samples",
    "mmd",
    "mmd2",
    "sliced_wasserstein",
    "sqrtm_psd",
]


def _samples(x: Tensor, name: str, fn: str) -> Tensor:
    """``x`` as a ``(N, d)`` tensor in the compute dtype."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{fn}: {name} must have shape (N, d) with N >= 1; got {tuple(x.shape)}")
    x = x.reshape(x.shape[0], -1) if x.ndim != 1 else x.unsqueeze(1)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{fn}: {name} contains NaN or infinite values")
    return x.to(schedule_dtype(x.device))


def _pair(x: Tensor, y: Tensor, fn: str) -> tuple[Tensor, Tensor]:
    xs, ys = _samples(x, "x", fn), _samples(y, "y", fn)
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(
            f"{fn}: x and y must have the same dimension per sample; got {xs.shape[1]} and {ys.shape[1]}"
        )
    return xs, ys.to(xs.device)


def _sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances (exact difference form, no ``|a|² + |b|² − 2ab`` cancellation)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist") ** 2


def sliced_wasserstein(
    x: Tensor,
    y: Tensor,
    *,
    n_projections: int = 128,
    p: int = 2,
    directions: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sliced ``p``-Wasserstein distance ``SW_p = (E_θ W_p^p(θ#μ̂, θ#ν̂))^{1/p}``, ``θ`` uniform on the sphere.

    For each direction the 1-D distance is computed exactly from the quantile functions,
    ``W_p^p = ∫₀¹ |F⁻¹(u) − G⁻¹(u)|^p du``; for empirical measures of sizes ``n`` and ``m`` both quantile
    functions are step functions, constant between consecutive points of ``{i/n} ∪ {j/m}``, so the integral
    is a finite sum (it reduces to ``mean |x_(i) − y_(i)|^p`` when ``n = m``). The expectation over ``θ`` is
    a Monte Carlo mean over ``n_projections`` directions.

    Args:
        x: Samples ``(n, d)``.
        y: Samples ``(m, d)``; ``m`` may differ from ``n``.
        n_projections: Number of random directions (ignored if ``directions`` is given).
        p: Order, 1 or 2.
        directions: Optional ``(d, L)`` directions (columns are normalised to unit length).
        generator: Generator for the random directions (drawn on its device).

    Returns:
        0-d tensor ``SW_p``.
    """
    fn = "sliced_wasserstein"
    xs, ys = _pair(x, y, fn)
    if p not in (1, 2):
        raise ValueError(f"{fn}: p must be 1 or 2; got {p!r}")
    d = xs.shape[1]
    if directions is None:
        if isinstance(n_projections, bool) or not isinstance(n_projections, int) or n_projections < 1:
            raise ValueError(f"{fn}: n_projections must be a positive int; got {n_projections!r}")
        draw = generator.device if generator is not None else xs.device
        theta = torch.randn(d, n_projections, generator=generator, device=draw, dtype=xs.dtype).to(xs.device)
    else:
        if directions.ndim != 2 or directions.shape[0] != d:
            raise ValueError(f"{fn}: directions must have shape ({d}, L); got {tuple(directions.shape)}")
        theta = directions.to(device=xs.device, dtype=xs.dtype)
    norms = theta.norm(dim=0, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError(f"{fn}: directions contain a zero column")
    theta = theta / norms
    px = torch.sort(xs @ theta, dim=0).values  # (n, L)
    py = torch.sort(ys @ theta, dim=0).values  # (m, L)
    n, m = px.shape[0], py.shape[0]
    if n == m:
        cost = (px - py).abs().pow(p).mean(dim=0)
    else:
        u = torch.cat(
            [
                torch.arange(1, n + 1, device=xs.device, dtype=xs.dtype) / n,
                torch.arange(1, m + 1, device=xs.device, dtype=xs.dtype) / m,
            ]
        )
        u = torch.cat([u.new_zeros(1), torch.sort(u).values])
        widths = u[1:] - u[:-1]
        mid = 0.5 * (u[1:] + u[:-1])
        ix = torch.clamp((mid * n).floor().long(), max=n - 1)
        iy = torch.clamp((mid * m).floor().long(), max=m - 1)
        cost = (widths[:, None] * (px[ix] - py[iy]).abs().pow(p)).sum(dim=0)
    return cost.mean().pow(1.0 / p)


def _bandwidths(xs: Tensor, ys: Tensor, bandwidths: Sequence[float] | None) -> Tensor:
    if bandwidths is not None:
        bw = torch.as_tensor(list(bandwidths), dtype=xs.dtype, device=xs.device).flatten()
        if bw.numel() == 0 or not bool((bw > 0).all()) or not bool(torch.isfinite(bw).all()):
            raise ValueError(
                f"mmd2: bandwidths must be a non-empty sequence of positive floats; got {bandwidths!r}"
            )
        return bw
    pooled = torch.cat([xs[:512], ys[:512]])
    dist = torch.cdist(pooled, pooled, compute_mode="donot_use_mm_for_euclid_dist")
    off = dist[~torch.eye(pooled.shape[0], dtype=torch.bool, device=pooled.device)]
    med = off.median() if off.numel() else dist.new_tensor(1.0)
    med = torch.where(med > 0, med, med.new_tensor(1.0))
    return med * torch.tensor([0.25, 0.5, 1.0, 2.0, 4.0], dtype=xs.dtype, device=xs.device)


def _rbf(sq: Tensor, bw: Tensor) -> Tensor:
    """Sum of RBF kernels over the bandwidths (a loop keeps memory at one ``(n, m)`` matrix)."""
    out = torch.zeros_like(sq)
    for sigma in bw:
        out += torch.exp(-sq / (2.0 * sigma**2))
    return out


def mmd2(
    x: Tensor, y: Tensor, *, bandwidths: Sequence[float] | None = None, unbiased: bool = False
) -> Tensor:
    """Squared MMD with the kernel ``k(a, b) = Σ_σ exp(−‖a − b‖²/(2σ²))``.

    Biased (V-statistic, Gretton et al. 2012 Eq. 5): ``mean K_xx + mean K_yy − 2 mean K_xy`` over all pairs,
    ``≥ 0`` and exactly 0 for identical sets. Unbiased (Lemma 6): the within-set means skip the diagonal;
    it can be slightly negative. Population value for ``N(μ₁, s²I)`` vs ``N(μ₂, s²I)`` in ``d`` dims and one
    bandwidth: ``2 (σ²/(σ²+2s²))^{d/2} (1 − exp(−‖μ₁−μ₂‖²/(2(σ²+2s²))))``.

    Args:
        x: Samples ``(n, d)`` (``n >= 2`` if ``unbiased``).
        y: Samples ``(m, d)``.
        bandwidths: Kernel bandwidths ``σ``. Default: median heuristic, the median pairwise distance of
            the first 512 points of each set pooled, times ``(1/4, 1/2, 1, 2, 4)``.
        unbiased: Use the unbiased U-statistic.

    Returns:
        0-d tensor ``MMD²``.
    """
    xs, ys = _pair(x, y, "mmd2")
    bw = _bandwidths(xs, ys, bandwidths)
    kxx, kyy, kxy = _rbf(_sq_dists(xs, xs), bw), _rbf(_sq_dists(ys, ys), bw), _rbf(_sq_dists(xs, ys), bw)
    n, m = xs.shape[0], ys.shape[0]
    if unbiased:
        if n < 2 or m < 2:
            raise ValueError(f"mmd2: unbiased=True needs at least 2 samples in x and y; got {n} and {m}")
        exx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        eyy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    else:
        exx, eyy = kxx.mean(), kyy.mean()
    return exx + eyy - 2.0 * kxy.mean()


def mmd(x: Tensor, y: Tensor, *, bandwidths: Sequence[float] | None = None) -> Tensor:
    """MMD, the square root of the biased :func:`mmd2` (a norm of mean-embedding differences, so ``≥ 0``).

    Args:
        x: Samples ``(n, d)``.
        y: Samples ``(m, d)``.
        bandwidths: Kernel bandwidths (see :func:`mmd2`).

    Returns:
        0-d tensor.
    """
    return mmd2(x, y, bandwidths=bandwidths, unbiased=False).clamp_min(0.0).sqrt()


def energy_distance(x: Tensor, y: Tensor, *, unbiased: bool = False) -> Tensor:
    """Energy distance ``D² = 2E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖`` (Székely & Rizzo 2013, Eq. 1).

    In 1-D, ``D² = 2∫(F − G)²``, so the biased value equals ``scipy.stats.energy_distance(x, y)**2``.
    The biased (V-statistic) value is ``≥ 0`` and 0 for identical sets; ``unbiased=True`` skips the diagonals
    of the within-set means.

    Args:
        x: Samples ``(n, d)``.
        y: Samples ``(m, d)``.
        unbiased: Use U-statistics for the within-set terms.

    Returns:
        0-d tensor ``D²``.
    """
    xs, ys = _pair(x, y, "energy_distance")
    cd = lambda a, b: torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
    dxx, dyy, dxy = cd(xs, xs), cd(ys, ys), cd(xs, ys)
    n, m = xs.shape[0], ys.shape[0]
    if unbiased:
        if n < 2 or m < 2:
            raise ValueError(
                f"energy_distance: unbiased=True needs at least 2 samples in x and y; got {n} and {m}"
            )
        exx, eyy = dxx.sum() / (n * (n - 1)), dyy.sum() / (m * (m - 1))
    else:
        exx, eyy = dxx.mean(), dyy.mean()
    return 2.0 * dxy.mean() - exx - eyy


@dataclass(frozen=True)
class GaussianMoments:
    """Mean and covariance of a Gaussian fit.

    Attributes:
        mean: ``(d,)``.
        cov: ``(d, d)``.
    """

    mean: Tensor
    cov: Tensor


def gaussian_moments(x: Tensor) -> GaussianMoments:
    """Sample mean and unbiased sample covariance (``n − 1`` denominator, as ``numpy.cov`` and FID code).

    Args:
        x: Samples ``(n, d)`` with ``n >= 2``.

    Returns:
        :class:`GaussianMoments` in the compute dtype (float64 where available).
    """
    xs = _samples(x, "x", "gaussian_moments")
    if xs.shape[0] < 2:
        raise ValueError(f"gaussian_moments: need at least 2 samples; got {xs.shape[0]}")
    mean = xs.mean(dim=0)
    xc = xs - mean
    return GaussianMoments(mean=mean, cov=xc.T @ xc / (xs.shape[0] - 1))


def sqrtm_psd(a: Tensor) -> Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix via ``eigh``.

    ``a`` is symmetrised, eigenvalues below 0 (rounding) are clipped to 0, and ``V diag(√λ) Vᵀ`` is returned.

    Args:
        a: ``(..., d, d)`` symmetric PSD matrix.

    Returns:
        ``(..., d, d)`` symmetric PSD ``a^{1/2}`` in the compute dtype.
    """
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"sqrtm_psd: a must be a square matrix (..., d, d); got {tuple(a.shape)}")
    a = a.to(schedule_dtype(a.device))
    evals, evecs = torch.linalg.eigh(0.5 * (a + a.transpose(-1, -2)))
    return (evecs * evals.clamp_min(0.0).sqrt().unsqueeze(-2)) @ evecs.transpose(-1, -2)


def _moments(mu: Tensor, cov: Tensor, name: str) -> tuple[Tensor, Tensor]:
    fn = "frechet_distance"
    mu = torch.as_tensor(mu)
    cov = torch.as_tensor(cov)
    if mu.ndim != 1:
        raise ValueError(f"{fn}: mu{name} must have shape (d,); got {tuple(mu.shape)}")
    d = mu.shape[0]
    if cov.shape != (d, d):
        raise ValueError(
            f"{fn}: cov{name} must have shape ({d}, {d}) to match mu{name}; got {tuple(cov.shape)}"
        )
    dtype = schedule_dtype(mu.device)
    return mu.to(dtype), cov.to(device=mu.device, dtype=dtype)


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> Tensor:
    """Squared 2-Wasserstein distance between ``N(μ₁, Σ₁)`` and ``N(μ₂, Σ₂)`` (the Fréchet/FID formula).

    ``W₂² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}`` (Dowson & Landau 1982;
    Heusel et al. 2017, Eq. 6). The trace term is computed from the eigenvalues of the symmetric PSD matrix
    ``Σ₁^{1/2} Σ₂ Σ₁^{1/2}`` in float64, which is stable for singular covariances (no ``sqrtm`` of the
    non-symmetric ``Σ₁Σ₂``). The result is clipped at 0 against rounding.

    Args:
        mu1: Mean ``(d,)``.
        cov1: Covariance ``(d, d)`` (symmetric PSD).
        mu2: Mean ``(d,)``.
        cov2: Covariance ``(d, d)`` (symmetric PSD).

    Returns:
        0-d tensor ``W₂²``.
    """
    m1, c1 = _moments(mu1, cov1, "1")
    m2, c2 = _moments(mu2, cov2, "2")
    if m1.shape != m2.shape:
        raise ValueError(
            f"frechet_distance: mu1 and mu2 must have the same dimension; got {m1.shape[0]} and {m2.shape[0]}"
        )
    m2, c2 = m2.to(m1.device), c2.to(m1.device)
    s1 = sqrtm_psd(c1)
    inner = s1 @ c2 @ s1
    tr_cross = torch.linalg.eigvalsh(0.5 * (inner + inner.T)).clamp_min(0.0).sqrt().sum()
    value = (m1 - m2).pow(2).sum() + torch.trace(c1) + torch.trace(c2) - 2.0 * tr_cross
    return value.clamp_min(0.0)


def gaussian_w2(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> Tensor:
    """2-Wasserstein (Bures–Wasserstein) distance between two Gaussians: ``sqrt`` of :func:`frechet_distance`.

    Args:
        mu1: Mean ``(d,)``.
        cov1: Covariance ``(d, d)``.
        mu2: Mean ``(d,)``.
        cov2: Covariance ``(d, d)``.

    Returns:
        0-d tensor ``W₂``.
    """
    return frechet_distance(mu1, cov1, mu2, cov2).sqrt()


def gaussian_w2_samples(x: Tensor, y: Tensor) -> Tensor:
    """:func:`gaussian_w2` between the Gaussian fits (:func:`gaussian_moments`) of two sample sets.

    Args:
        x: Samples ``(n, d)``, ``n >= 2``.
        y: Samples ``(m, d)``, ``m >= 2``.

    Returns:
        0-d tensor ``W₂`` between ``N(x̄, Σ̂_x)`` and ``N(ȳ, Σ̂_y)``.
    """
    xs, ys = _pair(x, y, "gaussian_w2_samples")
    a, b = gaussian_moments(xs), gaussian_moments(ys)
    return gaussian_w2(a.mean, a.cov, b.mean, b.cov)
