"""Gaussian mixtures with exact sampling and log-densities (the ends of every analytic test)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.utils import randn_per_sample

__all__ = ["GaussianMixture"]


@dataclass(eq=False)
class GaussianMixture:
    """``Σ_k w_k N(μ_k, Σ_k)`` in ``d`` dimensions.

    Args:
        means: ``(K, d)`` component means.
        covs: ``(K, d, d)`` full covariances, ``(K, d)`` diagonal variances, ``(K,)`` isotropic variances or a
            float (shared isotropic variance).
        weights: ``(K,)`` mixture weights (normalised here); uniform if ``None``.
    """

    means: Tensor
    covs: Tensor | float
    weights: Tensor | None = None

    def __post_init__(self) -> None:
        means = torch.as_tensor(self.means)
        if means.ndim == 1:
            means = means[None]
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, d), got {tuple(means.shape)}")
        if not means.is_floating_point():
            means = means.double()
        k, d = means.shape
        covs = torch.as_tensor(self.covs, dtype=means.dtype, device=means.device)
        if covs.ndim == 0:
            covs = covs * torch.eye(d, dtype=means.dtype, device=means.device).expand(k, d, d)
        elif covs.ndim == 1:
            if covs.shape[0] != k:
                raise ValueError(f"isotropic covs must have shape (K,)=({k},), got {tuple(covs.shape)}")
            covs = covs[:, None, None] * torch.eye(d, dtype=means.dtype, device=means.device)
        elif covs.ndim == 2:
            if covs.shape != (k, d):
                raise ValueError(f"diagonal covs must have shape (K, d)=({k}, {d}), got {tuple(covs.shape)}")
            covs = torch.diag_embed(covs)
        elif covs.shape != (k, d, d):
            raise ValueError(f"full covs must have shape (K, d, d)=({k}, {d}, {d}), got {tuple(covs.shape)}")
        covs = 0.5 * (covs + covs.transpose(-1, -2))
        if self.weights is None:
            weights = torch.full((k,), 1.0 / k, dtype=means.dtype, device=means.device)
        else:
            weights = torch.as_tensor(self.weights, dtype=means.dtype, device=means.device)
            if weights.shape != (k,) or bool((weights < 0).any()) or not float(weights.sum()) > 0:
                raise ValueError(f"weights must be ({k},) non-negative with a positive sum")
            weights = weights / weights.sum()
        self.means, self.covs, self.weights = means, covs, weights

    @property
    def dim(self) -> int:
        """Dimension d."""
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        """Number of components K."""
        return self.means.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> GaussianMixture:
        """A copy on ``device`` / in ``dtype``."""
        return GaussianMixture(self.means.to(device, dtype), self.covs.to(device, dtype), self.weights.to(device, dtype))

    @property
    def mean(self) -> Tensor:
        """Mixture mean Σ w_k μ_k."""
        return (self.weights[:, None] * self.means).sum(0)

    @property
    def cov(self) -> Tensor:
        """Mixture covariance Σ w_k (Σ_k + μ_k μ_kᵀ) − μμᵀ."""
        m = self.mean
        second = (self.weights[:, None, None] * (self.covs + self.means[:, :, None] * self.means[:, None, :])).sum(0)
        return second - m[:, None] * m[None, :]

    def sample(self, n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype | None = None) -> Tensor:
        """Draw ``n`` samples (component indices and noise drawn per sample).

        Args:
            n: Number of samples.
            generator: Random generator (on the mixture's device).
            dtype: Output dtype (default: the mixture's).

        Returns:
            ``(n, d)`` samples.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        dev = self.means.device
        # One draw of d + 1 normals per sample (the first picks the component through u = Φ(z)), so the first k
        # rows of a batch of n equal a batch of k drawn from the same seed.
        draw = randn_per_sample((n, self.dim + 1), generator=generator, device=dev, dtype=torch.float64)
        u = torch.special.ndtr(draw[:, 0])
        cdf = torch.cumsum(self.weights.double(), 0)
        idx = torch.searchsorted(cdf, u.contiguous()).clamp_max(self.n_components - 1)
        eps = draw[:, 1:].to(self.means.dtype)
        root = _psd_sqrt(self.covs)
        x = self.means[idx] + torch.einsum("nij,nj->ni", root[idx], eps)
        return x.to(dtype) if dtype is not None else x

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density at ``x`` of shape ``(n, d)``."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        xd = x.to(self.means.dtype)
        chol = torch.linalg.cholesky(self.covs)
        r = xd[:, None, :] - self.means[None]  # (n, K, d)
        # one factor per component, all samples as right-hand sides of one triangular solve
        sol = torch.linalg.solve_triangular(chol, r.permute(1, 2, 0), upper=False)  # (K, d, n)
        maha = sol.pow(2).sum(1).T
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        comp = -0.5 * (maha + logdet[None] + self.dim * math.log(2 * math.pi))
        return torch.logsumexp(comp + torch.log(self.weights)[None], dim=1).to(x.dtype)

    def score(self, x: Tensor) -> Tensor:
        """∇ log p(x)."""
        xd = x.detach().to(self.means.dtype).requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.log_prob(xd).sum(), xd)
        return g.to(x.dtype)


def _psd_sqrt(covs: Tensor) -> Tensor:
    """Symmetric square roots of PSD matrices (used when a covariance is singular, e.g. a point mass)."""
    evals, evecs = torch.linalg.eigh(covs)
    return evecs @ torch.diag_embed(evals.clamp_min(0).sqrt()) @ evecs.transpose(-1, -2)
