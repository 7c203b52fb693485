"""The fast exact GMM oracle (issue 13) changes no value: every covariance structure (isotropic, diagonal, full,
mixed), Gaussian-source, two-sided and bridge paths, shared and per-sample times, the singular bridge start and
the VJP all equal the pre-issue dense per-sample solve (``genlab.analytic._oracle_reference``) to 1e-12 in float64."""

from __future__ import annotations

import pytest
import torch

from genlab.analytic import ConditionalGMM, GaussianMixture, posterior_means
from genlab.analytic._oracle_reference import reference_posterior_means
from genlab.analytic.fields import _structure
from genlab.interpolants import DiffusionBridge, StochasticInterpolant, VPDiffusion

DT = torch.float64


def _mixture(kind: str, k: int, d: int, seed: int) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    means = 2.0 * torch.randn(k, d, generator=g, dtype=DT)
    weights = torch.rand(k, generator=g, dtype=DT) + 0.2
    if kind == "iso":
        covs = torch.rand(k, generator=g, dtype=DT) + 0.3
    elif kind == "diag":
        covs = torch.rand(k, d, generator=g, dtype=DT) + 0.3
    else:
        a = torch.randn(k, d, d, generator=g, dtype=DT) / d**0.5
        covs = a @ a.transpose(-1, -2) + 0.3 * torch.eye(d, dtype=DT)
    return GaussianMixture(means, covs, weights)


def _compare(interp, x, t, source, target, x0=None, *, score: bool = True) -> None:
    new = posterior_means(interp, x, t, source=source, target=target, x0=x0)
    old = reference_posterior_means(interp, x, t, source=source, target=target, x0=x0)
    pairs = [(new.x0, old.x0), (new.x1, old.x1)] + ([(new.score, old.score)] if score else [])
    for a, b in pairs:
        if b is None:
            assert a is None
            continue
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_structure_detection() -> None:
    assert _structure(_mixture("iso", 3, 4, 0).covs) == "iso"
    assert _structure(_mixture("diag", 3, 4, 0).covs) == "diag"
    assert _structure(_mixture("full", 3, 4, 0).covs) == "full"


@pytest.mark.parametrize("kind", ["iso", "diag", "full"])
@pytest.mark.parametrize("per_sample_t", [False, True])
def test_gaussian_source_matches_dense_reference(kind: str, per_sample_t: bool) -> None:
    d, n = 6, 40
    gmm = _mixture(kind, 5, d, 1)
    x = 2.0 * torch.randn(n, d, generator=torch.Generator().manual_seed(2), dtype=DT)
    t = torch.linspace(0.02, 0.98, n, dtype=DT) if per_sample_t else torch.full((n,), 0.4, dtype=DT)
    for interp in (VPDiffusion(), StochasticInterpolant("linear", gamma="brownian")):
        _compare(interp, x, t, "gaussian" if interp.gaussian_source else _mixture("iso", 1, d, 9), gmm)
    _compare(VPDiffusion(), x, 1.0, "gaussian", gmm)  # γ = 0 at the data end


@pytest.mark.parametrize("kinds", [("iso", "iso"), ("iso", "diag"), ("diag", "full"), ("full", "iso")])
def test_two_sided_matches_dense_reference(kinds: tuple[str, str]) -> None:
    d, n = 5, 30
    src, tgt = _mixture(kinds[0], 3, d, 3), _mixture(kinds[1], 4, d, 4)
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(5), dtype=DT)
    interp = StochasticInterpolant("linear", gamma="brownian")
    for t in (0.3, torch.linspace(0.05, 0.95, n, dtype=DT)):
        _compare(interp, x, t, src, tgt)


@pytest.mark.parametrize("kind", ["iso", "diag", "full"])
def test_bridge_matches_dense_reference_including_the_singular_start(kind: str) -> None:
    d, n = 4, 25
    g = torch.Generator().manual_seed(6)
    target = ConditionalGMM(_mixture(kind, 3, d, 7), scale=0.5)
    x0 = torch.randn(n, d, generator=g, dtype=DT)
    interp = DiffusionBridge("vp")
    x = torch.randn(n, d, generator=g, dtype=DT)
    for t in (0.5, torch.linspace(0.1, 0.9, n, dtype=DT)):
        _compare(interp, x, t, None, target, x0=x0)
    c = interp.schedule.coeffs(torch.zeros(1, dtype=DT))
    # x_t on the point-mass support at t = 0: the means take their exact limits; the score there is the
    # regularised (rounding / 1e-12) value of a singular density in both implementations, so it is not compared
    _compare(interp, c.alpha * x0, 0.0, None, target, x0=x0, score=False)


def test_vjp_matches_dense_reference() -> None:
    d, n = 8, 30
    gmm = _mixture("iso", 6, d, 8)
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(9), dtype=DT)
    v = torch.randn(n, d, generator=torch.Generator().manual_seed(10), dtype=DT)
    grads = []
    for fn in (posterior_means, reference_posterior_means):
        xg = x.clone().requires_grad_(True)
        out = fn(VPDiffusion(), xg, 0.3, source="gaussian", target=gmm)
        (gx,) = torch.autograd.grad((out.x1 * v).sum(), xg)
        grads.append(gx)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-11, atol=1e-12)
