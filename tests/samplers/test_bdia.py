"""BDIA: γ = 0 is DDIM bit for bit, orders (γ = 1 → 2, γ = 0.5 → 1), exact inversion round trips in float64 and
float32, generic maps, editing round trip, bad input (``reference/samplers.md`` §4, §9)."""

from __future__ import annotations

import pytest
import torch
from semilinear_oracle import assert_order, endpoint_errors, flow_map, gaussian_field

from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants import DiffusionBridge, RectifiedFlow, StochasticInterpolant, VPDiffusion
from genlab.samplers import get_sampler, grids
from genlab.samplers.bdia import BDIA, BDIALatent, bdia_edit

F64 = torch.float64
M, S = [0.7, -1.2], [0.3, 1.5]
M_UNIT, S_UNIT = [0.3, -0.2], [0.3, 0.5]  # image-like scale (|x| ≲ 2) for the float32 round trip


def _noise(n: int = 8, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _ddim_loop(field, x: torch.Tensor, grid: torch.Tensor, cond=None) -> torch.Tensor:
    """Plain DDIM written out: one evaluation, predicted ends, implicit step (the map BDIA builds on)."""
    interp = field.interpolant
    for i in range(grid.numel() - 1):
        raw = field(x, grid[i], cond)
        x0_hat, x1_hat = interp.endpoints(raw, field.kind, x, grid[i], cond)
        x = interp.implicit_step(x, grid[i], grid[i + 1], x0_hat, x1_hat)
    return x


@pytest.mark.parametrize("path", ["vp", "rf", "bridge"])
def test_gamma_zero_is_ddim_bit_for_bit(path: str) -> None:
    if path == "vp":
        interp, cond, grid = VPDiffusion(), None, grids.log_snr(9, VPDiffusion())
    elif path == "rf":
        interp, cond, grid = RectifiedFlow(), None, grids.uniform(9)
    else:
        interp, cond = DiffusionBridge("vp"), _noise(8, 4)
        grid = grids.log_snr(9, interp)
    field = gaussian_field(interp, M, S, k=0.5 if cond is not None else 0.0)
    x = _noise()
    res = BDIA(gamma=0.0).sample(field, x, grid, cond=cond)
    assert torch.equal(res.x, _ddim_loop(field, x, grid, cond))


@pytest.mark.parametrize(("gamma", "p"), [(1.0, 2.0), (0.5, 1.0)])
def test_orders_on_vp_log_snr(gamma: float, p: float) -> None:
    # measured last-pair slopes: γ = 1 → 2.00, γ = 0.5 → 1.03 (with a constant about 3× below DDIM's)
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    z = _noise()
    errs = endpoint_errors(BDIA(gamma=gamma), field, lambda n: grids.log_snr(n, vp),
                           lambda g: z * vp.init_scale(g[0], z)[:, None],
                           lambda x, g: flow_map(vp, x, float(g[0]), float(g[-1]), M, S))
    assert_order(errs, p - 0.3, p + 1.2)
    if gamma == 0.5:
        ddim = endpoint_errors(BDIA(gamma=0.0), field, lambda n: grids.log_snr(n, vp),
                               lambda g: z * vp.init_scale(g[0], z)[:, None],
                               lambda x, g: flow_map(vp, x, float(g[0]), float(g[-1]), M, S))
        assert all(a < b / 2 for a, b in zip(errs, ddim))


@pytest.mark.parametrize("gamma", [0.5, 1.0])
@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_inversion_recovers_the_initial_noise(gamma: float, dtype: torch.dtype) -> None:
    # N = 10: float64 error ≈ 1e-13 (γ = 0.5), float32 ≈ 3e-5; rounding grows like (1/γ)^N through the inverse
    # recurrence x_{i−1} = (x_{i+1} − Φ(x_i))/γ + Φ_b(x_i), hence unit-scale data for the float32 bound.
    vp = VPDiffusion()
    field = gaussian_field(vp, M_UNIT, S_UNIT)
    grid = grids.log_snr(10, vp)
    x0 = _noise(256, 1, dtype)
    smp = BDIA(gamma=gamma)
    res = smp.sample(field, x0, grid, return_trajectory=True)
    assert res.aux["last_pair"][0] is res.trajectory[-2] and res.aux["last_pair"][1] is res.x
    inv = smp.invert(field, res.aux["last_pair"], grid)
    err = float((inv.x - x0).abs().max())
    assert err < (1e-10 if dtype == F64 else 1e-4), err
    torch.testing.assert_close(inv.aux["first_pair"][1], res.trajectory[1], rtol=0, atol=1e-10 if dtype == F64 else
                               1e-4)
    assert inv.nfe == 9


def test_inversion_on_rectified_flow_and_a_bridge() -> None:
    for interp, cond, grid in ((RectifiedFlow(), None, grids.uniform(10, t_end=0.98)),
                               (DiffusionBridge("vp"), _noise(16, 2), grids.log_snr(10, DiffusionBridge("vp")))):
        field = gaussian_field(interp, M_UNIT, S_UNIT, k=0.5 if cond is not None else 0.0)
        x0 = _noise(16, 3)
        smp = BDIA(gamma=0.5)
        res = smp.sample(field, x0, grid, cond=cond)
        assert float((smp.invert(field, res.aux["last_pair"], grid, cond=cond).x - x0).abs().max()) < 1e-10


def test_generic_maps_heun_forward_euler_backward() -> None:
    # EDM-style BDIA: Φ = Heun (1 extra evaluation), Φ_b = Euler reusing the evaluation at x_i; still exactly invertible
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    grid = grids.log_snr(8, vp)
    x0 = _noise()
    smp = BDIA(gamma=0.7, forward="heun", backward="euler")
    res = smp.sample(field, x0, grid)
    assert res.nfe == smp.expected_nfe(8) == 16
    assert float((smp.invert(field, res.aux["last_pair"], grid).x - x0).abs().max()) < 1e-10
    # on rectified flow the DDIM map is an Euler step, so the two BDIA variants coincide
    rf = RectifiedFlow()
    f_rf = gaussian_field(rf, M, S)
    g_rf = grids.uniform(8, t_end=0.99)
    a = BDIA(gamma=0.5).sample(f_rf, x0, g_rf).x
    b = BDIA(gamma=0.5, forward="euler").sample(f_rf, x0, g_rf).x
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_editing_round_trip_and_edit() -> None:
    vp = VPDiffusion()
    field = gaussian_field(vp, M_UNIT, S_UNIT)
    grid = grids.log_snr(10, vp)
    gmm = GaussianMixture(torch.tensor([M_UNIT], dtype=F64), torch.tensor([S_UNIT], dtype=F64) ** 2)
    y = gmm.sample(64, generator=torch.Generator().manual_seed(5)) + 0.05 * _noise(64, 6)  # an arbitrary real sample
    out = bdia_edit(field, y, grid, gamma=0.5)
    assert float((out.x - y).abs().max()) < 1e-10
    assert out.nfe == 1 + 9 + 9
    # the latent replays exactly through the sampler's own loop
    replay = BDIA(gamma=0.5).sample_from_pair(field, (out.latent.x_init, out.latent.x_next), grid)
    assert float((replay.x - y).abs().max()) < 1e-10

    def shift(lat: BDIALatent) -> BDIALatent:
        return BDIALatent(lat.x_init + 0.3, lat.x_next + 0.3 * 0.9, lat.cond)

    edited = bdia_edit(field, y, grid, shift, gamma=0.5)
    assert float((edited.x - y).abs().max()) > 1e-2  # the edit changes the output…
    again = BDIA(gamma=0.5).sample_from_pair(field, (edited.edited.x_init, edited.edited.x_next), grid)
    torch.testing.assert_close(edited.x, again.x, rtol=0, atol=0)  # …into exactly the regeneration of the edit


def test_bad_input_is_answered_clearly() -> None:
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    grid = grids.log_snr(5, vp)
    res = BDIA(gamma=0.5).sample(field, _noise(), grid)
    with pytest.raises(ValueError, match="gamma"):
        BDIA(gamma=0.0).invert(field, res.aux["last_pair"], grid)
    with pytest.raises(ValueError, match="gamma"):
        BDIA(gamma=1.5)
    with pytest.raises(ValueError, match="gamma"):
        bdia_edit(field, _noise(), grid, gamma=0.0)
    with pytest.raises(ValueError, match="one shape"):
        BDIA().invert(field, (_noise(4), _noise(5)), grid)
    with pytest.raises(TypeError, match="pair of tensors"):
        BDIA().invert(field, _noise(), grid)
    with pytest.raises(ValueError, match="unknown forward map"):
        BDIA(forward="rk45")
    with pytest.raises(TypeError, match="BDIALatent"):
        bdia_edit(field, _noise(), grid, lambda lat: (lat.x_init, lat.x_next))
    si = StochasticInterpolant("linear", gamma="brownian")
    gmm = GaussianMixture(torch.zeros(1, 2, dtype=F64), 1.0)
    with pytest.raises(ValueError, match="implicit"):
        BDIA().sample(exact_field(si, gmm, gmm, "velocity"), _noise(), grids.uniform(4, t_start=0.1, t_end=0.9))
    assert isinstance(get_sampler("bdia", gamma=1.0), BDIA)
