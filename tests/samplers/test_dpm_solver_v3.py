"""DPM-Solver-v3 (Zheng et al. NeurIPS'23): with the statistics of an exact Gaussian model one first-order step is the
closed-form flow map (up to the quadrature of the statistics grid, O(Δλ²)); the estimated statistics equal the exact
ones; degenerated statistics (l = 1, s = b = 0) give data-form DPM-Solver++; caching (memory and file); bad input."""

from __future__ import annotations

import pytest
import torch
from semilinear_oracle import assert_order, endpoint_errors, flow_map, gaussian_field

import genlab
from genlab.interpolants import RectifiedFlow, StochasticInterpolant, VPDiffusion
from genlab.samplers import get_sampler, grids
from genlab.samplers.dpm_solver import DPMSolverPPMultistep
from genlab.samplers.dpm_solver_v3 import (
    EMS,
    DPMSolverV3,
    clear_statistics_cache,
    compute_statistics,
    gaussian_statistics,
)

F64 = torch.float64
M, S = [0.7, -1.2], [0.3, 1.5]


def _start(interp, grid: torch.Tensor, n: int = 8, seed: int = 0) -> torch.Tensor:
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return z * interp.init_scale(grid[0], z)[:, None]


def _exact(interp, grid: torch.Tensor, stat_steps: int) -> EMS:
    return gaussian_statistics(interp, torch.tensor(M, dtype=F64), torch.tensor(S, dtype=F64),
                               t_start=float(grid[0]), t_end=float(grid[-1]), stat_steps=stat_steps)


@pytest.mark.parametrize(("interp", "kind"), [(VPDiffusion(), "noise"), (RectifiedFlow(), "velocity")],
                         ids=["vp", "rf"])
def test_exact_gaussian_statistics_reduce_one_step_to_the_closed_form(interp, kind) -> None:
    """g is constant for a Gaussian model, so ONE step over the whole λ range is the exact flow map; the residual is
    the quadrature of the statistics grid and falls like (Δλ)²."""
    field = gaussian_field(interp, M, S, kind=kind)
    grid = grids.log_snr(1, interp)  # a single step from noise to data
    x = _start(interp, grid)
    ref = flow_map(interp, x, float(grid[0]), float(grid[-1]), M, S)
    errs = []
    for k in (50, 100, 200):
        res = DPMSolverV3(order=1, statistics=_exact(interp, grid, k)).sample(field, x, grid)
        assert res.nfe == 1
        errs.append(float((res.x - ref).abs().max()))
    # measured VP 2.9e-5 / 2.1e-6 / 5.2e-7, RF 1.1e-5 / 1.1e-7 / 2.8e-8; DPM-Solver++ needs ~100 steps for that
    assert errs[-1] < 1e-6, errs
    assert errs[1] < errs[0] / 3 and errs[2] < errs[1] / 3, errs
    one_step_ddim = DPMSolverPPMultistep(order=1).sample(field, x, grid).x
    assert float((one_step_ddim - ref).abs().max()) > 1e4 * errs[-1]  # the statistics carry the whole gain


def test_estimated_statistics_equal_the_exact_ones_on_a_gaussian_model() -> None:
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    grid = grids.log_snr(4, vp)
    est = compute_statistics(field, (2,), t_start=float(grid[0]), t_end=float(grid[-1]), stat_steps=100,
                             n_samples=32)
    exact = _exact(vp, grid, 100)
    torch.testing.assert_close(est.lam, exact.lam)
    assert float((est.l - exact.l).abs().max()) < 1e-9  # Rademacher probe of a diagonal Jacobian: exact (6.8e-12)
    assert float(est.s.abs().max()) == 0.0  # f is deterministic for a Gaussian model: no slope
    # b = f' by central differences along the trajectory: O(Δλ²) (measured 1.8e-3 at Δλ = 0.12)
    assert float((est.b - exact.b).abs().max()) < 1e-2


@pytest.mark.parametrize("order", [1, 2, 3])
def test_degenerated_statistics_give_data_form_dpm_solver_pp(order: int) -> None:
    """l = 1, s = b = 0: f = −x̂1 and the v3 update is the Taylor-form data multistep (DPM-Solver++ 'heun', 3M)."""
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    grid = grids.log_snr(8, vp)
    x = _start(vp, grid)
    ems = _exact(vp, grid, 100).degenerated()
    v3 = DPMSolverV3(order=order, statistics=ems, corrector=False, refine=64).sample(field, x, grid).x
    pp = DPMSolverPPMultistep(order=order, solver_type="heun", lower_order_final=True).sample(field, x, grid).x
    assert float((v3 - pp).abs().max()) < 2e-5  # trapezoid quadrature of e^λ (measured 1.5e-6 … 4e-6)


@pytest.mark.parametrize(("opts", "lo", "hi"), [({"order": 1, "corrector": False}, 0.7, 1.5),
                                                ({"order": 1, "corrector_pseudo": True}, 1.7, 2.6),
                                                ({"order": 3, "corrector": False}, 2.7, 4.6),
                                                ({"order": 3}, 2.7, 4.8)],
                         ids=["p1", "p1+pseudo-corrector", "p3", "p3+corrector"])
def test_orders_of_the_predictor_and_corrector(opts: dict, lo: float, hi: float) -> None:
    """Degenerated statistics (any statistics give the same orders; these make the oracle smooth in λ): the corrector
    raises order 1 to 2, the Taylor-system predictor of order 3 is third order or better (measured last-pair slopes
    0.97, 2.01, 4.04, 4.17 on the VP log-SNR grid; a pseudo-order corrector after order ≥ 2 stays near order 2)."""
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    g0 = grids.log_snr(4, vp)
    ems = _exact(vp, g0, 400).degenerated()
    z = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    errs = endpoint_errors(DPMSolverV3(statistics=ems, refine=16, lower_order_final=False, **opts), field,
                           lambda n: grids.log_snr(n, vp), lambda g: z * vp.init_scale(g[0], z)[:, None],
                           lambda x, g: flow_map(vp, x, float(g[0]), float(g[-1]), M, S), (16, 32, 64))
    assert_order(errs, lo, hi)


def test_estimated_statistics_beat_dpm_solver_pp_on_a_gaussian_at_8_steps() -> None:
    clear_statistics_cache()
    rf = RectifiedFlow()
    field = gaussian_field(rf, M, S, kind="velocity")
    grid = grids.log_snr(8, rf)
    x = _start(rf, grid)
    ref = flow_map(rf, x, float(grid[0]), float(grid[-1]), M, S)
    first = DPMSolverV3(n_samples=64).sample(field, x, grid)
    assert first.aux["statistics_nfe"] == 3 * 101 and first.nfe == 8 + 3 * 101
    again = DPMSolverV3(n_samples=64).sample(field, x, grid)  # cached per network
    assert again.aux["statistics_nfe"] == 0 and again.nfe == 8
    torch.testing.assert_close(again.x, first.x, rtol=0, atol=0)
    e_v3 = float((again.x - ref).abs().max())
    e_pp = float((get_sampler("dpmpp_2m").sample(field, x, grid).x - ref).abs().max())
    assert e_v3 < e_pp / 5, (e_v3, e_pp)  # measured 2.6e-3 vs 2.8e-2


def test_statistics_file_round_trip(tmp_path) -> None:
    clear_statistics_cache()
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    path = tmp_path / "ems.pt"
    res = genlab.sample(field, sampler="dpm_solver_v3", steps=5, n=4, shape=(2,), seed=0, dtype=F64,
                        statistics_path=path, n_samples=16, stat_steps=20)
    assert path.exists() and res.aux["statistics_nfe"] == 63
    clear_statistics_cache()
    again = genlab.sample(field, sampler="dpm_solver_v3", steps=5, n=4, shape=(2,), seed=0, dtype=F64,
                          statistics_path=path, n_samples=16, stat_steps=20)
    assert again.aux["statistics_nfe"] == 0  # loaded from the file
    torch.testing.assert_close(again.x, res.x, rtol=0, atol=0)
    loaded = EMS.from_dict(torch.load(path, weights_only=True))
    assert loaded.shape == (2,) and loaded.meta["n_samples"] == 16


def test_bad_input_is_answered_clearly() -> None:
    with pytest.raises(ValueError, match="order"):
        DPMSolverV3(order=4)
    with pytest.raises(TypeError, match="statistics"):
        DPMSolverV3(statistics={"l": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stat_steps"):
        DPMSolverV3(stat_steps=2)
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    grid = grids.log_snr(4, vp)
    with pytest.raises(ValueError, match="shape"):
        DPMSolverV3(statistics=gaussian_statistics(vp, torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64),
                                                   t_start=float(grid[0]), t_end=float(grid[-1]))).sample(
            field, _start(vp, grid), grid)
    with pytest.raises(ValueError, match="statistics only"):
        DPMSolverV3(statistics=_exact(vp, grids.log_snr(4, vp, t_end=0.9), 20)).sample(field, _start(vp, grid), grid)
    with pytest.raises(ValueError, match="finite log-SNR"):
        DPMSolverV3().sample(field, _start(vp, grid), grids.uniform(4))
    with pytest.raises(ValueError, match="increase"):
        DPMSolverV3().sample(field, _start(vp, grid), grid.flip(0))
    si = StochasticInterpolant("linear", gamma="brownian")
    with pytest.raises(ValueError, match="semilinear"):
        get_sampler("dpm_solver_v3").check(genlab.Field(torch.nn.Identity(), si, "velocity"))
