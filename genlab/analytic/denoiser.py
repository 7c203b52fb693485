"""Exact Tweedie denoiser of an isotropic Gaussian mixture on any Gaussian-source path (an analytic oracle).

Moved here from ``genlab.inverse.priors`` (which re-exports it): it is an exact field of the mixture, like
:func:`genlab.analytic.exact_field`, and guidance, samplers and tests use it as a prior's denoiser.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.analytic.gmm import GaussianMixture
from genlab.interpolants.interpolant import Interpolant
from genlab.utils import as_time

__all__ = ["GMMDenoiser"]


class GMMDenoiser(nn.Module):
    """Exact Tweedie denoiser ``E[x1 | x_t]`` of an isotropic Gaussian mixture on a Gaussian-source path.

    For components ``N(μ_k, τ_k² I)`` and ``x_t = a·x1 + s·ε`` (``reference/inverse.md`` §5.2), with
    ``c_k = a²τ_k² + s²``: responsibilities ``r_k ∝ w_k c_k^{−d/2} exp(−‖x − aμ_k‖²/2c_k)`` (log-sum-exp) and
    ``x̂1 = Σ_k r_k [μ_k + (aτ_k²/c_k)(x − aμ_k)]``. Cost ``O(B·K·d)`` and differentiable to any order, where
    :func:`genlab.analytic.exact_field` (any covariance) costs ``O(B·K·d³)``; tests check they agree.

    Args:
        gmm: The mixture; every component covariance must be a multiple of the identity.
        interpolant: Gaussian-source path.
    """

    def __init__(self, gmm: GaussianMixture, interpolant: Interpolant) -> None:
        super().__init__()
        if not interpolant.gaussian_source:
            raise ValueError("GMMDenoiser needs a Gaussian-source path")
        d = gmm.dim
        tau2 = torch.diagonal(gmm.covs, dim1=-2, dim2=-1).mean(-1)
        iso = tau2[:, None, None] * torch.eye(d, dtype=gmm.covs.dtype, device=gmm.covs.device)
        if not torch.allclose(gmm.covs, iso, atol=1e-10 * float(tau2.max()) + 1e-12):
            raise ValueError(
                "GMMDenoiser needs isotropic components (Σ_k = τ_k² I); use DiffusionPrior.from_gmm(..., "
                "implementation='analytic') for general covariances"
            )
        self.interpolant = interpolant
        self.register_buffer("means", gmm.means.double().clone())
        self.register_buffer("tau2", tau2.double().clone())
        self.register_buffer("log_weights", torch.log(gmm.weights.double()).clone())

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        """``E[x1 | x_t]`` for ``x_t`` of shape ``(B, d)`` at genlab time(s) ``t``."""
        c = self.interpolant.schedule.coeffs(as_time(t, x_t))
        return self.tweedie(x_t, c.beta, c.alpha)

    def tweedie(self, x_t: Tensor, a: Tensor | float, s: Tensor | float) -> Tensor:
        """``E[x1 | a·x1 + s·ε = x_t]`` for given signal/noise coefficients (scalars or ``(B,)``).

        With ``a = 1`` this is the variance-exploding denoiser ``D(x, σ = s)`` used by VE-convention peers.
        """
        if x_t.ndim != 2 or x_t.shape[1] != self.means.shape[1]:
            raise ValueError(f"x_t must have shape (B, {self.means.shape[1]}), got {tuple(x_t.shape)}")
        dt = self.means.dtype if x_t.device.type != "mps" else torch.float32
        x = x_t.to(dt)
        b = x.shape[0]
        a = torch.as_tensor(a, dtype=dt, device=x.device).reshape(-1, 1).expand(b, 1)
        s = torch.as_tensor(s, dtype=dt, device=x.device).reshape(-1, 1).expand(b, 1)
        mu = self.means.to(device=x.device, dtype=dt)
        tau2 = self.tau2.to(device=x.device, dtype=dt)[None]  # (1, K)
        var = a**2 * tau2 + s**2  # (B, K)
        d = x.shape[1]
        # ‖x − aμ_k‖² by expansion (matrix products instead of a (B, K, d) difference; float64 keeps it exact
        # to ~1e-12 at the scales of the tests and benchmarks)
        sq = ((x**2).sum(1, keepdim=True) - 2 * a * (x @ mu.T) + a**2 * (mu**2).sum(1)[None]).clamp_min(0)
        logits = self.log_weights.to(device=x.device, dtype=dt)[None] - 0.5 * sq / var - 0.5 * d * torch.log(var)
        r = torch.softmax(logits, dim=1)  # (B, K)
        gain = a * tau2 / var  # (B, K)
        # Σ_k r_k [μ_k + g_k (x − aμ_k)] = (r(1 − a g)) μ + (Σ_k r_k g_k) x
        out = (r * (1 - a * gain)) @ mu + (r * gain).sum(1, keepdim=True) * x
        return out.to(x_t.dtype)
