"""Grid ends: schedules exactly zero at their ends, samplers and grids robust where an end is only zero up to rounding.

Regression tests for a user report on the one-sided trig path: α(1) = cos(π/2) ≈ 6e-17 in float64 gave a finite
λ(1) ≈ 37, so DPM-Solver++'s "infinite final step → first order" rule did not fire and the last multistep step
extrapolated across h ≈ 35 (RMSE 0.9 against 0.017 for Euler at 20 steps); the log-SNR grid spread its steps over
λ ∈ [−6.5, 37]; the cosine VP path had the same defect at t = 0 (β(0) ≈ 6e-17). Oracle: the exact 8-Gaussian field
(:mod:`genlab.analytic`) integrated by a tight float64 dopri5.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from genlab.analytic import exact_field
from genlab.demo import eight_gaussian_mixture
from genlab.interpolants import Interpolant, RectifiedFlow, StochasticInterpolant, VPDiffusion
from genlab.interpolants.schedules import Coeffs, EncoderDecoderSchedule, Schedule, TrigSchedule, VPSchedule
from genlab.samplers import get_sampler, grids
from genlab.samplers.dpm_solver import DPMSolverPP2M, DPMSolverPP2S, DPMSolverPP3M
from genlab.samplers.semilinear import semilinear_grid

F64 = torch.float64
GMM = eight_gaussian_mixture()
N = 128


@pytest.fixture(autouse=True)
def _single_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


class RoundedTrig(Schedule):
    """The trig path evaluated naively, as TrigSchedule did before: α(1) = cos(π/2) ≈ 6e-17 instead of 0."""

    def coeffs(self, t: Tensor) -> Coeffs:
        c, s = torch.cos(math.pi * t / 2), torch.sin(math.pi * t / 2)
        zero = torch.zeros_like(t)
        return Coeffs(c, s, zero, -(math.pi / 2) * s, (math.pi / 2) * c, zero, zero)


class RoundedCosineStart(Schedule):
    """β(t) = cos((1 − t)π/2): β(0) ≈ 6e-17 and, for t < 1e-16, 1 − t rounds to 1, so λ is flat there."""

    def coeffs(self, t: Tensor) -> Coeffs:
        u = (1 - t) * (math.pi / 2)
        zero = torch.zeros_like(t)
        return Coeffs(torch.sin(u), torch.cos(u), zero, -(math.pi / 2) * torch.cos(u), (math.pi / 2) * torch.sin(u),
                      zero, zero)


def _start(interp: Interpolant, grid: Tensor) -> Tensor:
    z = torch.randn(N, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    return z * interp.init_scale(grid[0], z)[:, None]


def _rmse(a: Tensor, b: Tensor) -> float:
    return float((a - b).pow(2).sum(1).mean().sqrt())


def _errors(interp: Interpolant, grid: Tensor, names: list[str]) -> dict[str, float]:
    """Endpoint RMSE of each sampler against dopri5 (float64, rtol = atol = 1e-8) on the same grid ends."""
    field = exact_field(interp, "gaussian", GMM, "velocity")
    x = _start(interp, grid)
    ref = get_sampler("dopri5", rtol=1e-8, atol=1e-8).sample(field, x, grid[[0, -1]]).x
    return {n: _rmse(get_sampler(n).sample(field, x, grid).x, ref) for n in names}


# ---------------------------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_trig_schedule_is_exactly_zero_at_the_data_end(dtype: torch.dtype) -> None:
    for gamma in ("zero", "brownian"):
        c = TrigSchedule(gamma)(torch.tensor([0.0, 1.0], dtype=dtype))
        assert float(c.alpha[1]) == 0.0 and float(c.beta[1]) == 1.0  # float32 cos(π/2) is −4e-8 (negative!)
        assert float(c.alpha[0]) == 1.0 and float(c.beta[0]) == 0.0
    assert float(TrigSchedule("zero")(torch.ones(1, dtype=dtype)).d_beta[0]) == 0.0  # (π/2)·cos(π/2)
    lam = StochasticInterpolant("trig", gamma="zero").semilinear(torch.tensor([0.0, 1.0], dtype=F64),
                                                                   torch.zeros(2)).lam
    assert lam.tolist() == [-math.inf, math.inf]


def test_cosine_vp_schedule_is_exact_at_both_ends_and_accurate_next_to_them() -> None:
    sched = VPSchedule("cosine")
    c = sched(torch.tensor([0.0, 1.0], dtype=F64))
    assert float(c.beta[0]) == 0.0 and float(c.alpha[0]) == 1.0
    assert float(c.alpha[1]) == 0.0 and float(c.beta[1]) == pytest.approx(1.0, abs=1e-15)
    cc = 0.008
    k = math.pi / (2 * (1 + cc))
    assert float(c.d_beta[0]) == pytest.approx(k / math.cos(cc * k), rel=1e-14)  # d/dt cos(u)/cos(u0) at u = π/2
    lam = VPDiffusion("cosine").semilinear(torch.tensor([0.0, 1.0], dtype=F64), torch.zeros(2)).lam
    assert lam.tolist() == [-math.inf, math.inf]
    # α² = 1 − ᾱ next to t = 1 without cancellation: α² ≈ k·s·sin(2kc)/cos²(kc) for s = 1 − t → 0
    s = 1e-10
    alpha = float(sched(torch.tensor([1 - s], dtype=F64)).alpha[0])
    s_exact = 1 - (1 - s)  # the s the float64 time actually carries
    assert alpha**2 == pytest.approx(k * s_exact * math.sin(2 * k * cc) / math.cos(k * cc) ** 2, rel=1e-8)
    t = torch.linspace(0, 1, 1001, dtype=F64)
    c = sched(t)
    torch.testing.assert_close(c.alpha**2 + c.beta**2, torch.ones_like(t), rtol=0, atol=1e-15)


def test_encoder_decoder_midpoint_is_pure_noise_exactly() -> None:
    c = EncoderDecoderSchedule()(torch.tensor([0.5, 1.0], dtype=F64))
    assert c.alpha.tolist()[0] == 0.0 and c.beta.tolist()[0] == 0.0 and c.gamma.tolist()[0] == 1.0
    assert c.d_alpha.tolist() == [0.0, 0.0] and c.d_beta.tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------------------------------- grids
def test_log_snr_and_karras_defaults_pull_rounded_ends_inside() -> None:
    trig = StochasticInterpolant("trig", gamma="zero")
    g = grids.log_snr(10, trig)
    assert (float(g[0]), float(g[-1])) == (1e-3, 1 - 1e-3)  # was [1e-3, 1]: λ ∈ [−6.5, 37], 7 of 10 steps t > 0.999
    lam = trig.semilinear(g, g).lam
    assert float(lam[0]) == pytest.approx(-float(lam[-1]), rel=1e-9)  # symmetric, uniform in λ
    for grid_fn in (grids.log_snr, grids.karras):
        g = grid_fn(10, VPDiffusion("cosine"))
        assert float(g[0]) == 1e-3  # was 0 with λ(0) ≈ −37 (karras even collapsed into repeated times)
        assert bool((g[1:] > g[:-1]).all())
    rounded = Interpolant(RoundedTrig())
    assert math.isfinite(float(rounded.semilinear(torch.ones(1, dtype=F64), torch.zeros(1)).lam[0]))
    assert float(grids.log_snr(10, rounded)[-1]) == 1 - 1e-3  # |λ(1)| ≈ 37 > 30 counts as the data end
    with pytest.raises(ValueError, match="collapses"):
        grids.log_snr(40, rounded, t_end=1.0)  # λ up to 37: several targets land on the same float64 time


# ---------------------------------------------------------------------------------------------- samplers
def test_dpmpp_multistep_on_the_trig_path_with_a_grid_to_one_is_euler_like() -> None:
    errs = _errors(StochasticInterpolant("trig", gamma="zero"), grids.uniform(20),
                   ["euler", "dpmpp_2m", "dpmpp_3m"])
    # measured: euler 0.017, 2m 0.024, 3m 0.029 (before: 2m 0.90, 3m 83)
    assert errs["dpmpp_2m"] < 2 * errs["euler"] and errs["dpmpp_3m"] < 2 * errs["euler"], errs


def test_step_ratio_rule_survives_an_end_that_only_rounds_to_zero() -> None:
    # the sampler-side rule alone (no exact schedule): λ(1) ≈ 37 is finite, but h/h₁ ≈ 100 makes the step first order
    rounded = Interpolant(RoundedTrig())
    grid = grids.uniform(20)
    assert DPMSolverPP2M().step_orders(semilinear_grid(rounded, grid))[-1] == 1
    errs = _errors(rounded, grid, ["euler", "dpmpp_2m"])
    assert errs["dpmpp_2m"] < 2 * errs["euler"], errs  # was 0.90 vs 0.017


def test_step_ratio_rule_on_a_uniform_grid_ending_before_the_data_end() -> None:
    rf = RectifiedFlow()
    grid = grids.uniform(20, t_end=0.999)  # last λ-step ≈ 4.0 after ≈ 0.74: ratio 5.4
    tab = semilinear_grid(rf, grid)
    assert DPMSolverPP2M().step_orders(tab)[-2:] == [2, 1]
    assert DPMSolverPP3M().step_orders(tab)[-2:] == [3, 1]
    errs = _errors(rf, grid, ["euler", "dpmpp_2m"])
    assert errs["dpmpp_2m"] < 0.5 * errs["euler"], errs  # measured 0.009 vs 0.048 (before: 0.065, worse than Euler)
    # grids with moderate ratios keep every order (log-SNR: ratio 1; Karras: ≤ 1.5 from 10 steps)
    vp = VPDiffusion()
    assert DPMSolverPP3M(lower_order_final=False).step_orders(semilinear_grid(vp, grids.log_snr(8, vp))) == \
        [1, 2, 3, 3, 3, 3, 3, 3]
    assert DPMSolverPP2M().step_orders(semilinear_grid(vp, grids.karras(20, vp)))[1:] == [2] * 19


def test_grid_from_t0_needs_no_special_start() -> None:
    # λ(0) = −∞ exactly on RF and (now) cosine VP: the first step is exact from pure noise and the second does not
    # difference against it, so starting at t = 0 or 1e-3 gives the same accuracy
    for interp in (RectifiedFlow(), VPDiffusion("cosine")):
        assert DPMSolverPP2M().step_orders(semilinear_grid(interp, grids.uniform(20)))[:3] == [1, 1, 2]
    errs0 = _errors(VPDiffusion("cosine"), grids.uniform(10, t_end=0.999), ["dpmpp_2m"])["dpmpp_2m"]
    errs1 = _errors(VPDiffusion("cosine"), grids.uniform(10, t_start=1e-3, t_end=0.999), ["dpmpp_2m"])["dpmpp_2m"]
    assert errs0 == pytest.approx(errs1, rel=0.05)
    # ε-form samplers cannot start where β = 0: a clear error instead of ρ(0) ≈ 1.6e16 and a 1e22 result
    field = exact_field(VPDiffusion("cosine"), "gaussian", GMM, "velocity")
    with pytest.raises(ValueError, match="ρ = noise/data finite"):
        get_sampler("deis_tab").sample(field, _start(VPDiffusion("cosine"), grids.uniform(4)), grids.uniform(4))


def test_dpmpp_2s_rejects_a_step_whose_lambda_it_cannot_resolve() -> None:
    # λ is flat on t < 1e-16 (1 − t rounds to 1): no time has the midpoint λ, which was a ZeroDivisionError
    interp = Interpolant(RoundedCosineStart())
    field = exact_field(interp, "gaussian", GMM, "x1")
    grid = torch.tensor([0.0, 1e-16, 0.5, 0.9], dtype=F64)
    with pytest.raises(ValueError, match="λ"):
        DPMSolverPP2S().sample(field, torch.randn(4, 2, dtype=F64), grid)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_vp_velocity_at_the_data_end(kind):
    """αα̇ is finite at t = 1 on VP paths (α̇ = −∞ there): a score field gives a finite velocity at t = 1, while an
    ε/x1 field does not determine it there (the score term's coefficient survives, ε̂'s vanishes) and says so."""
    from genlab.analytic import GaussianMixture
    from genlab.interpolants import VPDiffusion

    interp = VPDiffusion(kind)
    c = interp.schedule.coeffs(torch.tensor([1.0], dtype=torch.float64))
    assert torch.isfinite(c.alpha_dalpha_finite).all() and float(c.alpha_dalpha_finite) == pytest.approx(
        -float(c.beta * c.d_beta), abs=1e-12)
    assert not torch.isfinite(c.alpha * c.d_alpha).all()  # the naive product is 0·∞
    target = GaussianMixture(torch.tensor([[0.5, -1.0]], dtype=torch.float64), 0.3)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    v = exact_field(interp, "gaussian", target, "score").predict(x, 1.0, "velocity")
    # at t = 1, x_t = x1: b = β̇x − αα̇·s with s the data score
    expected = float(c.d_beta) * x - float(c.alpha_dalpha_finite) * target.score(x)
    torch.testing.assert_close(v, expected, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="singular"):
        exact_field(interp, "gaussian", target, "noise").predict(x, 1.0, "velocity")
