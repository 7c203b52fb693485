"""Gaussian prior N(μ0, I): ΠGDM's likelihood score is exact on any path; ΠGDM samples the exact posterior; DPS is
biased (a characterisation test, reference/inverse.md §1.1, §5.4)."""

from __future__ import annotations

import pytest
import torch

from genlab.interpolants.presets import RectifiedFlow, VEDiffusion, VPDiffusion
from genlab.inverse import DiffusionPrior, PiGDM, solve, testing
from genlab.inverse.methods import CountedModel, SolveContext
from genlab.samplers.steps import DDIMStep as DDIM

PATHS = [VPDiffusion(), RectifiedFlow(), VEDiffusion(sigma_min=0.01, sigma_max=30.0)]


def _context(gp: testing.GMMInverseProblem, prior: DiffusionPrior, n: int) -> SolveContext:
    problem = gp.problem.expand(n)
    return SolveContext(problem=problem, prior=prior, model=CountedModel(prior), transition=DDIM(0.0),
                        grid=torch.linspace(0, 1, 11, dtype=torch.float64), x_shape=problem.x_shape,
                        state_shape=problem.x_shape, n_samples=n, generator=None)


@pytest.mark.parametrize("interp", PATHS, ids=lambda p: p.name)
def test_pigdm_likelihood_score_is_exact_for_a_gaussian_prior(interp, gen: torch.Generator) -> None:
    """g = ∇log p_t(x_t | y) − ∇log p_t(x_t), with p_t(·|y) = N(aμ̃, a²Σ̃ + s²I) from the exact posterior."""
    gp = testing.gaussian_problem(6, 3, 0, sigma=0.4)
    prior = DiffusionPrior.from_gmm(gp.prior, interp)
    ctx = _context(gp, prior, 8)
    post_mean, post_cov = gp.posterior.means[0], gp.posterior.covs[0]
    mu0 = gp.prior.means[0]
    pigdm = PiGDM()
    eye = torch.eye(6, dtype=torch.float64)
    for t in (0.1, 0.5, 0.9):
        lvl = prior.coeffs(t, torch.zeros(1, 6, dtype=torch.float64))
        a, s = float(lvl.beta), float(lvl.alpha)
        x = a * mu0 + 2 * torch.randn(8, 6, generator=gen, dtype=torch.float64)
        pred = ctx.model.evaluate(x.clone().requires_grad_(True), t, grad=True)
        g, _ = pigdm.likelihood_score(pred, t, ctx)
        cond = -torch.linalg.solve(a**2 * post_cov + s**2 * eye, (x - a * post_mean).T).T
        marg = -(x - a * mu0) / (a**2 + s**2)
        torch.testing.assert_close(g, cond - marg, rtol=1e-8, atol=1e-8)
    assert ctx.model.n_vjp == 3 and ctx.model.nfe == 3


@pytest.mark.parametrize(("interp", "sampler"), [(VPDiffusion(), "ddim"), (RectifiedFlow(), "euler")],
                         ids=["vp-ddim", "rf-euler"])
def test_pigdm_samples_the_exact_gaussian_posterior(interp, sampler: str) -> None:
    """Mean error < 0.15 and covariance relative error < 0.15 (reference/inverse.md §5.5; d = 8, d_y = 2)."""
    gp = testing.gaussian_problem(8, 2, 0, sigma=0.5)
    prior = DiffusionPrior.from_gmm(gp.prior, interp)
    res = solve(gp.problem, prior, "pigdm", sampler=sampler, steps=100, n_samples=2000, seed=0, faithful=False)
    err = testing.moment_errors(res.samples, gp.posterior.mean, gp.posterior.cov)
    assert err.mean < 0.15 and err.cov < 0.15, err


def test_dps_is_biased_on_a_gaussian_prior() -> None:
    """Characterisation (not a quality gate): DPS ignores Cov[x1|x_t] and σ, its covariance error exceeds 0.1
    where ΠGDM's is at the noise floor (reference/inverse.md §5.4: 0.17–0.33)."""
    gp = testing.gaussian_problem(8, 2, 0, sigma=0.5)
    prior = DiffusionPrior.from_gmm(gp.prior, VPDiffusion())
    res = solve(gp.problem, prior, "dps", steps=100, n_samples=2000, seed=0, zeta=0.5)
    err = testing.moment_errors(res.samples, gp.posterior.mean, gp.posterior.cov)
    assert err.cov > 0.1, err
