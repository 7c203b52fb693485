"""GaussianMixture: moments, sampling, normalisation, log-density against scipy, score, formats and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from genlab.analytic import GaussianMixture

DT = torch.float64


def test_mean_and_cov_properties(gmm_target_2d: GaussianMixture) -> None:
    w = gmm_target_2d.weights.numpy()
    mu = gmm_target_2d.means.numpy()
    cov = gmm_target_2d.covs.numpy()
    mean = (w[:, None] * mu).sum(0)
    second = sum(w[k] * (cov[k] + np.outer(mu[k], mu[k])) for k in range(len(w)))
    np.testing.assert_allclose(gmm_target_2d.mean.numpy(), mean, rtol=1e-14)
    np.testing.assert_allclose(gmm_target_2d.cov.numpy(), second - np.outer(mean, mean), rtol=1e-13)


def test_sample_moments_match(gmm_target_2d: GaussianMixture) -> None:
    n = 20000
    x = gmm_target_2d.sample(n, generator=torch.Generator().manual_seed(0))
    assert x.shape == (n, 2) and x.dtype == DT
    mean, cov = gmm_target_2d.mean, gmm_target_2d.cov
    se = torch.sqrt(torch.diagonal(cov) / n)
    assert bool(((x.mean(0) - mean).abs() < 4.5 * se).all()), (x.mean(0), mean)
    r = x - mean
    prods = r[:, :, None] * r[:, None, :]
    se_c = prods.std(0) / math.sqrt(n)
    assert bool(((prods.mean(0) - cov).abs() < 4.5 * se_c).all()), (prods.mean(0), cov)
    # component frequencies: each sample sits far closer to its own mode than to the others here
    idx = torch.cdist(x, gmm_target_2d.means).argmin(1)
    freq = torch.bincount(idx, minlength=3).to(DT) / n
    w = gmm_target_2d.weights
    assert bool(((freq - w).abs() < 4.5 * torch.sqrt(w * (1 - w) / n) + 0.01).all()), (freq, w)


def test_sample_is_batch_size_invariant_and_reproducible(gmm_target_2d: GaussianMixture) -> None:
    a = gmm_target_2d.sample(7, generator=torch.Generator().manual_seed(3))
    b = gmm_target_2d.sample(3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a[:3], b, rtol=0, atol=0)
    assert gmm_target_2d.sample(0).shape == (0, 2)
    assert gmm_target_2d.sample(4, dtype=torch.float32).dtype == torch.float32


def test_log_prob_integrates_to_one_in_1d(gmm_1d: GaussianMixture) -> None:
    x = torch.linspace(-10, 12, 20001, dtype=DT)[:, None]
    dens = gmm_1d.log_prob(x).exp()
    assert float(torch.trapezoid(dens, x[:, 0])) == pytest.approx(1.0, abs=1e-9)
    # and the first moment is the mixture mean
    assert float(torch.trapezoid(dens * x[:, 0], x[:, 0])) == pytest.approx(float(gmm_1d.mean[0]), abs=1e-8)


def test_log_prob_matches_scipy() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 3, generator=g, dtype=DT)
    cov = a @ a.T + 0.5 * torch.eye(3, dtype=DT)
    mean = torch.randn(3, generator=g, dtype=DT)
    x = torch.randn(6, 3, generator=g, dtype=DT) * 2
    single = GaussianMixture(mean[None], cov[None])
    ref = multivariate_normal(mean.numpy(), cov.numpy()).logpdf(x.numpy())
    np.testing.assert_allclose(single.log_prob(x).numpy(), ref, rtol=1e-12)
    # a mixture is the weighted log-sum-exp of its components
    cov2 = torch.diag(torch.tensor([0.3, 1.2, 0.7], dtype=DT))
    mix = GaussianMixture(torch.stack([mean, -mean]), torch.stack([cov, cov2]), torch.tensor([1.0, 3.0]))
    comps = np.stack([multivariate_normal(mean.numpy(), cov.numpy()).logpdf(x.numpy()) + math.log(0.25),
                      multivariate_normal(-mean.numpy(), cov2.numpy()).logpdf(x.numpy()) + math.log(0.75)])
    np.testing.assert_allclose(mix.log_prob(x).numpy(), np.logaddexp(comps[0], comps[1]), rtol=1e-12)


def test_score_matches_finite_differences(gmm_target_2d: GaussianMixture) -> None:
    x = torch.tensor([[0.1, 0.2], [1.5, 1.0], [-1.0, -2.0]], dtype=DT)
    h = 1e-6
    fd = torch.stack(
        [(gmm_target_2d.log_prob(x + h * e) - gmm_target_2d.log_prob(x - h * e)) / (2 * h)
         for e in torch.eye(2, dtype=DT)], 1)
    torch.testing.assert_close(gmm_target_2d.score(x), fd, rtol=1e-6, atol=1e-7)


def test_covariance_formats_agree() -> None:
    means = torch.tensor([[0.0, 1.0], [2.0, -1.0]], dtype=DT)
    full = GaussianMixture(means, 0.5 * torch.eye(2, dtype=DT).expand(2, 2, 2))
    for covs in (0.5, torch.tensor([0.5, 0.5], dtype=DT), torch.full((2, 2), 0.5, dtype=DT)):
        torch.testing.assert_close(GaussianMixture(means, covs).covs, full.covs)
    torch.testing.assert_close(full.weights, torch.tensor([0.5, 0.5], dtype=DT))
    gm = GaussianMixture(torch.tensor([1.0, 2.0]), 1.0)  # a single mean vector is one component
    assert gm.n_components == 1 and gm.dim == 2
    moved = full.to(dtype=torch.float32)
    assert moved.means.dtype == torch.float32 and moved.covs.dtype == torch.float32


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="means must have shape"):
        GaussianMixture(torch.zeros(2, 2, 2), 1.0)
    with pytest.raises(ValueError, match="isotropic covs"):
        GaussianMixture(torch.zeros(2, 2), torch.ones(3))
    with pytest.raises(ValueError, match="diagonal covs"):
        GaussianMixture(torch.zeros(2, 2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="full covs"):
        GaussianMixture(torch.zeros(2, 2), torch.ones(2, 3, 3))
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(torch.zeros(2, 2), 1.0, torch.tensor([1.0, -0.5]))
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(torch.zeros(2, 2), 1.0, torch.tensor([1.0, 1.0, 1.0]))
    gm = GaussianMixture(torch.zeros(2, 2), 1.0)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        gm.log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="n must be >= 0"):
        gm.sample(-1)
