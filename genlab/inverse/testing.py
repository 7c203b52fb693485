"""Analytic test problems and posterior metrics for inverse-problem methods (no training needed).

* :func:`mcgdiff_problem`: the Gaussian-mixture protocol of MCGdiff (Cardoso, Janati el Idrissi, Le Corff &
  Moulines, ICLR'24; ``reference/inverse.md`` §5.1): 25 unit-covariance components on the grid
  ``{−16, −8, 0, 8, 16}²`` tiled ``d/2`` times, weights ``∝ N(0, 1)²``, ``A = U diag(s) V[:d_y]`` from the SVD of a
  Gaussian matrix with ``s`` sorted uniform, ``σ = U(0, 1)·max(s)``, ``y = A x* + σ n``; the exact posterior comes
  from :func:`genlab.analytic.gmm_posterior`.
* Metrics: sliced W1 (the protocol's metric, :func:`sliced_w1`), its noise floor (:func:`noise_floor`, one draw;
  :func:`posterior_floor`, mean ± 95 % interval over repeated draws), :func:`posterior_report` (a method's SW1 over
  seeds against that floor, with a Welch verdict), moment errors and the mode weight total variation (sensitive to
  DPS-style mode mis-weighting).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.analytic import GaussianMixture, gmm_posterior
from genlab.inverse.operators import DenseOperator
from genlab.inverse.problem import InverseProblem
from genlab.metrics import Estimate, MetricReport, compare, estimate, sliced_wasserstein

__all__ = [
    "GMMInverseProblem",
    "MomentErrors",
    "gaussian_problem",
    "mcgdiff_problem",
    "mode_weight_tv",
    "moment_errors",
    "noise_floor",
    "posterior_floor",
    "posterior_report",
    "sliced_w1",
]


@dataclass(eq=False)
class GMMInverseProblem:
    """A linear-Gaussian measurement of a Gaussian-mixture prior with its exact posterior.

    Attributes:
        prior: The data distribution.
        problem: The :class:`InverseProblem` (``DenseOperator(A)``, ``y`` of shape ``(1, d_y)``).
        A: ``(d_y, d)`` matrix.
        x_star: The ground truth ``(d,)`` that produced ``y``.
        posterior: Exact posterior mixture.
    """

    prior: GaussianMixture
    problem: InverseProblem
    A: Tensor
    x_star: Tensor
    posterior: GaussianMixture


def mcgdiff_problem(
    d: int,
    d_y: int,
    seed: int,
    *,
    weights: str = "random",
    sigma: float | None = None,
    dtype: torch.dtype = torch.float64,
) -> GMMInverseProblem:
    """The MCGdiff Gaussian-mixture inverse problem (``reference/inverse.md`` §5.1).

    Args:
        d: Dimension (even).
        d_y: Number of measurements.
        seed: Seed of the problem (prior weights, operator, noise level, ground truth, measurement noise).
        weights: ``"random"`` (``w ∝ N(0,1)²``, MCGdiff/DCPS) or ``"uniform"`` (TMPD).
        sigma: Noise std; ``None`` draws ``U(0, 1)·max(s)`` (MCGdiff).
        dtype: Dtype of the problem tensors.

    Returns:
        :class:`GMMInverseProblem`.
    """
    if d < 2 or d % 2:
        raise ValueError(f"d must be an even integer >= 2, got {d}")
    if not 1 <= d_y <= d:
        raise ValueError(f"d_y must lie in [1, d], got {d_y}")
    if weights not in ("random", "uniform"):
        raise ValueError(f"weights must be 'random' or 'uniform', got {weights!r}")
    gen = torch.Generator().manual_seed(int(seed))
    f64 = torch.float64
    grid = torch.arange(-2, 3, dtype=f64) * 8.0
    means = torch.cartesian_prod(grid, grid).repeat(1, d // 2)
    w = torch.randn(25, generator=gen, dtype=f64) ** 2 if weights == "random" else torch.ones(25, dtype=f64)
    prior = GaussianMixture(means, 1.0, w)
    gauss = torch.randn(d_y, d, generator=gen, dtype=f64)
    u, _, vh = torch.linalg.svd(gauss, full_matrices=False)
    s = torch.sort(torch.rand(d_y, generator=gen, dtype=f64), descending=True).values
    a = u @ torch.diag(s) @ vh[:d_y]
    sig = float(torch.rand((), generator=gen, dtype=f64) * s.max()) if sigma is None else float(sigma)
    x_star = prior.sample(1, generator=gen)[0]
    y = a @ x_star + sig * torch.randn(d_y, generator=gen, dtype=f64)
    posterior = gmm_posterior(prior, a, y, sig)
    problem = InverseProblem(DenseOperator(a.to(dtype)), y[None].to(dtype), sig)
    return GMMInverseProblem(prior=prior, problem=problem, A=a, x_star=x_star, posterior=posterior)


def gaussian_problem(
    d: int,
    d_y: int,
    seed: int,
    *,
    sigma: float = 0.5,
    mean_scale: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> GMMInverseProblem:
    """A Gaussian prior ``N(μ0, I)`` (one-component mixture) with a random ``(d_y, d)`` Gaussian operator.

    Args:
        d: Dimension.
        d_y: Number of measurements.
        seed: Seed.
        sigma: Noise std.
        mean_scale: Scale of the random prior mean μ0.
        dtype: Dtype of the problem tensors.

    Returns:
        :class:`GMMInverseProblem` with a Gaussian posterior.
    """
    gen = torch.Generator().manual_seed(int(seed))
    f64 = torch.float64
    mu0 = mean_scale * torch.randn(1, d, generator=gen, dtype=f64)
    prior = GaussianMixture(mu0, 1.0)
    a = torch.randn(d_y, d, generator=gen, dtype=f64) / d_y**0.5
    x_star = prior.sample(1, generator=gen)[0]
    y = a @ x_star + sigma * torch.randn(d_y, generator=gen, dtype=f64)
    posterior = gmm_posterior(prior, a, y, sigma)
    problem = InverseProblem(DenseOperator(a.to(dtype)), y[None].to(dtype), float(sigma))
    return GMMInverseProblem(prior=prior, problem=problem, A=a, x_star=x_star, posterior=posterior)


def sliced_w1(x: Tensor, y: Tensor, *, n_projections: int = 100, generator: torch.Generator | None = None) -> float:
    """Sliced W1 (mean over random unit directions of the 1-D W1), the MCGdiff/DCPS metric."""
    return float(sliced_wasserstein(x.double(), y.double(), n_projections=n_projections, p=1, generator=generator))


def noise_floor(
    posterior: GaussianMixture, n: int, *, n_projections: int = 100, seed: int = 0
) -> float:
    """Sliced W1 between two independent exact-posterior sample sets of size ``n`` (the best a sampler can show)."""
    gen = torch.Generator().manual_seed(seed)
    a = posterior.sample(n, generator=gen)
    b = posterior.sample(n, generator=gen)
    return sliced_w1(a, b, n_projections=n_projections, generator=gen)


def posterior_floor(
    posterior: GaussianMixture, n: int, *, draws: int = 5, n_projections: int = 100, seed: int = 0
) -> Estimate:
    """:func:`noise_floor` over ``draws`` independent pairs of exact-posterior sample sets (mean ± 95 % interval).

    Args:
        posterior: The exact posterior.
        n: Samples per set (use the number of samples a method draws).
        draws: Independent pairs.
        n_projections: Slices of the sliced W1.
        seed: Seed of the draws and slices.

    Returns:
        :class:`~genlab.metrics.Estimate` of the floor.
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"posterior_floor: draws must be a positive integer; got {draws!r}")
    return estimate([noise_floor(posterior, n, n_projections=n_projections, seed=seed + 1000 * i)
                     for i in range(draws)])


def posterior_report(
    sample_sets: list[Tensor],
    posterior: GaussianMixture,
    *,
    draws: int = 5,
    n_projections: int = 100,
    seed: int = 0,
    floor: Estimate | None = None,
) -> MetricReport:
    """Sliced W1 of a method's samples (one set per seed) to exact-posterior samples, against the floor.

    Each set is compared with its own fresh exact-posterior set of the same size, so the model's value and the
    floor are the same statistic; the verdict says whether the method is within the noise of exact sampling.

    Args:
        sample_sets: One ``(n, d)`` tensor per seed.
        posterior: The exact posterior.
        draws: Pairs behind the floor (ignored when ``floor`` is given).
        n_projections: Slices.
        seed: Seed of the reference sets, slices and floor.
        floor: A precomputed :func:`posterior_floor` (to share it between methods).

    Returns:
        :class:`~genlab.metrics.MetricReport` named ``"sw1"``.
    """
    if not sample_sets:
        raise ValueError("posterior_report: sample_sets is empty; pass one sample set per seed")
    n = int(sample_sets[0].shape[0])
    if floor is None:
        floor = posterior_floor(posterior, n, draws=draws, n_projections=n_projections, seed=seed)
    values = []
    for i, x in enumerate(sample_sets):
        gen = torch.Generator().manual_seed(seed + 7919 * (i + 1))
        ref = posterior.sample(int(x.shape[0]), generator=gen)
        values.append(sliced_w1(x, ref, n_projections=n_projections, generator=gen))
    model = estimate(values)
    return MetricReport(name="sw1", model=model, floor=floor, verdict=compare(model, floor, reference="exact posterior"))


@dataclass
class MomentErrors:
    """Errors of the first two moments.

    Attributes:
        mean: ``‖m̂ − m‖``.
        cov: ``‖Ĉ − C‖_F / ‖C‖_F``.
    """

    mean: float
    cov: float


def moment_errors(samples: Tensor, mean: Tensor, cov: Tensor) -> MomentErrors:
    """Mean error and relative Frobenius covariance error of ``samples`` ``(n, d)``."""
    x = samples.double()
    m = x.mean(0)
    c = torch.cov(x.T).reshape(cov.shape)
    return MomentErrors(mean=float((m - mean.double()).norm()),
                        cov=float((c - cov.double()).norm() / cov.double().norm()))


def mode_weight_tv(samples: Tensor, posterior: GaussianMixture) -> float:
    """Total variation between the empirical component frequencies and the posterior weights.

    Each sample is assigned to the posterior component with the highest responsibility.
    """
    x = samples.double()
    pm = posterior.to(dtype=torch.float64)
    chol = torch.linalg.cholesky(pm.covs)
    maha = torch.stack([  # one triangular solve with n right-hand sides per component
        torch.linalg.solve_triangular(chol[k], (x - pm.means[k]).T, upper=False).pow(2).sum(0)
        for k in range(pm.n_components)], dim=1)
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    logp = torch.log(pm.weights)[None] - 0.5 * (maha + logdet[None])
    idx = logp.argmax(1)
    freq = torch.bincount(idx, minlength=pm.n_components).double() / x.shape[0]
    return float(0.5 * (freq - pm.weights).abs().sum())
