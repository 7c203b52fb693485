"""Field(x1_range=...): DDPM's clip_sample as a Field option, seen by every sampler."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import genlab
from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants import StochasticInterpolant, VPDiffusion
from genlab.models.field import Field
from genlab.samplers import log_snr

F64 = torch.float64
#: Data inside [-1, 1] (two tight modes), as images are.
GMM = GaussianMixture(torch.tensor([[-0.6, 0.2], [0.5, -0.4]], dtype=F64), 0.05**2)


class Shrunk(nn.Module):
    """An ε-network with a 10 % shrinkage bias (what an under-trained network does)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x, t, *a):
        return 0.9 * self.net(x, t, *a)


def _sample(field: Field) -> torch.Tensor:
    grid = log_snr(20, field.interpolant, t_start=1e-3, t_end=0.999)
    return genlab.sample(field, sampler="ddim", grid=grid, n=256, shape=(2,), seed=0, dtype=F64).x


def test_the_implied_data_prediction_is_clamped_and_the_rest_left_alone() -> None:
    vp = VPDiffusion(kind="cosine")
    exact = exact_field(vp, "gaussian", GMM, "noise")
    clipped = Field(Shrunk(exact.net), vp, "noise", x1_range=(-1.0, 1.0))
    raw = Field(Shrunk(exact.net), vp, "noise")
    x = 1.5 * torch.randn(512, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    for t in (0.01, 0.3, 0.9):
        tt = torch.full((512,), t, dtype=F64)
        x1_raw = vp.convert(raw(x, tt), "noise", "x1", x, tt)
        x1_clip = vp.convert(clipped(x, tt), "noise", "x1", x, tt)
        assert float(x1_clip.abs().max()) <= 1.0 + 1e-9
        inside = (x1_raw.abs() <= 1.0).all(dim=1)
        assert bool(inside.any()) and bool((~inside).any())
        torch.testing.assert_close(x1_clip[inside], x1_raw[inside])  # in range: unchanged
        torch.testing.assert_close(x1_clip[~inside], x1_raw[~inside].clamp(-1, 1))


def test_clamping_keeps_a_biased_eps_network_in_the_data_range() -> None:
    vp = VPDiffusion(kind="cosine")
    exact = exact_field(vp, "gaussian", GMM, "noise")
    wild = _sample(Field(Shrunk(exact.net), vp, "noise"))
    tame = _sample(Field(Shrunk(exact.net), vp, "noise", x1_range=(-1.0, 1.0)))
    assert float(wild.abs().max()) > 1.1  # the bias alone throws samples outside the data range
    assert float(tame.abs().max()) <= 1.0
    plain = _sample(exact)  # an exact field barely predicts outside [-1, 1]: clamping changes it very little
    same = _sample(Field(exact.net, vp, "noise", x1_range=(-1.0, 1.0)))
    assert float((plain - same).abs().max()) < 0.05


def test_x1_range_bad_input() -> None:
    vp = VPDiffusion()
    net = exact_field(vp, "gaussian", GMM, "noise").net
    with pytest.raises(ValueError, match="low < high"):
        Field(net, vp, "noise", x1_range=(1.0, -1.0))
    with pytest.raises(ValueError, match="pair"):
        Field(net, vp, "noise", x1_range=1.0)
    si = StochasticInterpolant("linear", gamma="brownian")
    with pytest.raises(ValueError, match="x1_range"):
        Field(net, si, "velocity", x1_range=(-1.0, 1.0))
