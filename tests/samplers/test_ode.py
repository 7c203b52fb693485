"""ODE samplers against the closed-form Gaussian flow map (``reference/samplers.md`` §0, §9).

Orders: errors at N ∈ {16, 32, 64, 128}; the log2 ratio of the last pair must lie in [p − 0.3, p + 1.2].
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from gaussian_oracle import gaussian_field, gaussian_flow_map

from genlab.interpolants import RectifiedFlow, VEDiffusion, VPDiffusion
from genlab.samplers import DDIM, Dopri5, Euler, get_sampler, log_snr, uniform

F64 = torch.float64
M = torch.tensor([1.0, -0.5, 0.3], dtype=F64)
S = torch.tensor([0.5, 0.8, 0.2], dtype=F64)
NS = (16, 32, 64, 128)


@pytest.fixture(autouse=True)
def _single_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _noise(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _vp_setup():
    vp = VPDiffusion()
    return vp, gaussian_field(vp, M, S), lambda n: log_snr(n, vp)


def _rf_setup():
    rf = RectifiedFlow()
    return rf, gaussian_field(rf, M, S, kind="velocity"), lambda n: uniform(n)


def _errors(sampler, interp, field, grid_fn) -> list[float]:
    errs = []
    for n in NS:
        grid = grid_fn(n)
        x_init = _noise() * float(interp.schedule.coeffs(grid[:1]).alpha)
        res = sampler.sample(field, x_init, grid)
        ref = gaussian_flow_map(interp, M, S, x_init, float(grid[0]), float(grid[-1]))
        errs.append(float((res.x - ref).abs().max()))
    return errs


def _order(errs: list[float]) -> float:
    return math.log2(errs[-2] / errs[-1])


@pytest.mark.parametrize("path", ["vp", "rf"])
@pytest.mark.parametrize(("name", "p"), [("euler", 1), ("heun", 2), ("midpoint", 2), ("rk4", 4), ("ddim", 1)])
def test_convergence_order(path, name, p):
    interp, field, grid_fn = _vp_setup() if path == "vp" else _rf_setup()
    errs = _errors(get_sampler(name), interp, field, grid_fn)
    assert all(e1 > e2 for e1, e2 in itertools.pairwise(errs)), errs
    assert p - 0.3 <= _order(errs) <= p + 1.2, (name, path, errs)


def test_ddim_on_rectified_flow_is_euler():
    rf, field, _ = _rf_setup()
    grid = uniform(13)
    x = _noise()
    a = DDIM().sample(field, x, grid).x
    b = Euler().sample(field, x, grid).x
    assert float((a - b).abs().max()) < 1e-12
    # and it is not the exact map (so the comparison above is not vacuous)
    assert float((a - gaussian_flow_map(rf, M, S, x, 0.0, 1.0)).abs().max()) > 1e-3


@pytest.mark.parametrize("n", [1, 3, 7])
def test_ddim_exact_for_point_mass(n):
    """x1 ≡ m: x̂1 = m for every x_t and DDIM(0) is the exact PF-ODE map for any N (VP and VE)."""
    for interp in (VPDiffusion(), VEDiffusion()):
        field = gaussian_field(interp, M, 0.0)
        grid = log_snr(n, interp)
        x = _noise() * float(interp.schedule.coeffs(grid[:1]).alpha)
        out = DDIM().sample(field, x, grid).x
        ref = gaussian_flow_map(interp, M, 0.0, x, float(grid[0]), float(grid[-1]))
        assert float((out - ref).abs().max()) < 1e-10 * max(1.0, float(x.abs().max()))
        # Euler is not exact on this problem: the check has teeth
        if n == 3:
            eul = Euler().sample(field, x, grid).x
            assert float((eul - ref).abs().max()) > 1e-3


def test_dopri5_reference_accuracy_and_nfe():
    vp, field, grid_fn = _vp_setup()
    grid = grid_fn(4)
    x = _noise()
    res = Dopri5(rtol=1e-10, atol=1e-10).sample(field, x, grid)
    ref = gaussian_flow_map(vp, M, S, x, float(grid[0]), float(grid[-1]))
    assert float((res.x - ref).abs().max()) < 1e-8
    assert res.nfe == field.net.calls > 50  # counted by the wrapper, equal to the network's own count
    assert Dopri5().expected_nfe(10) is None
    # looser default tolerance: fewer evaluations, still accurate
    loose = Dopri5().sample(field, x, grid)
    assert loose.nfe < res.nfe and float((loose.x - ref).abs().max()) < 1e-3


@pytest.mark.parametrize(("method", "tol", "err"), [("dopri5", 1e-9, 1e-6), ("dopri8", 1e-9, 1e-6),
                                                    ("bosh3", 1e-7, 1e-5), ("adaptive_heun", 1e-5, 1e-3)])
def test_dopri5_methods_and_encoding_round_trip(method, tol, err):
    rf, field, _ = _rf_setup()
    x = _noise()
    grid = uniform(5)
    gen = Dopri5(rtol=tol, atol=tol, method=method).sample(field, x, grid, return_trajectory=True)
    assert len(gen.trajectory) == 6 and torch.equal(gen.trajectory[0], x)
    assert torch.equal(gen.grid, grid)
    for k, t in enumerate(grid.tolist()):
        assert float((gen.trajectory[k] - gaussian_flow_map(rf, M, S, x, 0.0, t)).abs().max()) < err
    enc = Dopri5(rtol=tol, atol=tol, method=method).sample(field, gen.x, grid.flip(0))
    assert float((enc.x - x).abs().max()) < err


def test_dopri5_float32_keeps_dtype_and_stays_in_range():
    _, field, grid_fn = _vp_setup()
    x = _noise().float()
    res = Dopri5().sample(field, x, grid_fn(3))
    assert res.x.dtype == torch.float32 and torch.isfinite(res.x).all()


def test_dopri5_bad_options():
    with pytest.raises(ValueError, match="method"):
        Dopri5(method="rk45")
    with pytest.raises(ValueError, match="rtol"):
        Dopri5(rtol=0.0)
