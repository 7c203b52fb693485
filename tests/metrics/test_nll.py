"""NLL and bits/dim: closed-form Gaussian target through the exact rectified-flow field, unit conversions."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants.presets import RectifiedFlow
from genlab.metrics import bits_per_dim, nll, nll_to_bits_per_dim

D = 4
MEAN = torch.tensor([0.5, -1.0, 2.0, 0.3], dtype=torch.float64)
STD = 0.7


@pytest.fixture(scope="module")
def field():
    target = GaussianMixture(
        MEAN[None], torch.full((1,), STD**2, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    )
    return exact_field(RectifiedFlow(), "gaussian", target)


def _gaussian_nll(x: torch.Tensor) -> torch.Tensor:
    """−log N(x; m, s² I), written out."""
    sq = ((x - MEAN) ** 2).sum(dim=1)
    return 0.5 * sq / STD**2 + D * math.log(STD) + 0.5 * D * math.log(2.0 * math.pi)


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    pts = MEAN + STD * torch.randn(6, D, generator=gen, dtype=torch.float64)
    # plus two points in the tails, where a wrong divergence or source term shows most
    tails = MEAN + STD * torch.tensor([[2.5, -2.0, 0.0, 1.0], [-3.0, 0.5, 2.0, -1.5]], dtype=torch.float64)
    return torch.cat([pts, tails])


def test_nll_matches_closed_form_gaussian(field, x: torch.Tensor) -> None:
    value = nll(field, x, exact_divergence=True, rtol=1e-7, atol=1e-7)
    assert value.shape == (x.shape[0],)
    torch.testing.assert_close(value, _gaussian_nll(x), rtol=0, atol=1e-4)


def test_bits_per_dim_matches_closed_form_and_offset(field, x: torch.Tensor) -> None:
    cont = bits_per_dim(field, x, n_bins=None, exact_divergence=True, rtol=1e-7, atol=1e-7)
    expected = _gaussian_nll(x) / (D * math.log(2.0))
    torch.testing.assert_close(cont, expected, rtol=0, atol=1e-4 / (D * math.log(2.0)))
    # the data here span more than 2, so declare the range they live in
    span = float(x.max() - x.min())
    disc = bits_per_dim(field, x, data_range=span, n_bins=256, exact_divergence=True, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(disc - cont, torch.full_like(cont, math.log2(256 / span)), rtol=0, atol=1e-9)


def test_conversion_formula() -> None:
    # Uniform density on [-1, 1]^d: -log p = d ln 2, i.e. 1 continuous bit/dim, and exactly 8 bits/dim once
    # the 256 dequantisation bins of width 2/256 are accounted for (a uniform over 256 levels).
    for d in (1, 3, 64):
        uniform = torch.tensor([d * math.log(2.0)], dtype=torch.float64)
        assert float(nll_to_bits_per_dim(uniform, d, n_bins=None)) == pytest.approx(1.0, abs=1e-12)
        assert float(nll_to_bits_per_dim(uniform, d, data_range=2.0, n_bins=256)) == pytest.approx(
            8.0, abs=1e-12
        )
        # data in [0, 1] (data_range = 1): -log p = 0, offset log2(256) = 8
        assert float(nll_to_bits_per_dim(0.0, d, data_range=1.0, n_bins=256)) == pytest.approx(8.0, abs=1e-12)
    # generic value: nll / (d ln 2) + log2(n_bins / data_range)
    val = nll_to_bits_per_dim(
        torch.tensor([100.0, -20.0], dtype=torch.float64), 10, data_range=2.0, n_bins=32
    )
    expected = torch.tensor([100.0, -20.0], dtype=torch.float64) / (10 * math.log(2.0)) + 4.0
    torch.testing.assert_close(val, expected, rtol=0, atol=1e-12)


def test_bad_units_and_ranges_are_rejected(field, x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="data_range"):
        nll_to_bits_per_dim(1.0, 4, data_range=0.0)
    with pytest.raises(TypeError, match="data_range"):
        nll_to_bits_per_dim(1.0, 4, data_range="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_bins"):
        nll_to_bits_per_dim(1.0, 4, n_bins=1)
    with pytest.raises(ValueError, match="n_bins"):
        nll_to_bits_per_dim(1.0, 4, n_bins=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dim"):
        nll_to_bits_per_dim(1.0, 0)
    # data wider than the declared range: the dequantisation offset would be meaningless
    with pytest.raises(ValueError, match="data_range=2.0"):
        bits_per_dim(field, x, data_range=2.0, n_bins=256)
    with pytest.raises(TypeError, match="Field"):
        nll(lambda x_t, t: x_t, x)  # type: ignore[arg-type]
