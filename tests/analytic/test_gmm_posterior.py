"""Exact GMM posterior under y = A x + σ n: the textbook Gaussian (Kalman) form, Bayes' rule up to the
evidence for mixtures, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from genlab.analytic import GaussianMixture, gmm_posterior

DT = torch.float64


def test_single_gaussian_prior_is_the_textbook_posterior() -> None:
    g = torch.Generator().manual_seed(0)
    d, m, sigma = 3, 2, 0.3
    a = torch.randn(d, d, generator=g, dtype=DT)
    cov = a @ a.T + 0.2 * torch.eye(d, dtype=DT)
    mu = torch.randn(d, generator=g, dtype=DT)
    big_a = torch.randn(m, d, generator=g, dtype=DT)
    y = torch.randn(m, generator=g, dtype=DT)
    post = gmm_posterior(GaussianMixture(mu[None], cov[None]), big_a, y, sigma)
    # Kalman-gain form: K = ΣAᵀ(AΣAᵀ + σ²I)⁻¹, mean = μ + K(y − Aμ), cov = (I − KA)Σ
    s = big_a @ cov @ big_a.T + sigma**2 * torch.eye(m, dtype=DT)
    gain = cov @ big_a.T @ torch.linalg.inv(s)
    torch.testing.assert_close(post.means[0], mu + gain @ (y - big_a @ mu), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(post.covs[0], (torch.eye(d, dtype=DT) - gain @ big_a) @ cov, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(post.weights, torch.ones(1, dtype=DT))


def test_mixture_posterior_is_prior_times_likelihood_normalised(gmm_target_2d: GaussianMixture) -> None:
    big_a = torch.tensor([[1.0, 0.5]], dtype=DT)
    y = torch.tensor([0.7], dtype=DT)
    sigma = 0.4
    post = gmm_posterior(gmm_target_2d, big_a, y, sigma)
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-2.0, 1.0], [0.5, -2.0], [2.5, 1.5], [-0.3, 0.9]], dtype=DT)
    loglik = MultivariateNormal(x @ big_a.T, covariance_matrix=sigma**2 * torch.eye(1, dtype=DT)).log_prob(y)
    diff = post.log_prob(x) - (gmm_target_2d.log_prob(x) + loglik)
    # constant in x, and the constant is −log p(y) with p(y) = Σ w_k N(y; Aμ_k, AΣ_kAᵀ + σ²)
    torch.testing.assert_close(diff, diff[:1].expand_as(diff), rtol=0, atol=1e-10)
    evidence = sum(
        float(w) * math.exp(float(MultivariateNormal(big_a @ mu, big_a @ c @ big_a.T + sigma**2 * torch.eye(1, dtype=DT))
                                  .log_prob(y)))
        for w, mu, c in zip(gmm_target_2d.weights, gmm_target_2d.means, gmm_target_2d.covs)
    )
    assert float(diff[0]) == pytest.approx(-math.log(evidence), abs=1e-10)
    # the measurement moves the weights: the component closest to the line x + y/2 = 0.7 gains weight
    assert not torch.allclose(post.weights, gmm_target_2d.weights)


def test_posterior_errors(gmm_target_2d: GaussianMixture) -> None:
    a = torch.eye(2, dtype=DT)
    y = torch.zeros(2, dtype=DT)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        gmm_posterior(gmm_target_2d, a, y, 0.0)
    with pytest.raises(ValueError, match=r"A must have shape \(m, 2\)"):
        gmm_posterior(gmm_target_2d, torch.eye(3, dtype=DT), torch.zeros(3, dtype=DT), 0.1)
    with pytest.raises(ValueError, match="y must have 2 entries"):
        gmm_posterior(gmm_target_2d, a, torch.zeros(3, dtype=DT), 0.1)
