"""Sample and Gaussian distances against closed forms, scipy, and brute-force equivalents."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import linalg, stats

from genlab.metrics.distances import (
    energy_distance,
    frechet_distance,
    gaussian_moments,
    gaussian_w2,
    gaussian_w2_samples,
    mmd,
    mmd2,
    sliced_wasserstein,
    sqrtm_psd,
)

D64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gaussian_quantiles(m: float, s: float, n: int) -> torch.Tensor:
    """Deterministic 'sample' of N(m, s^2): the quantiles at (i - 1/2)/n."""
    u = (np.arange(n) + 0.5) / n
    return torch.from_numpy(m + s * stats.norm.ppf(u)).unsqueeze(1)


# ----------------------------------------------------------------------------------------- sliced Wasserstein


@pytest.mark.parametrize("p", [1, 2])
def test_sw_1d_gaussians_closed_form(p: int) -> None:
    m1, s1, m2, s2 = 0.3, 1.0, -0.4, 1.7
    x, y = gaussian_quantiles(m1, s1, 4000), gaussian_quantiles(m2, s2, 3000)  # different sizes
    if p == 2:
        exact = math.hypot(m1 - m2, s1 - s2)
    else:  # E|dm + ds Z|: mean of a folded normal
        dm, ds = m1 - m2, abs(s1 - s2)
        exact = ds * math.sqrt(2 / math.pi) * math.exp(-(dm**2) / (2 * ds**2)) + dm * (
            1 - 2 * stats.norm.cdf(-dm / ds)
        )
    one = torch.ones(1, 1, dtype=D64)
    assert sliced_wasserstein(x, y, p=p, directions=one).item() == pytest.approx(exact, rel=5e-3)
    # random directions in 1-D are +-1: same value
    assert sliced_wasserstein(x, y, p=p, n_projections=3, generator=gen(0)).item() == pytest.approx(
        exact, rel=5e-3
    )


def test_sw_unequal_sizes_exact_w1_vs_scipy() -> None:
    x = torch.randn(37, generator=gen(1), dtype=D64)
    y = 0.5 + 2 * torch.randn(23, generator=gen(2), dtype=D64)
    one = torch.ones(1, 1, dtype=D64)
    ref = stats.wasserstein_distance(x.numpy(), y.numpy())
    assert sliced_wasserstein(x, y, p=1, directions=one).item() == pytest.approx(ref, rel=1e-12)


def test_sw_unequal_sizes_exact_w2_by_replication() -> None:
    # an empirical measure with n atoms equals the same atoms repeated k times each: W_p is unchanged
    x = torch.randn(6, generator=gen(3), dtype=D64)
    y = torch.randn(4, generator=gen(4), dtype=D64) + 1
    xr, yr = x.repeat_interleave(2), y.repeat_interleave(3)  # both 12 atoms
    brute = (torch.sort(xr).values - torch.sort(yr).values).pow(2).mean().sqrt()
    one = torch.ones(1, 1, dtype=D64)
    assert sliced_wasserstein(x, y, p=2, directions=one).item() == pytest.approx(brute.item(), rel=1e-12)


def test_sw_shift_exact_per_direction() -> None:
    x = torch.randn(300, 4, generator=gen(5), dtype=D64)
    delta = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=D64)
    theta = torch.randn(4, 50, generator=gen(6), dtype=D64)
    theta = theta / theta.norm(dim=0)
    sw2 = sliced_wasserstein(x, x + delta, p=2, directions=theta)
    assert sw2.item() ** 2 == pytest.approx((delta @ theta).pow(2).mean().item(), rel=1e-10)
    sw1 = sliced_wasserstein(x, x + delta, p=1, directions=theta)
    assert sw1.item() == pytest.approx((delta @ theta).abs().mean().item(), rel=1e-10)


def test_sw_shift_expectation_over_directions() -> None:
    d = 5
    x = torch.randn(50, d, generator=gen(7), dtype=D64)
    delta = torch.tensor([1.0, 2.0, -1.0, 0.5, 3.0], dtype=D64)
    norm2 = delta.pow(2).sum().item()
    sw2 = sliced_wasserstein(x, x + delta, p=2, n_projections=20_000, generator=gen(8))
    assert sw2.item() ** 2 == pytest.approx(norm2 / d, rel=0.03)  # E<theta, delta>^2 = |delta|^2 / d
    e_abs = math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d + 1) / 2))  # E|theta_1| on S^{d-1}
    sw1 = sliced_wasserstein(x, x + delta, p=1, n_projections=20_000, generator=gen(9))
    assert sw1.item() == pytest.approx(math.sqrt(norm2) * e_abs, rel=0.03)


def test_sw_determinism_and_errors() -> None:
    x, y = torch.randn(50, 3, generator=gen(0)), torch.randn(60, 3, generator=gen(1))
    a = sliced_wasserstein(x, y, generator=gen(2))
    assert a.item() == sliced_wasserstein(x, y, generator=gen(2)).item()
    assert sliced_wasserstein(x, x, generator=gen(2)).item() == 0.0
    with pytest.raises(ValueError, match="p must be"):
        sliced_wasserstein(x, y, p=3)
    with pytest.raises(ValueError, match="same dimension"):
        sliced_wasserstein(x, y[:, :2])


# ------------------------------------------------------------------------------------------------------ MMD


def test_mmd_zero_and_monotone_in_shift() -> None:
    x = torch.randn(300, 2, generator=gen(10), dtype=D64)
    y = torch.randn(300, 2, generator=gen(11), dtype=D64)
    assert mmd2(x, x).item() == pytest.approx(0.0, abs=1e-12)
    assert mmd(x, x).item() == pytest.approx(0.0, abs=1e-6)
    vals = [mmd2(x, y + s, bandwidths=(0.5, 1.0, 2.0)).item() for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in itertools.pairwise(vals))
    assert mmd2(x, y + 1.0).item() > mmd2(x, y).item()  # median-heuristic default too


def test_mmd_unbiased_matches_population_value() -> None:
    # N(0, I) vs N(delta, I), d = 2, one bandwidth sigma: 2 (s2/(s2+2))^{d/2} (1 - exp(-|delta|^2 / (2 (s2+2))))
    d, sigma, shift = 2, 1.5, 0.8
    s2 = sigma**2
    exact = 2 * (s2 / (s2 + 2)) ** (d / 2) * (1 - math.exp(-(shift**2) * d / (2 * (s2 + 2))))
    est = []
    for r in range(8):
        x = torch.randn(400, d, generator=gen(100 + r), dtype=D64)
        y = torch.randn(400, d, generator=gen(200 + r), dtype=D64) + shift
        est.append(mmd2(x, y, bandwidths=[sigma], unbiased=True).item())
    assert np.mean(est) == pytest.approx(exact, rel=0.06)
    # the biased V-statistic overshoots by about (2 - E k_xx - E k_yy)/n
    x = torch.randn(400, d, generator=gen(100), dtype=D64)
    y = torch.randn(400, d, generator=gen(200), dtype=D64) + shift
    assert mmd2(x, y, bandwidths=[sigma]) > mmd2(x, y, bandwidths=[sigma], unbiased=True)


# ------------------------------------------------------------------------------------------- energy distance


def test_energy_distance_vs_scipy_and_point_masses() -> None:
    x = torch.randn(70, generator=gen(12), dtype=D64)
    y = 0.3 + 1.5 * torch.randn(45, generator=gen(13), dtype=D64)
    ref = stats.energy_distance(x.numpy(), y.numpy()) ** 2
    assert energy_distance(x, y).item() == pytest.approx(ref, rel=1e-10)
    assert energy_distance(x, x).item() == pytest.approx(0.0, abs=1e-12)
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    assert energy_distance(a, b).item() == pytest.approx(10.0)  # 2|a - b|


def test_energy_distance_unbiased_population() -> None:
    mu = 1.0
    # X - Y ~ N(-mu, 2): E|X - Y| is a folded-normal mean; E|X - X'| = 2/sqrt(pi)
    s = math.sqrt(2.0)
    e_xy = s * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * s**2)) + mu * (
        1 - 2 * stats.norm.cdf(-mu / s)
    )
    exact = 2 * e_xy - 2 * (2 / math.sqrt(math.pi))
    q = gaussian_quantiles(0.0, 1.0, 2000)  # deterministic N(0, 1) 'sample'
    assert energy_distance(q, q + mu).item() == pytest.approx(exact, rel=1e-3)
    est = [
        energy_distance(
            torch.randn(300, 1, generator=gen(300 + r), dtype=D64),
            torch.randn(300, 1, generator=gen(400 + r), dtype=D64) + mu,
            unbiased=True,
        ).item()
        for r in range(20)
    ]
    assert np.mean(est) == pytest.approx(exact, rel=0.1)


# ------------------------------------------------------------------------------------------- Gaussian W2


def random_spd(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=gen(seed), dtype=D64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=D64)


def test_gaussian_w2_one_dimensional() -> None:
    m1, s1, m2, s2 = 0.5, 2.0, -1.0, 0.7
    t = lambda v: torch.tensor(v, dtype=D64)
    w = gaussian_w2(t([m1]), t([[s1**2]]), t([m2]), t([[s2**2]]))
    assert w.item() == pytest.approx(math.hypot(m1 - m2, s1 - s2), rel=1e-12)


def test_gaussian_w2_diagonal_and_singular() -> None:
    a = torch.tensor([1.0, 4.0, 0.0, 2.0], dtype=D64)  # singular (a zero variance)
    b = torch.tensor([9.0, 1.0, 0.25, 2.0], dtype=D64)
    mu1, mu2 = torch.zeros(4, dtype=D64), torch.tensor([1.0, 0.0, -2.0, 0.0], dtype=D64)
    exact = (mu1 - mu2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum()
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)).item() == pytest.approx(
        exact.item(), rel=1e-12
    )
    # rotating both covariances by the same orthogonal matrix does not change W2
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen(16), dtype=D64))
    rot = frechet_distance(mu1, q @ torch.diag(a) @ q.T, mu2, q @ torch.diag(b) @ q.T)
    assert rot.item() == pytest.approx(exact.item(), rel=1e-6)  # sqrt of a rounded zero eigenvalue: ~1e-8


def test_frechet_vs_scipy_sqrtm() -> None:
    d = 6
    c1, c2 = random_spd(d, 17), random_spd(d, 18)
    mu1 = torch.randn(d, generator=gen(19), dtype=D64)
    mu2 = torch.randn(d, generator=gen(20), dtype=D64)
    covmean = linalg.sqrtm(c1.numpy() @ c2.numpy()).real
    ref = ((mu1 - mu2) ** 2).sum().item() + np.trace(c1.numpy() + c2.numpy() - 2 * covmean)
    fd = frechet_distance(mu1, c1, mu2, c2)
    assert fd.item() == pytest.approx(ref, rel=1e-9)
    assert frechet_distance(mu2, c2, mu1, c1).item() == pytest.approx(fd.item(), rel=1e-9)  # symmetric
    assert gaussian_w2(mu1, c1, mu2, c2).item() ** 2 == pytest.approx(fd.item(), rel=1e-12)
    assert frechet_distance(mu1, c1, mu1, c1).item() == pytest.approx(0.0, abs=1e-9)


def test_sqrtm_psd_and_samples() -> None:
    c = random_spd(5, 21)
    r = sqrtm_psd(c)
    assert torch.allclose(r @ r, c, atol=1e-10) and torch.allclose(r, r.T)
    x = torch.randn(200, 3, generator=gen(22), dtype=D64)
    y = torch.randn(150, 3, generator=gen(23), dtype=D64) * 2 + 1
    mx = gaussian_moments(x)
    assert np.allclose(mx.cov.numpy(), np.cov(x.numpy().T))
    my = gaussian_moments(y)
    assert gaussian_w2_samples(x, y).item() == pytest.approx(
        gaussian_w2(mx.mean, mx.cov, my.mean, my.cov).item()
    )
    with pytest.raises(ValueError, match="cov1"):
        frechet_distance(torch.zeros(3), torch.eye(2), torch.zeros(3), torch.eye(3))
