"""DiffPIR (Zhu et al., CVPRW'23): the data step is the stated proximal solve; with ρ_t = σ²/r_t² from the prior's
own scale (the default) it samples the exact posterior of an isotropic Gaussian prior of any scale; the paper's
λ = 7 rule, which assumes unit-scale data, is biased there (characterisation); τ² is read off the prior."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.analytic import GaussianMixture, gmm_posterior
from genlab.interpolants.presets import RectifiedFlow, VPDiffusion
from genlab.inverse import DenseOperator, DiffPIR, DiffusionPrior, InverseProblem, solve, testing
from genlab.inverse.methods import CountedModel, SolveContext, tweedie_data_variance
from genlab.samplers.steps import DDIMStep

F64 = torch.float64


def _scaled_gaussian(d: int, d_y: int, tau2: float, seed: int) -> tuple[GaussianMixture, InverseProblem, GaussianMixture]:
    gen = torch.Generator().manual_seed(seed)
    prior = GaussianMixture(3 * torch.randn(1, d, generator=gen, dtype=F64), tau2)
    a = torch.randn(d_y, d, generator=gen, dtype=F64)
    y = a @ prior.sample(1, generator=gen)[0] + 0.5 * torch.randn(d_y, generator=gen, dtype=F64)
    return prior, InverseProblem(DenseOperator(a), y[None], 0.5), gmm_posterior(prior, a, y, 0.5)


def test_diffpir_data_step_is_the_proximal_solve(gen: torch.Generator) -> None:
    """x̂1 = argmin ‖y − Ax‖² + ρ‖x − x0‖² = (AᵀA + ρI)⁻¹(Aᵀy + ρ x0), per-sample ρ; σ = 0: x0 + A⁺(y − A x0)."""
    _, problem, _ = _scaled_gaussian(6, 3, 1.0, 0)
    prob = problem.expand(4)
    ctx = SolveContext(problem=prob, prior=None, model=None, transition=DDIMStep(0.0),  # type: ignore[arg-type]
                       grid=torch.linspace(0, 1, 3, dtype=F64), x_shape=(6,), state_shape=(6,), n_samples=4,
                       generator=None)
    x0 = torch.randn(4, 6, generator=gen, dtype=F64)
    rho = torch.tensor([0.1, 1.0, 3.0, 10.0], dtype=F64)
    a = problem.op.dense((6,))
    out = DiffPIR().data_step(x0, rho, ctx)
    for i in range(4):
        ref = torch.linalg.solve(a.T @ a + rho[i] * torch.eye(6, dtype=F64), a.T @ prob.y[i] + rho[i] * x0[i])
        torch.testing.assert_close(out[i], ref, rtol=1e-8, atol=1e-8)
    noiseless = SolveContext(problem=InverseProblem(problem.op, prob.y, 0.0), prior=None, model=None,  # type: ignore[arg-type]
                             transition=None, grid=ctx.grid, x_shape=(6,), state_shape=(6,), n_samples=4,
                             generator=None)
    proj = DiffPIR().data_step(x0, torch.zeros(4, dtype=F64), noiseless)
    torch.testing.assert_close(proj @ a.T, prob.y, rtol=1e-9, atol=1e-9)


def test_tweedie_data_variance_reads_the_prior_scale() -> None:
    """On N(μ, τ²I) the estimate is τ² (Rademacher probes are exact for a scalar Jacobian)."""
    for tau2 in (0.25, 4.0, 64.0):
        prior_gmm, problem, _ = _scaled_gaussian(6, 2, tau2, 1)
        prior = DiffusionPrior.from_gmm(prior_gmm, VPDiffusion())
        prob = problem.expand(8)
        ctx = SolveContext(problem=prob, prior=prior, model=CountedModel(prior), transition=None,
                           grid=torch.linspace(0, 1, 3, dtype=F64), x_shape=(6,), state_shape=(6,), n_samples=8,
                           generator=None)
        for t in (0.0, 0.5):
            x = torch.randn(8, 6, dtype=F64, generator=torch.Generator().manual_seed(0))
            pred = ctx.model.evaluate(x.requires_grad_(True), t, grad=True)
            assert math.isclose(tweedie_data_variance(pred, t, ctx), tau2, rel_tol=1e-6)


@pytest.mark.parametrize("interp", [VPDiffusion(), RectifiedFlow()], ids=lambda p: p.name)
def test_diffpir_default_data_step_is_the_exact_conditional_mean(interp, gen: torch.Generator) -> None:
    """For N(μ, τ²I) the default ρ_t = σ²/r_t² makes x̂1 = E[x1 | x_t, y] exactly: the posterior mean given the two
    linear-Gaussian measurements x_t = a·x1 + s·ε and y = A x1 + σn (stacked, whitened). The paper's ρ is not."""
    tau2 = 9.0
    prior_gmm, problem, _ = _scaled_gaussian(6, 2, tau2, 3)
    prior = DiffusionPrior.from_gmm(prior_gmm, interp)
    n = 4
    prob = problem.expand(n)
    ctx = SolveContext(problem=prob, prior=prior, model=CountedModel(prior), transition=DDIMStep(0.0),
                       grid=torch.linspace(0, 1, 3, dtype=F64), x_shape=(6,), state_shape=(6,), n_samples=n,
                       generator=None)
    ctx.extras["tau2"] = tau2
    a_mat, sigma = problem.op.dense((6,)), problem.sigma
    for t in (0.3, 0.7):
        c = prior.coeffs(t, torch.zeros(n, 6, dtype=F64))
        a, s = float(c.beta[0]), float(c.alpha[0])
        x_t = a * prior_gmm.means[0] + 2 * torch.randn(n, 6, generator=gen, dtype=F64)
        x0 = ctx.model.evaluate(x_t, t)("x1")
        for rho_kind, exact in (("tweedie", True), ("paper", False)):
            m = DiffPIR(rho=rho_kind)
            x1 = m.data_step(x0, m.rho(c.beta, c.alpha, ctx), ctx)
            for i in range(n):
                stacked = torch.cat([(a / s) * torch.eye(6, dtype=F64), a_mat / sigma])
                obs = torch.cat([x_t[i] / s, prob.y[i] / sigma])
                ref = gmm_posterior(prior_gmm, stacked, obs, 1.0).mean
                close = torch.allclose(x1[i], ref, rtol=1e-8, atol=1e-8)
                assert close == exact, (rho_kind, t, x1[i], ref)


def test_diffpir_default_samples_a_scaled_gaussian_posterior() -> None:
    """τ² = 9: mean error < 0.15·τ and covariance error < 0.15 at the defaults (60 steps)."""
    prior_gmm, problem, post = _scaled_gaussian(8, 2, 9.0, 2)
    prior = DiffusionPrior.from_gmm(prior_gmm, VPDiffusion())
    res = solve(problem, prior, "diffpir", steps=60, n_samples=1500, seed=0)
    err = testing.moment_errors(res.samples, post.mean, post.cov)
    assert err.mean < 0.15 * math.sqrt(9.0) and err.cov < 0.15, err
    assert res.nfe == 61 and res.n_vjp == 1  # τ²: one evaluation on a fixed auxiliary batch and one VJP


def test_diffpir_options_are_checked() -> None:
    with pytest.raises(ValueError, match="rho"):
        DiffPIR(rho="tmpd")
    with pytest.raises(ValueError, match="data_var"):
        DiffPIR(data_var=-1.0)
