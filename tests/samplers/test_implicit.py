"""DDIM(η) and IADB: the implicit step against Song et al.'s eq. 12/16, Heitz et al.'s Alg. 4, and DBIM."""

from __future__ import annotations

import math

import pytest
import torch
from gaussian_oracle import gaussian_field, gaussian_flow_map
from torch import nn

from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants import AlphaBlending, DiffusionBridge, RectifiedFlow, VPDiffusion
from genlab.models.field import Field
from genlab.samplers import DBIM, DDIM, IADB, Euler, NoiseStream, log_snr, uniform

F64 = torch.float64
M = torch.tensor([1.0, -0.5, 0.3], dtype=F64)
S = torch.tensor([0.5, 0.8, 0.2], dtype=F64)


@pytest.fixture(autouse=True)
def _single_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _x(n: int = 6, seed: int = 0, d: int = 3) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


class _Oracle(nn.Module):
    def __init__(self, x1: torch.Tensor) -> None:
        super().__init__()
        self.x1 = x1

    def forward(self, x_t, t, cond=None):
        return self.x1


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_is_song_eq12(eta):
    """x_t = √ᾱ_t x̂1 + √(1 − ᾱ_t − σ²) ε̂ + σ ξ, σ = η √((1−ᾱ_t)/(1−ᾱ_s)) √(1 − ᾱ_s/ᾱ_t) (eq. 12, 16)."""
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    grid = torch.tensor([0.3, 0.5, 0.7], dtype=F64)
    x = _x() * 0.9
    res = DDIM(eta=eta).sample(field, x, grid, generator=torch.Generator().manual_seed(2), return_trajectory=True)
    xi = NoiseStream(x, torch.Generator().manual_seed(2))()
    c = vp.schedule.coeffs(grid)
    abar_s, abar_t = float(c.beta[0] ** 2), float(c.beta[1] ** 2)
    x1_hat = field(x, grid[0])
    eps_hat = (x - math.sqrt(abar_s) * x1_hat) / math.sqrt(1 - abar_s)
    sigma = eta * math.sqrt((1 - abar_t) / (1 - abar_s)) * math.sqrt(1 - abar_s / abar_t)
    ref = math.sqrt(abar_t) * x1_hat + math.sqrt(1 - abar_t - sigma**2) * eps_hat + sigma * xi
    assert float((res.trajectory[1] - ref).abs().max()) < 1e-12
    assert res.nfe == 2 == DDIM(eta=eta).expected_nfe(2)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_with_true_x1_keeps_the_marginal(eta):
    """With the true x1, x_t − β_t x1 ~ N(0, α_t²) whatever η (the DDIM non-Markovian family, Song et al. §4.1)."""
    vp = VPDiffusion()
    n = 20000
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(n, 2, generator=gen, dtype=F64)
    e = torch.randn(n, 2, generator=gen, dtype=F64)
    grid = torch.tensor([0.4, 0.6, 0.8], dtype=F64)
    c = vp.schedule.coeffs(grid)
    x_s = c.alpha[0] * e + c.beta[0] * x1
    res = DDIM(eta=eta).sample(Field(_Oracle(x1), vp, "x1"), x_s, grid, generator=gen, return_trajectory=True)
    r = res.trajectory[1] - c.beta[1] * x1
    assert abs(float(r.std()) / float(c.alpha[1]) - 1) < 4 / math.sqrt(2 * n)
    # and the retained part of the old noise is √(α_t² − ω²)
    omega = eta * float(vp.markov_omega(grid[0], grid[1], x1[:1]))
    assert abs(float((r * e).mean()) - math.sqrt(float(c.alpha[1]) ** 2 - omega**2)) < 4 / math.sqrt(n)


def test_ddim_on_a_bridge_is_dbim_without_boot():
    br = DiffusionBridge("vp")
    field = gaussian_field(br, M, S, k=0.5)
    x0 = _x()
    grid = uniform(6, t_start=0.05, t_end=0.95)
    c = br.schedule.coeffs(grid[:1])
    x = c.alpha * x0 + c.beta * (M + 0.5 * x0) + c.gamma * _x(seed=1)
    for eta in (0.0, 0.5):
        a = DDIM(eta=eta).sample(field, x, grid, cond=x0, generator=torch.Generator().manual_seed(4)).x
        b = DBIM(eta=eta).sample(field, x, grid, cond=x0, generator=torch.Generator().manual_seed(4)).x
        assert float((a - b).abs().max()) < 1e-12


def test_ddim_encode_decode_round_trip():
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    errs = []
    for n in (25, 50, 100):
        grid = log_snr(n, vp)
        x = _x() * float(vp.schedule.coeffs(grid[:1]).alpha)
        data = DDIM().sample(field, x, grid).x
        back = DDIM().sample(field, data, grid.flip(0)).x
        errs.append(float((back - x).abs().max()))
    assert errs[-1] < 0.15 and errs[0] / errs[-1] > 3.0, errs  # first order: ≈ halves per doubling
    with pytest.raises(ValueError, match="eta=0"):
        DDIM(eta=1.0).sample(field, _x(), log_snr(4, vp).flip(0))


def test_iadb_is_alg4_on_alpha_blending():
    """Heitz et al. Alg. 4: x ← x + (α_{k+1} − α_k)·D(x, α_k) with D = E[x1 − x0 | x_α] (the velocity)."""
    ab = AlphaBlending()
    field = gaussian_field(ab, M, S, kind="velocity")
    grid = uniform(9)
    x = _x()
    out = IADB().sample(field, x, grid).x
    ref = x.clone()
    for i in range(9):
        ref = ref + (grid[i + 1] - grid[i]) * field(ref, grid[i])
    assert float((out - ref).abs().max()) < 1e-12
    assert float((out - Euler().sample(field, x, grid).x).abs().max()) < 1e-12
    exact = gaussian_flow_map(ab, M, S, x, 0.0, 1.0)
    assert float((out - exact).abs().max()) > 1e-3


def test_iadb_deblends_two_data_sets():
    """Alg. 2 between two densities: x_{α'} = (1 − α')x̄0 + α'x̄1, which on the linear path is again Euler."""
    rf = RectifiedFlow(source="data")
    src = GaussianMixture(torch.tensor([[0.0, 1.0], [2.0, -1.0]], dtype=F64), 0.2)
    tgt = GaussianMixture(torch.tensor([[1.5, 0.5], [-1.0, -1.0]], dtype=F64), 0.1)
    field = exact_field(rf, src, tgt, "velocity")
    x = src.sample(8, generator=torch.Generator().manual_seed(0))
    grid = uniform(7)
    out = IADB().sample(field, x, grid, return_trajectory=True)
    assert float((out.x - Euler().sample(field, x, grid).x).abs().max()) < 1e-12
    # each state is the blend of the ends predicted at the previous state
    s, t = grid[2], grid[3]
    x0_hat = rf.convert(field(out.trajectory[2], s), "velocity", "x0", out.trajectory[2], s)
    x1_hat = rf.convert(field(out.trajectory[2], s), "velocity", "x1", out.trajectory[2], s)
    assert float((out.trajectory[3] - ((1 - t) * x0_hat + t * x1_hat)).abs().max()) < 1e-12


def test_iadb_on_gaussian_source_is_ddim_eta0():
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    grid = log_snr(7, vp)
    x = _x()
    assert torch.equal(IADB().sample(field, x, grid).x, DDIM().sample(field, x, grid).x)


def test_bad_eta():
    with pytest.raises(ValueError, match="eta"):
        DDIM(eta=-0.1)
