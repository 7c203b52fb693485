"""Tweedie moment matching (TMPD): its likelihood score is the exact ∇log p_t(y | x_t) for any Gaussian prior (full
covariance, any scale, any path), so it samples the exact Gaussian posterior; its cost is measured (issue 13)."""

from __future__ import annotations

import pytest
import torch

from genlab.analytic import GaussianMixture, gmm_posterior
from genlab.interpolants.presets import RectifiedFlow, VEDiffusion, VPDiffusion
from genlab.inverse import (
    DenseOperator,
    DiffusionPrior,
    InverseProblem,
    MomentMatching,
    PiGDM,
    solve,
    testing,
)
from genlab.inverse.methods import CountedModel, SolveContext
from genlab.samplers.steps import DDIMStep

PATHS = [VPDiffusion(), RectifiedFlow(), VEDiffusion(sigma_min=0.01, sigma_max=30.0)]


def _gaussian(d: int, d_y: int, gen: torch.Generator) -> tuple[GaussianMixture, InverseProblem, GaussianMixture]:
    """N(μ, Σ) with a full, far-from-unit covariance (eigenvalues 0.3–9) and y = A x + σ n."""
    f64 = torch.float64
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=f64))
    cov = q @ torch.diag(torch.linspace(0.3, 9.0, d, dtype=f64)) @ q.T
    prior = GaussianMixture(2 * torch.randn(1, d, generator=gen, dtype=f64), cov[None])
    a = torch.randn(d_y, d, generator=gen, dtype=f64)
    y = a @ prior.sample(1, generator=gen)[0] + 0.3 * torch.randn(d_y, generator=gen, dtype=f64)
    return prior, InverseProblem(DenseOperator(a), y[None], 0.3), gmm_posterior(prior, a, y, 0.3)


def _context(problem: InverseProblem, prior: DiffusionPrior, n: int) -> SolveContext:
    prob = problem.expand(n)
    return SolveContext(problem=prob, prior=prior, model=CountedModel(prior), transition=DDIMStep(0.0),
                        grid=torch.linspace(0, 1, 11, dtype=torch.float64), x_shape=prob.x_shape,
                        state_shape=prob.x_shape, n_samples=n, generator=None)


@pytest.mark.parametrize("interp", PATHS, ids=lambda p: p.name)
def test_mm_likelihood_score_is_exact_for_a_full_covariance_gaussian(interp, gen: torch.Generator) -> None:
    """g = ∇log N(x_t; aμ̃, a²Σ̃ + s²I) − ∇log N(x_t; aμ, a²Σ + s²I) to 1e-8; ΠGDM's isotropic r² is not."""
    gmm, problem, post = _gaussian(5, 3, gen)
    prior = DiffusionPrior.from_gmm(gmm, interp, implementation="analytic")
    ctx = _context(problem, prior, 4)
    eye = torch.eye(5, dtype=torch.float64)
    mm, pigdm = MomentMatching(), PiGDM(data_var=1.0)
    worst = 0.0
    for t in (0.2, 0.5, 0.9):
        lvl = prior.coeffs(t, torch.zeros(1, 5, dtype=torch.float64))
        a, s = float(lvl.beta), float(lvl.alpha)
        x = a * gmm.means[0] + 2 * torch.randn(4, 5, generator=gen, dtype=torch.float64)
        pred = ctx.model.evaluate(x.clone().requires_grad_(True), t, grad=True)
        g, _, n_iter = mm.likelihood_score(pred, t, ctx)
        cond = -torch.linalg.solve(a**2 * post.covs[0] + s**2 * eye, (x - a * post.means[0]).T).T
        marg = -torch.linalg.solve(a**2 * gmm.covs[0] + s**2 * eye, (x - a * gmm.means[0]).T).T
        torch.testing.assert_close(g, cond - marg, rtol=1e-8, atol=1e-8)
        assert n_iter <= 3  # CG is exact in d_y iterations
        pred2 = ctx.model.evaluate(x.clone().requires_grad_(True), t, grad=True)
        g_pi, _ = pigdm.likelihood_score(pred2, t, ctx)
        worst = max(worst, float((g_pi - (cond - marg)).norm() / (cond - marg).norm()))
    assert worst > 1e-2  # ΠGDM's assumed isotropic unit-variance r² is not the Tweedie covariance here


def test_mm_samples_the_exact_gaussian_posterior_and_counts_its_vjps(gen: torch.Generator) -> None:
    """Mean error < 0.15 and covariance relative error < 0.15 (d = 6, d_y = 3, full prior covariance); the cost
    is measured: 1 NFE per step and, per step, one VJP per CG iteration, the final residual and Jᵀ Aᵀ w."""
    gmm, problem, post = _gaussian(6, 3, gen)
    prior = DiffusionPrior.from_gmm(gmm, VPDiffusion(), implementation="analytic")
    res = solve(problem, prior, "moment_matching", sampler="ddim", eta=1.0, steps=60, n_samples=1500, seed=0)
    err = testing.moment_errors(res.samples, post.mean, post.cov)
    assert err.mean < 0.15 and err.cov < 0.15, err
    assert res.nfe == 60
    cg = sum(res.diagnostics["cg_iters"])
    assert res.n_vjp == cg + 2 * 60


def test_mm_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="cg_iters"):
        MomentMatching(cg_iters=0)
    with pytest.raises(ValueError, match="unknown option"):
        MomentMatching(r2=1.0)
