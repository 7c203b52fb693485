r"""Entropic-OT benchmark pairs with a known conditional plan (Gushchin et al., NeurIPS 2023, "Building the Bridge
of Schrödinger: A Continuous Entropic Optimal Transport Benchmark", mixtures track; ``reference/interpolants.md``
§6).

Construction (the paper's idea; constants reconstructed, see below): a Gaussian-mixture source ``p0`` and a
mixture-of-Gaussians *adjusted potential* ``v*(y) = Σ_k α_k N(y | r_k, εS_k)`` define the plan
``π*(x, y) = p0(x) π*(y|x)`` with ``π*(y|x) ∝ e^{⟨x,y⟩/ε} v*(y)``. Its density is
``p0(x)/c*(x) · e^{−|x|²/(2ε)} · e^{−|x−y|²/(2ε)} · e^{|y|²/(2ε)} v*(y)`` — of the form
``f(x) e^{−|x−y|²/(2ε)} g(y)`` — so it *is* the entropic OT plan (cost ½|x−y|², regulariser ε) between ``p0``
and its push-forward ``p1``, i.e. the static Schrödinger bridge with reference ``W^ε``. The conditional plan is
the closed-form Gaussian mixture of :class:`~genlab.models.light_sb.LightSB` (Prop. 3.2 of Korotin et al. 2024),
whose per-``x`` mean and covariance are exact.

Reconstructed constants (said plainly; the official pairs are downloaded checkpoints we do not use): ``p0`` has
4 components with means ``N(0, I_D)`` and isotropic variance 0.25; ``v*`` has 5 equally weighted components with
means ``N(0, I_D)`` and diagonal ``S_k`` with entries uniform in ``[0.5, 1.5]``; everything is drawn from
``seed``. The family is the one Light SB fits (diagonal ``S``), as in the paper, where the benchmark is also
realisable by Light SB.

The metric (cBW²₂-UVP) lives in :mod:`genlab.metrics.eot`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.analytic.gmm import GaussianMixture
from genlab.models.light_sb import LightSB

__all__ = ["EOTBenchmark", "eot_benchmark"]


@dataclass
class EOTBenchmark:
    """A source mixture and a ground-truth mixture-potential conditional plan (float64).

    Attributes:
        dim: Dimension ``D``.
        eps: Entropic regularisation ``ε``.
        source: The source law ``p0``.
        truth: The ground-truth potential as a :class:`LightSB` (its :meth:`~LightSB.plan` is ``π*(·|x)``).
        seed: Seed the pair was built from.
    """

    dim: int
    eps: float
    source: GaussianMixture
    truth: LightSB
    seed: int

    def sample_source(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of ``p0``, ``(n, D)`` float64."""
        return self.source.sample(n, generator=generator)

    def sample_pairs(self, n: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` pairs ``(x, y) ~ π*`` (``x`` first, then ``y``), float64."""
        x = self.sample_source(n, generator=generator)
        with torch.no_grad():
            return x, self.truth.sample_plan(x, generator=generator)

    def sample_target(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of ``p1`` (the push-forward of ``p0`` by ``π*``)."""
        return self.sample_pairs(n, generator=generator)[1]

    def conditional_moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Exact mean ``(n, D)`` and covariance ``(n, D, D)`` of ``π*(·|x)``."""
        with torch.no_grad():
            plan = self.truth.plan(x.to(torch.float64))
            return plan.mean(), plan.cov()

    def target_variance(self, *, n: int = 100_000, seed: int = 12345) -> float:
        """``Var(p1) = tr Cov(p1)``: exact ``E_x tr Cov(y|x) + tr Cov_x(E[y|x])`` averaged over ``n`` source draws."""
        x = self.sample_source(n, generator=torch.Generator().manual_seed(seed))
        mean, cov = self.conditional_moments(x)
        within = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1).mean()
        between = mean.var(0, unbiased=True).sum()
        return float(within + between)


def eot_benchmark(dim: int, eps: float, *, seed: int = 0) -> EOTBenchmark:
    """Build the benchmark pair for ``(D, ε)`` (see the module docstring for the construction).

    Args:
        dim: Dimension ``D >= 1`` (the paper uses 2, 16, 64, 128).
        eps: ``ε > 0`` (the paper uses 0.1, 1, 10).
        seed: Seed of the random constants.

    Returns:
        :class:`EOTBenchmark`.

    Raises:
        ValueError: For a bad ``dim`` or ``eps``.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be an int >= 1; got {dim!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or not eps > 0:
        raise ValueError(f"eps must be a finite float > 0; got {eps!r}")
    g = torch.Generator().manual_seed(1_000_003 * seed + 7919 * dim + 17)
    dt = torch.float64
    source = GaussianMixture(torch.randn(4, dim, generator=g, dtype=dt), 0.25 * torch.ones(4, dtype=dt))
    k = 5
    truth = LightSB(dim, k, float(eps), cov="diagonal").to(dt)
    with torch.no_grad():
        truth.log_alpha_raw.fill_(float(eps) * math.log(1.0 / k))
        truth.r.copy_(torch.randn(k, dim, generator=g, dtype=dt))
        truth.log_s.copy_(torch.log(0.5 + torch.rand(k, dim, generator=g, dtype=dt)))
    truth.requires_grad_(False)
    return EOTBenchmark(dim=dim, eps=float(eps), source=source, truth=truth, seed=seed)
