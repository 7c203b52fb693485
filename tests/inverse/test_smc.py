"""SMC posterior samplers (issue 13): MCGdiff and TDS.

One particle reproduces the proposal method (TDS = score-mode DPS on genlab's DDPM sampler, draw for draw; MCGdiff
without resampling = independent proposal chains); MCGdiff's last potential is the exact likelihood; with the
exact denoiser and a Gaussian prior the weighted particle mean and covariance approach the exact posterior as the
particle count grows (a decreasing error at 4 counts); bad input is refused with the argument named.
"""

from __future__ import annotations

import itertools

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
        res = solve(gp.problem, prior, "tds", n_particles=1, steps=k, t_end=0.99 * k / 12, n_samples=3, seed=3,
                    twist="dps")
        torch.testing.assert_close(res.samples, ref.trajectory[k], rtol=1e-10, atol=1e-10)
        assert res.n_vjp == res.nfe == k + 1 and res.n_resampled == 0
        torch.testing.assert_close(res.weights, torch.ones(3, 1, dtype=DT))


def test_systems_do_not_depend_on_how_many_are_drawn(gauss) -> None:
    gp, prior = gauss
    for method in ("mcgdiff", "tds"):
        three = solve(gp.problem, prior, method, n_particles=4, steps=10, n_samples=3, seed=4)
        one = solve(gp.problem, prior, method, n_particles=4, steps=10, n_samples=1, seed=4)
        torch.testing.assert_close(three.particles[:1], one.particles, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(three.samples[:1], one.samples, rtol=1e-12, atol=1e-12)
        assert three.n_resampled > 0 and three.nfe == one.nfe
    res = solve(gp.problem, prior, "mcgdiff", n_particles=4, steps=10, resample_threshold=0.0, n_samples=2, seed=4)
    assert res.n_resampled == 0 and res.nfe == 10 and res.n_vjp == 0


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
    for n_part in (4, 16, 64, 256):
        res = solve(gp.problem, prior, method, n_particles=n_part, steps=30, n_samples=24, seed=1)
        assert res.weights.shape == (24, n_part) and res.particles.shape == (24, n_part, 4)
        torch.testing.assert_close(res.weights.sum(1), torch.ones(24, dtype=DT))
        assert bool((res.ess >= 1 - 1e-9).all()) and bool((res.ess <= n_part + 1e-9).all())
        errs.append(_weighted_errors(res, mean, cov))
    means, covs = [e[0] for e in errs], [e[1] for e in errs]
    assert all(a > b for a, b in itertools.pairwise(means)), means
    assert all(a > b for a, b in itertools.pairwise(covs)), covs
    # 64× the particles: MCGdiff's locally optimal proposal gains more than TDS's (whose DPS twisting is
    # over-confident at this σ, so its weights degenerate faster)
    gain = 0.5 if method == "mcgdiff" else 0.7
    assert means[-1] < gain * means[0] and covs[-1] < gain * covs[0]


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
    with pytest.raises(ValueError, match="twist"):
        solve(gp.problem, prior, "tds", twist="magic")
    with pytest.raises(ValueError, match="unknown option"):
        solve(gp.problem, prior, "mcgdiff", particles=4)
    noiseless = InverseProblem(gp.problem.op, gp.problem.y, 0.0)
    with pytest.raises(ValueError, match="sigma > 0"):
        solve(noiseless, prior, "mcgdiff", n_particles=2, steps=3)
    with pytest.raises(ValueError, match="no"):
        solve(gp.problem, prior, "tds", sampler="ddim")


def test_gaussian_twist_is_the_exact_likelihood_for_a_gaussian_prior(gauss) -> None:
    """For N(μ0, I) data on VP, x1 | x_t is Gaussian with covariance r_t² I, r_t² = α²/(β² + α²): the "gaussian"
    twist with v = 1 is log p(y | x_t) up to a constant (checked against the closed form at one time)."""
    gp, prior = gauss
    from genlab.inverse.methods.base import CountedModel
    from genlab.inverse.methods.smc import TDS

    m = TDS(twist="gaussian", twist_data_var=1.0)
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(2), dtype=DT)
    st = m._setup(gp.problem.expand(6), 1, x)
    t = torch.tensor(0.6, dtype=DT)
    logh = m._potential(x, t, CountedModel(prior), st)["logh"]
    # the default data variance, read from the prior's own denoiser, is the prior's (1 here)
    assert abs(TDS.data_variance(CountedModel(prior), (4,), like=x) - 1.0) < 1e-3
    c = prior.coeffs(t, x)
    a, s = float(c.beta[0]), float(c.alpha[0])
    mu0 = gp.prior.means[0]
    # y | x_t ~ N(A m(x_t), σ²I + r² AAᵀ) with m(x_t) = μ0 + a(x_t − aμ0)/(a² + s²)
    mean = mu0 + a * (x - a * mu0) / (a**2 + s**2)
    cov = gp.problem.sigma**2 * torch.eye(2, dtype=DT) + s**2 / (a**2 + s**2) * gp.A @ gp.A.T
    r = gp.problem.y - mean @ gp.A.T
    exact = -0.5 * torch.einsum("bi,ij,bj->b", r, torch.linalg.inv(cov), r)
    torch.testing.assert_close(logh - logh[0], exact - exact[0], rtol=1e-9, atol=1e-9)
