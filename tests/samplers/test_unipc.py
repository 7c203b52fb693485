"""UniPC (Zhao et al. NeurIPS'23): parity with diffusers' UniPCMultistepScheduler, UniP-2 = DPM-Solver++(2M), the
corrector's order gain on the closed-form Gaussian oracle (VP and a DDBM bridge), point-mass exactness, bad input."""

from __future__ import annotations

import pytest
import torch
from semilinear_oracle import assert_order, endpoint_errors, flow_map, gaussian_field

from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants import DiffusionBridge, Interpolant, RectifiedFlow, VPDiffusion
from genlab.interpolants.discrete import DiscreteVPSchedule
from genlab.samplers import get_sampler, grids
from genlab.samplers.dpm_solver import DPMSolverPP2M, dpmpp_table
from genlab.samplers.unipc import UniPC, unipc_table

F64 = torch.float64
M, S = [0.7, -1.2], [0.3, 1.5]
STEPS = (16, 32, 64, 128)


def _noise(n: int = 8, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------------------------------------- diffusers parity
def _diffusers_run(order: int, variant: str, *, float64: bool, final: str, steps: int = 10):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.UniPCMultistepScheduler(solver_order=order, solver_type=variant, prediction_type="epsilon",
                                              final_sigmas_type=final)
    sched.set_timesteps(steps)
    if float64:  # the scheduler's own float32 σ's, but its arithmetic in float64
        sched.sigmas = sched.sigmas.double()
    ac = sched.alphas_cumprod
    schedule = DiscreteVPSchedule.from_sigmas((((1 - ac) / ac) ** 0.5).double())  # the scheduler's σ's
    path = Interpolant(schedule)
    gmm = GaussianMixture(torch.tensor([[1.0, -0.5], [-1.0, 0.8]], dtype=F64), torch.tensor([0.1, 0.2], dtype=F64))
    eps_model = exact_field(path, "gaussian", gmm, "noise")
    ts = schedule.timestep_to_t(sched.timesteps.double())
    x0 = _noise(32, 11, F64 if float64 else torch.float32)
    x = x0.clone()
    for n, t in zip(sched.timesteps, ts):
        x = sched.step(eps_model(x, t), n, x).prev_sample
    # final σ = 0 is genlab t = 1; "sigma_min" is the first training timestep
    last = torch.ones(1, dtype=F64) if final == "zero" else schedule.timestep_to_t(torch.zeros(1, dtype=F64))
    ours = UniPC(order=order, variant=variant).sample(eps_model, x0, torch.cat([ts, last]))
    assert ours.nfe == steps
    return float((ours.x - x).abs().max() / x.abs().max())


@pytest.mark.parametrize("order", [1, 2, 3])
def test_parity_with_diffusers_unipc_in_float64(order: int) -> None:
    # measured 4e-16 … 1.2e-15 (bh2, final σ = 0) and 6e-16 … 9e-16 (bh1, final σ_min)
    assert _diffusers_run(order, "bh2", float64=True, final="zero") < 1e-12
    # diffusers' bh1 with a final σ = 0 returns NaN (−α·B(h)·0 with B(h) = h = −∞ on that step); genlab's last step
    # is first order there and finite, so bh1 is compared on the grid that ends at σ_min
    assert _diffusers_run(order, "bh1", float64=True, final="sigma_min") < 1e-12


def test_parity_with_stock_diffusers_unipc_in_float32() -> None:
    # stock scheduler: float32 σ's and arithmetic (measured 4e-7 … 1e-6 relative)
    assert _diffusers_run(2, "bh2", float64=False, final="zero") < 5e-6


# ---------------------------------------------------------------------------------------------- analytic checks
def test_unip2_with_bh2_is_dpm_solver_pp_2m() -> None:
    """UniP-2 with B(h) = e^h − 1 and a = ½ is DPM-Solver++(2M) (midpoint) exactly: −B(h)·½·D1/r1 = φ1·(h/2h1)·D1."""
    for interp, grid in ((VPDiffusion(), grids.log_snr(9, VPDiffusion())),
                         (RectifiedFlow(), grids.uniform(7, t_start=0.05, t_end=0.97))):
        ours = unipc_table(interp, grid, order=2, corrector=False, lower_order_final=True, max_step_ratio=2.0)
        ref = dpmpp_table(interp, grid, order=2, lower_order_final=True)
        for a, b in zip(ours.weights, ref.weights):
            torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-13, atol=1e-15)
        assert ours.ratio == ref.ratio


def _vp_errors(sampler) -> list[float]:
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    z = _noise()
    return endpoint_errors(sampler, field, lambda n: grids.log_snr(n, vp), lambda g: z * vp.init_scale(g[0], z)[:, None],
                           lambda x, g: flow_map(vp, x, float(g[0]), float(g[-1]), M, S), STEPS)


@pytest.mark.parametrize(("opts", "p"), [({"order": 1}, 2.0), ({"order": 2}, 3.0), ({"order": 2, "variant": "bh1"}, 3.0),
                                         ({"order": 2, "corrector": False}, 2.0)],
                         ids=["unipc1", "unipc2-bh2", "unipc2-bh1", "unip2-no-corrector"])
def test_the_corrector_raises_the_order_by_one(opts: dict, p: float) -> None:
    # measured last-pair slopes on the VP log-SNR grid: UniPC-1 1.99, UniPC-2 2.99 (bh2) / 3.05 (bh1), UniP-2 1.99
    assert_order(_vp_errors(UniPC(**opts)), p - 0.3, p + 1.0)


def test_order_on_a_ddbm_bridge_keeps_the_known_source_term() -> None:
    br = DiffusionBridge("vp")
    k = 0.5
    field = gaussian_field(br, M, S, k=k)
    x_src, z = _noise(8, 5), _noise(8, 6)

    def make_x(g: torch.Tensor) -> torch.Tensor:
        c = br.schedule.coeffs(g[:1])
        return c.alpha * x_src + c.beta * (torch.tensor(M, dtype=F64) + k * x_src) + c.gamma * z

    errs = endpoint_errors(UniPC(order=1), field, lambda n: grids.log_snr(n, br), make_x,
                           lambda x, g: flow_map(br, x, float(g[0]), float(g[-1]), M, S, k=k, x0=x_src), STEPS,
                           cond=x_src)
    assert_order(errs, 1.7, 3.0)  # UniPC-1 (order 2) with the known-source term; dropping it breaks convergence


def test_point_mass_data_is_integrated_exactly() -> None:
    for interp, kind in ((VPDiffusion(), "noise"), (RectifiedFlow(), "velocity")):
        field = gaussian_field(interp, M, 0.0, kind=kind)
        grid = grids.log_snr(5, interp)
        x = _noise(6, 3) * interp.init_scale(grid[0], _noise(6, 3))[:, None]
        res = UniPC(order=3).sample(field, x, grid)
        torch.testing.assert_close(res.x, flow_map(interp, x, float(grid[0]), float(grid[-1]), M, 0.0),
                                   rtol=1e-10, atol=1e-10)


def test_registered_defaults_and_bad_input() -> None:
    smp = get_sampler("unipc")
    assert isinstance(smp, UniPC) and smp.order == 2 and smp.variant == "bh2" and smp.default_grid == "log_snr"
    assert isinstance(get_sampler("uni_pc"), UniPC)
    with pytest.raises(ValueError, match="order"):
        UniPC(order=4)
    with pytest.raises(ValueError, match="variant"):
        UniPC(variant="bh3")
    with pytest.raises(TypeError, match="disable_corrector"):
        UniPC(disable_corrector="1")
    with pytest.raises(TypeError, match="lower_order_final"):
        UniPC(lower_order_final=None)  # type: ignore[arg-type]
    vp = VPDiffusion()
    with pytest.raises(ValueError, match="noise coefficient"):  # cannot step from the data end
        UniPC().sample(gaussian_field(vp, M, S), _noise(), grids.uniform(4, t_start=0.5, t_end=1.0).flip(0))
    # disabling the corrector on every step is UniP alone
    field = gaussian_field(vp, M, S)
    grid = grids.log_snr(6, vp)
    a = UniPC(disable_corrector=range(6)).sample(field, _noise(), grid).x
    b = UniPC(corrector=False).sample(field, _noise(), grid).x
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, UniPC().sample(field, _noise(), grid).x)
    assert DPMSolverPP2M  # imported for the UniP-2 identity above
