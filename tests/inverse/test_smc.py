"""SMC posterior samplers (issue 13): MCGdiff and TDS.

One particle reproduces the proposal method (TDS = score-mode DPS on genlab's DDPM sampler, draw for draw; MCGdiff
without resampling = independent proposal chains); MCGdiff's last potential is the exact likelihood; with the
exact denoiser and a Gaussian prior the weighted particle mean and covariance approach the exact posterior as the
particle count grows (a decreasing error at 4 counts); bad input is refused with the argument named.
"""

from __future__ import annotations

import pytest
import torch

from genlab.interpolants import VPDiffusion
from genlab.inverse import DiffusionPrior, InverseProblem, solve, testing
from genlab.inverse.methods.smc import MCGdiff, effective_sample_size, systematic_resample

DT = torch.float64


@pytest.fixture(scope="module")
def gauss():
    gp = testing.gaussian_problem(4, 2, 0, sigma=0.3, mean_scale=2.0)
    return gp, DiffusionPrior.from_gmm(gp.prior, VPDiffusion())


def _weighted_errors(res, mean: torch.Tensor, cov: torch.Tensor) -> tuple[float, float]:
    """RMS over systems of the weighted-mean error and mean relative Frobenius error of the weighted covariance."""
    w, p = res.weights.double(), res.particles.double()
    m = (w[..., None] * p).sum(1)
    dev = p - m[:, None]
    c = torch.einsum("sn,sni,snj->sij", w, dev, dev)
    em = float((m - mean).norm(dim=1).pow(2).mean().sqrt())
    ec = float(((c - cov).flatten(1).norm(dim=1) / cov.norm()).mean())
    return em, ec


def test_tds_with_one_particle_is_score_mode_dps(gauss) -> None:
    gp, prior = gauss
    ref = solve(gp.problem, prior, "dps", faithful=False, sampler="ddpm", steps=12, t_end=0.99, n_samples=3, seed=3,
                return_trajectory=True)
    for k in (1, 6, 11):  # TDS on the first k points of the same grid (its last step keeps its noise)
        res = solve(gp.problem, prior, "tds", n_particles=1, steps=k, t_end=0.99 * k / 12, n_samples=3, seed=3)
        torch.testing.assert_close(res.samples, ref.trajectory[k], rtol=1e-10, atol=1e-10)
        assert res.n_vjp == res.nfe == k + 1 and res.n_resampled == 0
        torch.testing.assert_close(res.weights, torch.ones(3, 1, dtype=DT))


def test_mcgdiff_without_resampling_is_independent_proposal_chains(gauss) -> None:
    gp, prior = gauss
    one = solve(gp.problem, prior, "mcgdiff", n_particles=3, steps=15, resample_threshold=0.0, n_samples=1, seed=4)
    sep = solve(gp.problem, prior, "mcgdiff", n_particles=1, steps=15, n_samples=3, seed=4)
    torch.testing.assert_close(one.particles[0], sep.samples, rtol=0, atol=0)
    assert one.n_resampled == 0 and one.nfe == 15 and one.n_vjp == 0


def test_mcgdiff_last_potential_is_the_exact_likelihood(gauss) -> None:
    gp, prior = gauss
    m = MCGdiff()
    st = m._setup(gp.problem, 1, torch.zeros(1, 4, dtype=DT))
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), dtype=DT)
    st["y"] = st["y"].expand(5, -1)
    st["ytil"] = st["ytil"].expand(5, -1)
    from genlab.inverse.methods.base import CountedModel

    logh = m._potential(x, torch.tensor(1.0, dtype=DT), CountedModel(prior), st)["logh"]
    exact = -0.5 * (gp.problem.y - x @ gp.A.T).pow(2).sum(1) / gp.problem.sigma**2
    torch.testing.assert_close(logh - logh[0], exact - exact[0], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["mcgdiff", "tds"])
def test_weighted_moments_converge_to_the_exact_posterior(gauss, method: str) -> None:
    gp, prior = gauss
    mean, cov = gp.posterior.mean, gp.posterior.cov
    errs = []
    for n_part in (2, 8, 32, 128):
        res = solve(gp.problem, prior, method, n_particles=n_part, steps=30, n_samples=24, seed=1)
        assert res.weights.shape == (24, n_part) and res.particles.shape == (24, n_part, 4)
        torch.testing.assert_close(res.weights.sum(1), torch.ones(24, dtype=DT))
        assert bool((res.ess >= 1 - 1e-9).all()) and bool((res.ess <= n_part + 1e-9).all())
        errs.append(_weighted_errors(res, mean, cov))
    means, covs = [e[0] for e in errs], [e[1] for e in errs]
    assert all(a > b for a, b in zip(means, means[1:])), means
    assert all(a > b for a, b in zip(covs, covs[1:])), covs
    assert means[-1] < 0.5 * means[0] and covs[-1] < 0.6 * covs[0]


def test_resampling_helpers() -> None:
    log_w = torch.log(torch.tensor([[0.5, 0.25, 0.25, 0.0], [0.25, 0.25, 0.25, 0.25]], dtype=DT))
    idx = systematic_resample(log_w, torch.tensor([0.1, 0.9], dtype=DT))
    assert idx.tolist() == [[0, 0, 1, 2], [0, 1, 2, 3]]
    torch.testing.assert_close(effective_sample_size(log_w), torch.tensor([8 / 3, 4.0], dtype=DT))


def test_bad_input_is_refused(gauss) -> None:
    gp, prior = gauss
    with pytest.raises(ValueError, match="n_particles"):
        solve(gp.problem, prior, "mcgdiff", n_particles=0)
    with pytest.raises(ValueError, match="resample_threshold"):
        solve(gp.problem, prior, "tds", resample_threshold=2.0)
    with pytest.raises(ValueError, match="unknown option"):
        solve(gp.problem, prior, "mcgdiff", particles=4)
    noiseless = InverseProblem(gp.problem.op, gp.problem.y, 0.0)
    with pytest.raises(ValueError, match="sigma > 0"):
        solve(noiseless, prior, "mcgdiff", n_particles=2, steps=3)
    with pytest.raises(ValueError, match="no"):
        solve(gp.problem, prior, "tds", sampler="ddim")
