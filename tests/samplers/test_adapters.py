"""Adapters to diffusers and k-diffusion: parity with the peers' own loops, exact conversions, loaded UNets.

Analytic model: the exact Gaussian-mixture ε-field on the discrete VP path of diffusers' default DDPM schedule, so
"the scheduler's own loop with the raw ε-model" and "the adapter on the genlab field" compute the same thing and
must agree up to diffusers' float32 internals. Endpoints are checked against the closed-form Gaussian flow map.
"""

from __future__ import annotations

import math

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants import DiffusionBridge, Interpolant, RectifiedFlow, VPDiffusion
from genlab.interpolants.discrete import DiscreteVPSchedule
from genlab.samplers import get_sampler, log_snr, uniform
from genlab.samplers.adapters import (
    DiffusersSampler,
    KDiffusionSampler,
    load_diffusers_field,
    time_at_log_snr,
)
from genlab.samplers.implicit import DDIM

F64 = torch.float64
VE_STATE = ("EulerDiscreteScheduler", "HeunDiscreteScheduler")


@pytest.fixture(autouse=True)
def _single_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def ddpm_path() -> Interpolant:
    return Interpolant(DiscreteVPSchedule(diffusers.DDPMScheduler().alphas_cumprod))


@pytest.fixture(scope="module")
def gmm() -> GaussianMixture:
    means = torch.tensor([[1.2, 0.4], [-0.8, -0.9], [0.1, 1.3]], dtype=F64)
    return GaussianMixture(means, torch.tensor([0.08, 0.15, 0.05], dtype=F64))


def _noise(n: int = 16, d: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _own_loop(cls_name: str, steps: int, eps: torch.Tensor, eps_model, **config) -> tuple[torch.Tensor, object]:
    """diffusers' canonical loop; ``eps_model(x, timestep, sigma_state)`` gets the scheduler's state σ too."""
    sched = getattr(diffusers, cls_name)(**config)
    sched.set_timesteps(steps)
    x = eps * sched.init_noise_sigma
    for i, ts in enumerate(sched.timesteps):
        model_in = sched.scale_model_input(x, ts)
        idx = getattr(sched, "step_index", None)
        idx = i if idx is None else idx
        sigma = float(sched.sigmas[idx]) if hasattr(sched, "sigmas") else None
        x = sched.step(eps_model(model_in, ts, sigma), ts, x).prev_sample
    return x, sched


def _raw_eps(path: Interpolant, field, noise_level: str):
    """The raw analytic ε-model a diffusers user would write: timestep n → t(n), or state σ → t(σ)."""
    sched = path.schedule

    def model(x, timestep, sigma):
        if noise_level == "timestep" or sigma is None:
            t = sched.timestep_to_t(torch.tensor([float(timestep)], dtype=F64))
        else:
            t = sched.snr_inverse(torch.tensor([-2 * math.log(sigma)], dtype=F64))
        return field(x, t.expand(x.shape[0]))

    return model


# ------------------------------------------------------------------------------------------------ level matching
@pytest.mark.parametrize("make", [VPDiffusion, RectifiedFlow, lambda: Interpolant(
    DiscreteVPSchedule(diffusers.DDPMScheduler().alphas_cumprod))])
def test_time_at_log_snr_inverts_the_path(make):
    path = make()
    t = torch.tensor([0.05, 0.3, 0.62, 0.97], dtype=F64)
    lam = path.semilinear(t, t).lam
    t_hat, clamped = time_at_log_snr(path, lam)
    assert not bool(clamped.any())
    assert torch.allclose(path.semilinear(t_hat, t_hat).lam, lam, rtol=1e-10, atol=1e-10)
    assert float(time_at_log_snr(path, math.inf)[0]) == 1.0  # ᾱ = 1 is clean data at t = 1


def test_time_at_log_snr_out_of_range_raises_or_clamps():
    vp = VPDiffusion()  # σ_max = e^{5.02} ≈ 151 at t = 0, below DDPM's 157
    lam = -math.log(157.0)
    with pytest.raises(ValueError, match="out_of_range='clamp'"):
        time_at_log_snr(vp, lam)
    t, clamped = time_at_log_snr(vp, lam, out_of_range="clamp")
    assert float(t[0]) == 0.0 and bool(clamped[0])


# ------------------------------------------------------------------------------------------------ scheduler parity
@pytest.mark.parametrize("noise_level", ["scheduler", "timestep"])
@pytest.mark.parametrize("cls_name", ["DDIMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler",
                                      "HeunDiscreteScheduler", "DEISMultistepScheduler"])
def test_adapter_equals_the_schedulers_own_loop(cls_name, noise_level, ddpm_path, gmm):
    field = exact_field(ddpm_path, "gaussian", gmm, "noise")
    config = {"beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"}
    if cls_name == "DDIMScheduler":
        config["clip_sample"] = False
    eps = _noise()
    steps = 6
    x_init = eps * ddpm_path.init_scale(0.0, eps)[:, None]
    smp = DiffusersSampler(cls_name, noise_level=noise_level, **config)
    res = smp.sample(field, x_init, uniform(steps))
    ref, sched = _own_loop(cls_name, steps, eps, _raw_eps(ddpm_path, field, noise_level), **config)
    abar_end = float(res.aux["alphas_cumprod"][-1])
    ref_genlab = ref * math.sqrt(abar_end) if cls_name in VE_STATE else ref  # VE state x1 + σε → VP state
    assert torch.allclose(res.x, ref_genlab, atol=2e-6, rtol=0), float((res.x - ref_genlab).abs().max())
    assert res.nfe == len(sched.timesteps) == smp.expected_nfe(steps)
    assert torch.equal(res.aux["timesteps"], sched.timesteps.cpu())
    assert res.nfe == (2 * steps - 1 if cls_name == "HeunDiscreteScheduler" else steps)
    # the genlab times of the visited levels: start at the scheduler's first level, end at its final one
    first_lam = 0.5 * math.log(float(res.aux["alphas_cumprod"][0]) / (1 - float(res.aux["alphas_cumprod"][0])))
    assert math.isclose(float(ddpm_path.semilinear(res.grid[:1], res.grid[:1]).lam), first_lam, rel_tol=1e-6)  # float32 σ table
    expected_end = 1 - 1 / 1000 if cls_name == "DEISMultistepScheduler" else 1.0  # DEIS stops at σ_min (n = 0)
    assert math.isclose(float(res.grid[-1]), expected_end, abs_tol=1e-7)


@pytest.mark.parametrize("ptype", ["sample", "v_prediction"])
def test_prediction_types_are_converted_exactly(ptype, ddpm_path, gmm):
    field = exact_field(ddpm_path, "gaussian", gmm, "noise")
    eps = _noise()
    x_init = eps * ddpm_path.init_scale(0.0, eps)[:, None]
    base = DiffusersSampler("DDIMScheduler", clip_sample=False).sample(field, x_init, uniform(5))
    other = DiffusersSampler("DDIMScheduler", clip_sample=False, prediction_type=ptype).sample(field, x_init,
                                                                                              uniform(5))
    assert torch.allclose(base.x, other.x, atol=1e-5, rtol=0)
    # a wrong conversion (e.g. handing ε̂ to a v-scheduler) is far off
    wrong = DiffusersSampler("DDIMScheduler", clip_sample=False, prediction_type=ptype)
    wrong.prediction_type = "epsilon"
    smp = DiffusersSampler("DDIMScheduler", clip_sample=False, prediction_type=ptype)
    smp._model_output = wrong._model_output  # type: ignore[method-assign]
    assert float((smp.sample(field, x_init, uniform(5)).x - base.x).abs().max()) > 1e-2


@pytest.mark.parametrize("cls_name,steps,tol", [("DPMSolverMultistepScheduler", 50, 2e-3),
                                                ("HeunDiscreteScheduler", 100, 2e-3)])
def test_endpoint_matches_the_closed_form_flow_on_a_rescaled_path(cls_name, steps, tol):
    """On rectified flow (k(t) = √(α² + β²) ≠ 1 and bisection for t) the endpoint is the exact PF-ODE map."""
    m = torch.tensor([0.7, -0.4], dtype=F64)
    s2 = 0.25
    rf = RectifiedFlow()
    field = exact_field(rf, "gaussian", GaussianMixture(m[None], torch.tensor([s2], dtype=F64)), "velocity")
    eps = _noise(32)
    res = DiffusersSampler(cls_name, beta_start=1e-4, beta_end=0.02).sample(field, eps, uniform(steps))
    # VE invariant (x̃ − m)/√(s² + σ²) along the PF-ODE; x̃ = x/β; start from the scheduler's own initial state
    abar0 = float(res.aux["alphas_cumprod"][0])
    sigma0 = math.sqrt((1 - abar0) / abar0)
    sched = getattr(diffusers, cls_name)(beta_start=1e-4, beta_end=0.02)
    sched.set_timesteps(steps)
    x_state = eps * float(sched.init_noise_sigma)
    x_ve = x_state if cls_name in VE_STATE else x_state / math.sqrt(abar0)
    exact = m + math.sqrt(s2) * (x_ve - m) / math.sqrt(s2 + sigma0**2)
    beta0 = float(rf.schedule.coeffs(res.grid[:1]).beta[0])
    assert torch.allclose(res.aux["x_start"] / beta0, x_ve, rtol=1e-10, atol=0)  # reported start state, VE units
    assert float(res.grid[-1]) == 1.0
    err = float((res.x - exact).abs().max())
    assert err < tol, err
    assert err > 1e-9  # a discretisation, not the oracle itself


def test_fresh_scheduler_per_call_and_template_untouched(ddpm_path, gmm):
    field = exact_field(ddpm_path, "gaussian", gmm, "noise")
    template = diffusers.DPMSolverMultistepScheduler(solver_order=3)
    smp = get_sampler("diffusers:DPMSolverMultistepScheduler", solver_order=3)
    from_template = DiffusersSampler(template)
    eps = _noise()
    a = smp.sample(field, eps, uniform(7))
    b = smp.sample(field, eps, uniform(7))  # a reused stateful scheduler would continue from step 7
    c = from_template.sample(field, eps, uniform(7))
    assert torch.equal(a.x, b.x) and torch.equal(a.x, c.x)
    assert template.num_inference_steps is None and template.step_index is None
    assert from_template.config["solver_order"] == 3


def test_trajectory_and_callback_follow_the_visited_levels(ddpm_path, gmm):
    field = exact_field(ddpm_path, "gaussian", gmm, "noise")
    seen = []
    res = DiffusersSampler("EulerDiscreteScheduler").sample(field, _noise(), uniform(4), callback=seen.append,
                                                            return_trajectory=True)
    assert len(res.trajectory) == res.nfe + 1 == 5
    assert torch.equal(res.trajectory[-1], res.x)
    assert [s.t_next for s in seen] == [float(v) for v in res.grid[1:]]
    assert all(b > a for a, b in zip(res.grid[:-1], res.grid[1:]))


def test_bad_inputs_are_named(ddpm_path, gmm):
    field = exact_field(ddpm_path, "gaussian", gmm, "noise")
    with pytest.raises(ValueError, match="unknown diffusers scheduler"):
        get_sampler("diffusers:NoSuchScheduler")
    with pytest.raises(TypeError, match="unknown config key"):
        DiffusersSampler("DDIMScheduler", solver_order=2)
    with pytest.raises(TypeError, match="step_kwargs"):
        DiffusersSampler("DDIMScheduler", step_kwargs={"churn": 1.0})
    with pytest.raises(TypeError, match="alphas_cumprod"):
        DiffusersSampler("FlowMatchEulerDiscreteScheduler")
    with pytest.raises(ValueError, match="increasing grid"):
        DiffusersSampler("DDIMScheduler").sample(field, _noise(), uniform(4, reverse=True))
    bridge = DiffusionBridge("vp")
    bridge_field = exact_field(bridge, None, gmm, "x1")
    with pytest.raises(ValueError, match="gaussian_source"):
        DiffusersSampler("DDIMScheduler").sample(bridge_field, _noise(), uniform(4), cond=_noise())
    vp_field = exact_field(VPDiffusion(), "gaussian", gmm, "noise")  # σ_max 151 < DDPM's 157
    with pytest.raises(ValueError, match="outside the path"):
        DiffusersSampler("DDIMScheduler", timestep_spacing="trailing").sample(vp_field, _noise(), uniform(4))
    res = DiffusersSampler("DDIMScheduler", timestep_spacing="trailing", out_of_range="clamp").sample(
        vp_field, _noise(), uniform(4))
    assert res.aux["clamped_calls"] == 1


# ------------------------------------------------------------------------------------------------ k-diffusion
def _euler_in_sigma(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """The k-diffusion Euler contract (Karras et al. 2022, Alg. 1 without churn), written for this test."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * x.new_ones(x.shape[0]))
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


def test_k_diffusion_euler_in_sigma_is_ddim(ddpm_path, gmm):
    """Euler on the VE state over σ is DDIM (the exact ε-form solution for constant ε̂): identity to 1e-12."""
    field = exact_field(ddpm_path, "gaussian", gmm, "noise")
    grid = log_snr(8, ddpm_path)
    eps = _noise()
    x_init = eps * ddpm_path.init_scale(grid[0], eps)[:, None]
    k = KDiffusionSampler(_euler_in_sigma).sample(field, x_init, grid, return_trajectory=True)
    d = DDIM().sample(field, x_init, grid, return_trajectory=True)
    assert k.nfe == d.nfe == 8
    assert torch.allclose(k.x, d.x, atol=1e-12, rtol=0), float((k.x - d.x).abs().max())
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(k.trajectory, d.trajectory))
    # trailing σ = 0 (grid ends at t = 1): the last step lands on the denoiser output
    grid1 = torch.cat([grid[:-1], torch.ones(1, dtype=F64)])
    k1 = KDiffusionSampler(_euler_in_sigma).sample(field, x_init, grid1)
    assert torch.allclose(k1.x, DDIM().sample(field, x_init, grid1).x, atol=1e-12)


def test_k_diffusion_bad_inputs(gmm):
    rf = RectifiedFlow()
    field = exact_field(rf, "gaussian", gmm, "velocity")
    with pytest.raises(ValueError, match="signal coefficient"):
        KDiffusionSampler(_euler_in_sigma).sample(field, _noise(), uniform(4))  # β(0) = 0: σ = ∞
    with pytest.raises(TypeError, match="bad options"):
        KDiffusionSampler(_euler_in_sigma, order=3)


# ------------------------------------------------------------------------------------------------ loaded UNet
def _tiny_unet():
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4)


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddpm")
    unet = _tiny_unet()
    unet.save_pretrained(root / "unet")
    diffusers.DDPMScheduler().save_pretrained(root / "scheduler")
    return root, unet


def test_loaded_field_is_the_raw_unet_at_matching_timesteps(saved_pipeline):
    root, unet = saved_pipeline
    field = load_diffusers_field(root)
    assert field.kind == "noise" and isinstance(field.interpolant.schedule, DiscreteVPSchedule)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    sched = field.interpolant.schedule
    with torch.no_grad():
        for n in (999, 531, 0):
            t = sched.timestep_to_t(torch.tensor(float(n), dtype=F64))
            assert torch.equal(field(x, t), unet(x, torch.tensor([n] * 3)).sample)
        # between integers the UNet sees the float timestep (not a long-cast one)
        t_mid = sched.timestep_to_t(torch.tensor(530.5, dtype=F64))
        assert torch.equal(field(x, t_mid), unet(x, torch.full((3,), 530.5)).sample)
        assert not torch.equal(field(x, t_mid), unet(x, torch.tensor([530] * 3)).sample)


def test_loaded_field_flat_layout_and_v_prediction(tmp_path):
    unet = _tiny_unet()
    unet.save_pretrained(tmp_path)
    diffusers.DDPMScheduler(prediction_type="v_prediction").save_pretrained(tmp_path)
    field = load_diffusers_field(tmp_path, dtype=F64)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=F64)
    n = 400
    t = field.interpolant.schedule.timestep_to_t(torch.tensor(float(n), dtype=F64))
    abar = float(field.interpolant.schedule.alphas_cumprod[n])
    with torch.no_grad():
        v = unet.double()(x, torch.tensor([n, n])).sample
        assert torch.allclose(field(x, t), math.sqrt(1 - abar) * x + math.sqrt(abar) * v, atol=1e-12)
    sample_field = load_diffusers_field(unet, diffusers.DDPMScheduler(prediction_type="sample"))
    assert sample_field.kind == "x1"


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_diffusers_field(tmp_path / "missing")
    _tiny_unet().save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="scheduler"):
        load_diffusers_field(tmp_path)
    with pytest.raises(ValueError, match="scheduler="):
        load_diffusers_field(_tiny_unet())


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (F64, 1e-12)])  # relative to max |x|
def test_genlab_ddim_on_loaded_unet_matches_diffusers_ddim(saved_pipeline, dtype, tol):
    root, _ = saved_pipeline
    field = load_diffusers_field(root, dtype=dtype)
    net = field.net.unet
    ddim = diffusers.DDIMScheduler.from_pretrained(root / "scheduler", clip_sample=False, set_alpha_to_one=True,
                                                   timestep_spacing="leading")
    ddim.set_timesteps(8)
    if dtype == F64:  # diffusers keeps ᾱ in float32; a float64 table makes its arithmetic comparable to 1e-10
        ddim.alphas_cumprod = ddim.alphas_cumprod.double()
        ddim.final_alpha_cumprod = ddim.final_alpha_cumprod.double()
    x0 = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=dtype)
    x = x0.clone()
    with torch.no_grad():
        for ts in ddim.timesteps:
            x = ddim.step(net(x, ts).sample, ts, x).prev_sample
    # leading spacing with 1000 // 8 = 125: timesteps 875, ..., 0, then ᾱ = 1 (t = 1)
    n = torch.cat([ddim.timesteps.to(F64), torch.tensor([-1.0], dtype=F64)])
    grid = field.interpolant.schedule.timestep_to_t(n)
    res = DDIM().sample(field, x0, grid)
    scale = float(x.abs().max())
    assert float((res.x - x).abs().max()) <= tol * max(1.0, scale)
    # the adapter on the same loaded field reproduces diffusers' loop with the UNet itself
    dpm = diffusers.DPMSolverMultistepScheduler.from_pretrained(root / "scheduler")
    dpm.set_timesteps(5)
    y = x0.clone()
    with torch.no_grad():
        for ts in dpm.timesteps:
            y = dpm.step(net(y, ts).sample, ts, y).prev_sample
    ad = DiffusersSampler(dpm, noise_level="timestep").sample(field, x0 * field.interpolant.init_scale(0.0, x0)[
        :, None, None, None], uniform(5))
    assert float((ad.x - y).abs().max()) <= tol * max(1.0, float(y.abs().max()))
