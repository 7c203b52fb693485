"""PnP-HVAE against closed forms on linear-Gaussian HVAEs (exact encoders), on every linear operator, and its errors.

Tolerances: on the PPCA-like rigs the MAP iterates converge geometrically to the Gaussian posterior mean; after the
stopping rule (tol 1e-9, patience 5) the max-abs error is ~1e-13 (1 level: 104 iterations, 2 levels: 168), asserted
< 1e-6; with the paper defaults (50 iterations) it is 3e-8 (1 level) and 6e-6 (2 levels).
"""

from __future__ import annotations

import math

import pytest
import torch

from genlab.analytic import GaussianMixture
from genlab.interpolants import VPDiffusion
from genlab.inverse import (
    CompressedSensing,
    ConvBlur,
    DenseOperator,
    DiffusionPrior,
    FFTBlur,
    HVAEPrior,
    Inpainting,
    InverseProblem,
    PhaseRetrieval,
    PnPHVAE,
    SuperResolution,
    compatible_methods,
    gaussian_kernel,
    solve,
)
from genlab.inverse.methods.pnp_hvae import latent_step
from genlab.models import HVAE, LinearGaussianHVAE

D, SIGMA = 12, 0.1


def _rig(levels: int, m: int = 5, seed: int = 0) -> tuple[LinearGaussianHVAE, InverseProblem]:
    model = LinearGaussianHVAE.random(d=D, k=2, levels=levels, decoder_std=0.3,
                                      generator=torch.Generator().manual_seed(seed))
    A = torch.randn(m, D, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    mean, cov = model.marginal()
    g = torch.Generator().manual_seed(seed + 2)
    x = mean + torch.linalg.cholesky(cov) @ torch.randn(D, generator=g, dtype=torch.float64)
    y = (A @ x + SIGMA * torch.randn(m, generator=g, dtype=torch.float64))[None]
    return model, InverseProblem(DenseOperator(A), y, SIGMA)


def _posterior(mean: torch.Tensor, cov: torch.Tensor, problem: InverseProblem) -> tuple[torch.Tensor, torch.Tensor]:
    A = problem.op.dense((D,)).double()
    gain = cov @ A.T @ torch.linalg.inv(A @ cov @ A.T + SIGMA**2 * torch.eye(A.shape[0], dtype=torch.float64))
    return mean + gain @ (problem.y[0] - A @ mean), cov - gain @ A @ cov


@pytest.mark.parametrize("levels", [1, 2])
def test_map_converges_to_the_gaussian_posterior_mean_and_the_objective_decreases(levels: int) -> None:
    model, problem = _rig(levels)
    res = solve(problem, HVAEPrior(model, decoder_std=0.3), "pnp_hvae", temperature=1.0, output="x",
                maxiter=400, tol=1e-9, patience=5)
    post_mean, _ = _posterior(*model.marginal(), problem)
    err = float((res.samples[0] - post_mean).abs().max())
    assert err < 1e-6, err
    obj = torch.tensor(res.diagnostics["objective"], dtype=torch.float64)
    assert bool((obj[1:] <= obj[:-1] + 1e-9 * obj.abs()[:-1]).all()), "objective must decrease monotonically"
    assert obj[0] - obj[-1] > 1e-3  # and it does move
    assert res.nfe == 2 * (1 + int(res.diagnostics["iterations"][0]))  # encoder + decoder pass per iteration


def test_tempered_prior_and_decoder_mean_output() -> None:
    """One level, T = 0.6: the limit is the posterior under z ~ N(0, T²I); output='mean' gives W E[z|y] + b."""
    model, problem = _rig(1, seed=3)
    t = 0.6
    W, b, gamma = model.W1, model.bias, model.gamma
    cov = t**2 * W @ W.T + gamma**2 * torch.eye(D, dtype=torch.float64)
    post_x, _ = _posterior(b, cov, problem)
    prior = HVAEPrior(model, decoder_std=gamma)
    res = solve(problem, prior, "pnp_hvae", temperature=t, output="x", maxiter=400, tol=1e-9, patience=5)
    assert float((res.samples[0] - post_x).abs().max()) < 1e-6
    res_mean = solve(problem, prior, "pnp_hvae", temperature=t, maxiter=400, tol=1e-9, patience=5)
    A = problem.op.dense((D,)).double()
    cz = t**2 * torch.eye(2, dtype=torch.float64)
    cy = A @ cov @ A.T + SIGMA**2 * torch.eye(A.shape[0], dtype=torch.float64)
    ez = cz @ (A @ W).T @ torch.linalg.solve(cy, problem.y[0] - A @ b)
    assert float((res_mean.samples[0] - (W @ ez + b)).abs().max()) < 1e-6


def test_stochastic_variant_samples_the_posterior_and_is_batch_invariant() -> None:
    """mode='sample' with T = 1 is a Gibbs sampler of p(x, z | y): x-marginal mean and variances match."""
    model, problem = _rig(2, seed=5)
    prior = HVAEPrior(model, decoder_std=0.3)
    n = 2000
    res = solve(problem, prior, "pnp_hvae", mode="sample", temperature=1.0, output="x", maxiter=40, tol=0.0,
                patience=1000, n_samples=n, seed=0)
    post_mean, post_cov = _posterior(*model.marginal(), problem)
    sd = post_cov.diagonal().sqrt()
    z = (res.samples.mean(0) - post_mean) / (sd / math.sqrt(n))
    assert float(z.abs().max()) < 4.5
    ratio = res.samples.var(0) / post_cov.diagonal()
    assert float((ratio - 1).abs().max()) < 0.12
    few = solve(problem, prior, "pnp_hvae", mode="sample", temperature=1.0, output="x", maxiter=40, tol=0.0,
                patience=1000, n_samples=3, seed=0)
    torch.testing.assert_close(few.samples, res.samples[:3])


def _tiny_hvae() -> HVAE:
    torch.manual_seed(0)
    return HVAE(image_size=8, width=8, zdim=2, groups=(1, 2, 4, 8)).eval().requires_grad_(False)


SHAPE = (1, 8, 8)


@pytest.mark.parametrize(
    "op",
    [
        Inpainting.random(SHAPE, 0.5, generator=torch.Generator().manual_seed(0)),
        Inpainting.box(SHAPE, (2, 2, 4, 4)),
        FFTBlur(gaussian_kernel(5, 1.0), SHAPE),
        ConvBlur(gaussian_kernel(3, 1.0), x_shape=SHAPE),
        SuperResolution(2, mode="box", x_shape=SHAPE),
        CompressedSensing(20, SHAPE, generator=torch.Generator().manual_seed(0)),
    ],
    ids=["inpaint-random", "inpaint-box", "fft-blur", "conv-blur-cg", "sr2", "cs"],
)
def test_x_step_solves_the_data_fidelity_proximal_problem_for_every_linear_operator(op) -> None:
    """One iteration, output='x': ∇_x [‖Ax−y‖²/(2σ²) + β‖x−μ0‖²/(2γ²)] = 0 at the returned x."""
    net = _tiny_hvae()
    prior = HVAEPrior(net, decoder_std=0.05)
    x_true = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    problem = InverseProblem.simulate(op, x_true, 0.05, generator=torch.Generator().manual_seed(2))
    assert "pnp_hvae" in compatible_methods(problem, prior)
    method = PnPHVAE(maxiter=1, output="x", temperature=(0.9, 0.7))
    res = solve(problem, prior, method, n_samples=2, seed=0)
    x = res.samples.detach().requires_grad_(True)
    x0 = problem.y if tuple(problem.y.shape[1:]) == SHAPE else op.pinv(problem.y)
    mu0 = latent_step(net, x0, beta=1.0, temperatures=method.temperatures(4)).mean
    f = ((op.A(x) - problem.y) ** 2).sum() / (2 * 0.05**2) + ((x - mu0) ** 2).sum() / (2 * 0.05**2)
    (grad,) = torch.autograd.grad(f, x)
    scale = float(((x - mu0) / 0.05**2).detach().abs().max())  # size of either term's gradient
    assert float(grad.abs().max()) < 1e-4 * scale, (float(grad.abs().max()), scale)
    assert torch.isfinite(res.samples).all() and res.samples.shape == (2, *SHAPE)


def test_errors_and_refusals() -> None:
    model, problem = _rig(2)
    prior = HVAEPrior(model, decoder_std=0.3)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            solve(problem, prior, "pnp_hvae", temperature=bad)
    with pytest.raises(ValueError, match="temperature"):
        solve(problem, prior, "pnp_hvae", temperature=[0.5, 0.6, 0.7])  # 3 values for 2 levels
    with pytest.raises(ValueError, match="β·T² ≤ 1"):
        solve(problem, prior, "pnp_hvae", temperature=1.0, beta=2.0)
    with pytest.raises(ValueError, match="unknown option"):
        solve(problem, prior, "pnp_hvae", steps_per_level=3)
    with pytest.raises(ValueError, match="iterative solver"):
        solve(problem, prior, "pnp_hvae", steps=10)
    # an operator of the wrong size
    wrong = InverseProblem(DenseOperator(torch.randn(5, D + 2, dtype=torch.float64)),
                           torch.zeros(1, 5, dtype=torch.float64), SIGMA)
    with pytest.raises(ValueError, match=r"HVAE's shape \(12,\)"):
        solve(wrong, prior, "pnp_hvae")
    # a non-linear operator
    pr = PhaseRetrieval(x_shape=SHAPE)
    nonlin = InverseProblem(pr, pr.A(torch.zeros(1, *SHAPE)), SIGMA)
    with pytest.raises(ValueError, match="linear operator"):
        solve(nonlin, HVAEPrior(_tiny_hvae()), "pnp_hvae")
    # a diffusion prior is refused by PnP-HVAE, an HVAE prior by the diffusion methods
    gmm = GaussianMixture(torch.zeros(1, D, dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    diffusion = DiffusionPrior.from_gmm(gmm, VPDiffusion())
    with pytest.raises(ValueError, match="hierarchical-VAE prior"):
        solve(problem, diffusion, "pnp_hvae")
    assert "pnp_hvae" not in compatible_methods(problem, diffusion)
    assert compatible_methods(problem, prior) == ["pnp_hvae"]
    with pytest.raises(ValueError, match="diffusion prior"):
        solve(problem, prior, "dps", steps=5)
    with pytest.raises(TypeError, match="hierarchical VAE"):
        HVAEPrior(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="decoder_std"):
        HVAEPrior(model, decoder_std=0.0)
