"""Bridge samplers: DBIM(η), DBIM high order and DDBM's hybrid Heun (``reference/samplers.md`` §5, §9 DBIM rows)."""

from __future__ import annotations

import math

import pytest
import torch
from gaussian_oracle import gaussian_field, gaussian_flow_map
from torch import nn

from genlab.interpolants import DiffusionBridge, Interpolant, VPDiffusion
from genlab.interpolants.gammas import BrownianGamma
from genlab.interpolants.schedules import Coeffs, Schedule, VPSchedule
from genlab.models.field import Field
from genlab.samplers import (
    DBIM,
    DDIM,
    DBIMHighOrder,
    DDBMHeun,
    Heun,
    NoiseStream,
    dbim_grid,
    ddbm_grid,
    log_snr,
    uniform,
)

F64 = torch.float64
M = torch.tensor([1.0, -0.5, 0.3], dtype=F64)
S = torch.tensor([0.5, 0.8, 0.2], dtype=F64)
K = 0.5  # x1 | x0 ~ N(M + K·x0, S²)
NS = (16, 32, 64, 128)


@pytest.fixture(autouse=True)
def _single_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _x0(n: int = 6, seed: int = 0, d: int = 3) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _bridge_state(br: Interpolant, x0: torch.Tensor, x1: torch.Tensor, z: torch.Tensor, t: float) -> torch.Tensor:
    c = br.schedule.coeffs(torch.tensor([t], dtype=F64))
    return c.alpha * x0 + c.beta * x1 + c.gamma * z


class _Oracle(nn.Module):
    """Returns a fixed x̂1 whatever the state (the "true x1" oracle of DBIM check (a))."""

    def __init__(self, x1: torch.Tensor) -> None:
        super().__init__()
        self.x1 = x1

    def forward(self, x_t, t, cond=None):
        return self.x1.to(x_t.dtype)


# ----------------------------------------------------------------------------------------------- (a), (b)
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_one_step_with_true_x1_keeps_the_bridge_marginal(eta):
    """x_t − a_t x0 − b_t x1 ~ N(0, c_t²) and Cov(·, z_s) = √(c_t² − ω²) for ω = η α_t ρ_t √(1 − ρ_t²/ρ_s²)."""
    br = DiffusionBridge("vp")
    n, s, t = 20000, 0.3, 0.55
    gen = torch.Generator().manual_seed(11)
    x0 = torch.randn(n, 2, generator=gen, dtype=F64)
    x1 = torch.randn(n, 2, generator=gen, dtype=F64)
    z = torch.randn(n, 2, generator=gen, dtype=F64)
    x_s = _bridge_state(br, x0, x1, z, s)
    field = Field(_Oracle(x1), br, "x1")
    grid = torch.tensor([s, t, 0.8], dtype=F64)  # the first step is not the last one: it carries noise
    res = DBIM(eta=eta).sample(field, x_s, grid, cond=x0, generator=gen, return_trajectory=True)
    c = br.schedule.coeffs(grid)
    r = res.trajectory[1] - c.alpha[1] * x0 - c.beta[1] * x1
    sched = br.schedule
    alpha_t, rho2_t, _, _ = sched.alpha_rho(sched.tau(grid[1:2]))
    _, rho2_s, _, _ = sched.alpha_rho(sched.tau(grid[:1]))
    omega = eta * float(alpha_t * torch.sqrt(rho2_t * (1 - rho2_t / rho2_s)))
    c_t, c_s = float(c.gamma[1]), float(c.gamma[0])
    se = 4 / math.sqrt(2 * n)
    assert abs(float(r.std()) / c_t - 1) < se
    cov_rz = float((r * z).mean())
    assert abs(cov_rz - math.sqrt(c_t**2 - omega**2)) < 4 * c_t / math.sqrt(2 * n)
    if eta == 1.0:  # the Markov posterior keeps only k·c_s of the old noise, k = (α_t/α_s)ρ_t²/ρ_s²
        alpha_s = float(sched.alpha_rho(sched.tau(grid[:1]))[0])
        k = float(alpha_t) / alpha_s * float(rho2_t / rho2_s)
        assert abs(cov_rz - k * c_s) < 4 * c_t / math.sqrt(2 * n)


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_eta_one_coefficient_is_the_markov_posterior(kind):
    """∂x_t/∂x_s of a DBIM(η=1) step equals (α_t/α_s)ρ_t²/ρ_s² (same noise, constant x̂1)."""
    br = DiffusionBridge(kind)
    x0 = _x0()
    field = Field(_Oracle(M.expand(6, 3).clone()), br, "x1")
    grid = torch.tensor([0.2, 0.6, 0.9], dtype=F64)
    delta = 0.37
    x_s = _x0(seed=1)
    outs = [DBIM(eta=1.0).sample(field, x_s + dx, grid, cond=x0, generator=torch.Generator().manual_seed(3),
                                 return_trajectory=True).trajectory[1] for dx in (0.0, delta)]
    sched = br.schedule
    alpha_t, rho2_t, _, _ = sched.alpha_rho(sched.tau(grid[1:2]))
    alpha_s, rho2_s, _, _ = sched.alpha_rho(sched.tau(grid[:1]))
    k = float(alpha_t / alpha_s * rho2_t / rho2_s)
    assert torch.allclose((outs[1] - outs[0]) / delta, torch.full_like(x_s, k), rtol=1e-10, atol=0)


# ----------------------------------------------------------------------------------------------- (c) orders
def _bridge_errors(sampler) -> list[float]:
    br = DiffusionBridge("vp")
    field = gaussian_field(br, M, S, k=K)
    x0, z = _x0(), _x0(seed=1)
    errs = []
    for n in NS:
        grid = uniform(n, t_start=0.1, t_end=0.9)
        x_init = _bridge_state(br, x0, M + K * x0, z, 0.1)
        out = sampler.sample(field, x_init, grid, cond=x0).x
        ref = gaussian_flow_map(br, M, S, x_init, 0.1, 0.9, x0=x0, k=K)
        errs.append(float((out - ref).abs().max()))
    return errs


@pytest.mark.parametrize(("sampler", "lo", "hi"), [(DBIM(), 0.7, 2.2), (DBIMHighOrder(order=2), 1.7, 3.2),
                                                   (DBIMHighOrder(order=3), 1.8, 4.2)])
def test_orders_on_the_interior(sampler, lo, hi):
    errs = _bridge_errors(sampler)
    order = math.log2(errs[-2] / errs[-1])
    assert lo <= order <= hi, (sampler, errs)


class _PolyInLam(nn.Module):
    """x̂1 = p0 + p1·λ + p2·λ² with λ = log(β/γ): a data prediction that is an exact polynomial in λ."""

    def __init__(self, br: Interpolant, p: torch.Tensor) -> None:
        super().__init__()
        self.br, self.p = br, p

    def lam(self, t: float) -> float:
        return float(self.br.semilinear(torch.tensor([t], dtype=F64), torch.zeros(1)).lam[0])

    def forward(self, x_t, t, cond=None):
        lam = self.lam(float(t[0]))
        return (self.p[0] + self.p[1] * lam + self.p[2] * lam**2).expand_as(x_t)


@pytest.mark.parametrize("order", [2, 3])
def test_high_order_step_is_exact_on_polynomials(order):
    """The order-k step integrates ∫ e^λ x̂1(λ) dλ exactly when x̂1 is a polynomial of degree k − 1 in λ
    (checks D', D'' and the φ coefficients of the exponential integrator, not only the asymptotic order)."""
    br = DiffusionBridge("vp")
    p = _x0(n=3, seed=4)
    if order == 2:
        p[2] = 0.0
    net = _PolyInLam(br, p)
    field = Field(net, br, "x1")
    grid = torch.tensor([0.15, 0.3, 0.45, 0.6], dtype=F64)
    x0 = _x0()
    x = _x0(seed=1)
    traj = DBIMHighOrder(order=order, lower_order_final=False).sample(field, x, grid, cond=x0,
                                                                      return_trajectory=True).trajectory
    c = br.schedule.coeffs(grid)
    lam = [net.lam(float(t)) for t in grid]

    def antider(u: float) -> torch.Tensor:  # ∫ e^λ (p0 + p1 λ + p2 λ²) dλ
        return math.exp(u) * (p[0] + p[1] * (u - 1) + p[2] * (u * u - 2 * u + 2))

    i = order - 1  # the first step of full order starts at grid[order - 1]
    ratio = c.gamma[i + 1] / c.gamma[i]
    exact = (ratio * traj[i] + (c.alpha[i + 1] - c.alpha[i] * ratio) * x0
             + c.gamma[i + 1] * (antider(lam[i + 1]) - antider(lam[i])))
    assert float((traj[i + 1] - exact).abs().max()) < 1e-11
    # the first (first-order) step is not exact on the same data: the check has teeth
    ratio0 = c.gamma[1] / c.gamma[0]
    exact0 = ratio0 * x + (c.alpha[1] - c.alpha[0] * ratio0) * x0 + c.gamma[1] * (antider(lam[1]) - antider(lam[0]))
    assert float((traj[1] - exact0).abs().max()) > 1e-4


def test_high_order_beats_first_order():
    e1, e2, e3 = (_bridge_errors(s)[-1] for s in (DBIM(), DBIMHighOrder(order=2), DBIMHighOrder(order=3)))
    assert e2 < e1 / 10 and e3 < e1 / 10


# ----------------------------------------------------------------------------------------------- (d) a ≡ 0
class _ZeroKnownVP(Schedule):
    """The VP path written as a bridge whose known source has weight 0: (α, β, γ) = (0, β_vp, α_vp)."""

    gamma_fn = BrownianGamma()  # only marks the path as noisy; coefficients come from coeffs()

    def __init__(self) -> None:
        self.vp = VPSchedule()

    def coeffs(self, t):
        c = self.vp.coeffs(t)
        zero = torch.zeros_like(t)
        return Coeffs(zero, c.beta, c.alpha, zero, c.d_beta, c.d_alpha, c.alpha * c.d_alpha)


def test_dbim_with_zero_known_coefficient_is_ddim():
    vp = VPDiffusion()
    bridge = Interpolant(_ZeroKnownVP(), source="data", conditional_source=True)
    grid = log_snr(9, vp, t_start=0.05)
    x = _x0(seed=2) * float(vp.schedule.coeffs(grid[:1]).alpha)
    ddim = DDIM().sample(gaussian_field(vp, M, S), x, grid).x
    dbim = DBIM().sample(gaussian_field(bridge, M, S), x, grid, cond=_x0(seed=5)).x
    assert float((ddim - dbim).abs().max()) < 1e-12
    assert float((ddim - gaussian_flow_map(vp, M, S, x, float(grid[0]), float(grid[-1]))).abs().max()) > 1e-3


# ----------------------------------------------------------------------------------------------- (e) boot etc.
def test_boot_nfe_grid_and_determinism():
    br = DiffusionBridge("vp")
    field = gaussian_field(br, M, S, k=K)
    x0 = _x0()
    grid = dbim_grid(5, br)
    assert grid.numel() == 6 and grid[0] == 0 and abs(float(grid[1]) - 1e-3) < 1e-15
    assert abs(float(grid[-1]) - (1 - 1e-4)) < 1e-15
    a = DBIM().sample(field, x0, grid, cond=x0, generator=torch.Generator().manual_seed(0))
    assert a.nfe == 5 == DBIM().expected_nfe(5) and field.net.calls == 5
    eps = a.aux["eps_boot"]
    # ε_boot is the first per-sample draw of the generator
    assert torch.equal(eps, NoiseStream(x0, torch.Generator().manual_seed(0))())
    # the boot puts x_{t_1} = a x0 + b x̂1 + c ε_boot
    first = DBIM().sample(field, x0, grid, cond=x0, generator=torch.Generator().manual_seed(0),
                          return_trajectory=True).trajectory[1]
    c = br.schedule.coeffs(grid[1:2])
    x1_boot = field(x0, 0.0, x0)
    assert float((first - (c.alpha * x0 + c.beta * x1_boot + c.gamma * eps)).abs().max()) < 1e-12
    # η = 0 with a given ε_boot is deterministic, whatever the generator
    b = DBIM(eps_boot=eps).sample(field, x0, grid, cond=x0, generator=torch.Generator().manual_seed(99))
    assert torch.equal(a.x, b.x)
    c2 = DBIM().sample(field, x0, grid, cond=x0, generator=torch.Generator().manual_seed(1))
    assert float((c2.x - a.x).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="eps_boot has shape"):
        DBIM(eps_boot=eps[:2]).sample(field, x0, grid, cond=x0)
    with pytest.raises(ValueError, match="starts at the condition"):  # no boot on this grid: ε_boot unused
        DBIM(eps_boot=eps).sample(field, x0, uniform(3, t_start=0.1, t_end=0.9), cond=x0)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_point_mass_data_is_reached_exactly(n):
    br = DiffusionBridge("vp")
    field = gaussian_field(br, M, 0.0, k=K)
    x0 = _x0()
    grid = torch.cat([dbim_grid(n, br)[:-1], torch.ones(1, dtype=F64)])
    for sampler in (DBIM(), DBIMHighOrder(order=2), DBIMHighOrder(order=3)):
        out = sampler.sample(field, x0, grid, cond=x0, generator=torch.Generator().manual_seed(n)).x
        assert float((out - (M + K * x0)).abs().max()) < 1e-12


def test_encode_inverts_boot_and_reconstructs():
    br = DiffusionBridge("vp")
    field = gaussian_field(br, M, S, k=K)
    x0 = _x0()
    # one interval: the un-boot is the exact inverse of the boot
    grid = torch.tensor([0.0, 0.4], dtype=F64)
    eps = _x0(seed=7)
    x_t = DBIM(eps_boot=eps).sample(field, x0, grid, cond=x0).x
    enc = DBIM().sample(field, x_t, grid.flip(0), cond=x0)
    assert enc.nfe == 1 and torch.equal(enc.x, x0)
    assert float((enc.aux["eps_boot"] - eps).abs().max()) < 1e-12
    # full grid: encode data, decode with the recovered ε_boot; error of the first-order ODE shrinks like 1/N
    x1 = M + K * x0 + S * _x0(seed=8)
    errs = []
    for n in (50, 100, 200):
        g = dbim_grid(n, br)
        e = DBIM().sample(field, x1, g.flip(0), cond=x0)
        assert e.nfe == n
        rec = DBIM(eps_boot=e.aux["eps_boot"]).sample(field, x0, g, cond=x0).x
        errs.append(float((rec - x1).abs().max()))
    assert errs[-1] < 0.05 and errs[0] / errs[-1] > 2.5, errs
    with pytest.raises(ValueError, match="eta=0"):
        DBIM(eta=0.5).sample(field, x1, dbim_grid(4, br).flip(0), cond=x0)


def test_requires_a_bridge():
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    x = _x0()
    for sampler in (DBIM(), DBIMHighOrder(), DDBMHeun()):
        with pytest.raises(ValueError, match="bridge"):
            sampler.sample(field, x, uniform(4, t_end=0.9))
    with pytest.raises(ValueError, match="order"):
        DBIMHighOrder(order=4)
    with pytest.raises(ValueError, match="eta"):
        DBIM(eta=1.5)


# ----------------------------------------------------------------------------------------------- DDBM Heun
def test_ddbm_heun_without_churn_is_heun():
    br = DiffusionBridge("vp")
    field = gaussian_field(br, M, S, k=K)
    x0 = _x0()
    grid = uniform(6, t_start=0.1, t_end=0.9)
    x = _bridge_state(br, x0, M + K * x0, _x0(seed=1), 0.1)
    a = DDBMHeun(churn=0.0, final_euler=False).sample(field, x, grid, cond=x0)
    b = Heun().sample(field, x, grid, cond=x0)
    assert a.nfe == 12 == DDBMHeun(churn=0.0, final_euler=False).expected_nfe(6)
    assert float((a.x - b.x).abs().max()) < 1e-12


def _ddbm_reference(br, x, x0, grid, churn, w, seed):
    """DDBM ``sample_heun`` written in τ with its VP drift (``get_d_vp``; VE: α = 1, ρ = τ)."""
    sched = br.schedule
    big_t = sched.T
    taus = (big_t * (1 - grid)).tolist()
    denoiser = gaussian_field(br, M, S, k=K)

    def parts(xx, tau):
        tt = torch.tensor([tau], dtype=F64)
        alpha, rho2, d_alpha, d_rho2 = sched.alpha_rho(tt)
        alpha_T, rho2_T, _, _ = sched.alpha_rho(torch.tensor([big_t], dtype=F64))
        c = sched.coeffs(1 - tt / big_t)
        den = denoiser(xx, 1 - tau / big_t, x0)
        score = -(xx - c.alpha * x0 - c.beta * den) / c.gamma**2
        h = -(xx - alpha / alpha_T * x0) / (alpha**2 * (rho2_T - rho2))
        f = d_alpha / alpha * xx
        g2 = alpha**2 * d_rho2
        return f, g2, score, h

    def d_ode(xx, tau):
        f, g2, score, h = parts(xx, tau)
        return f - g2 * (0.5 * score - w * h)

    stream = NoiseStream(x, torch.Generator().manual_seed(seed))
    n = len(taus) - 1
    for i in range(n):
        tau_hat = taus[i] + churn * (taus[i + 1] - taus[i])
        f, g2, score, h = parts(x, taus[i])
        d1 = f - g2 * (score - w * h)
        dt = tau_hat - taus[i]
        x = x + d1 * dt + stream() * math.sqrt(abs(dt)) * torch.sqrt(g2)
        d = d_ode(x, tau_hat)
        dt = taus[i + 1] - tau_hat
        if taus[i + 1] == 0:
            x = x + d * dt
        else:
            x2 = x + d * dt
            x = x + (d + d_ode(x2, taus[i + 1])) / 2 * dt
    return x


@pytest.mark.parametrize(("kind", "w"), [("vp", 1.0), ("ve", 1.0), ("vp", 0.7)])
def test_ddbm_heun_matches_ddbm_sampler(kind, w):
    """The genlab form (SI SDE with ε = ½g²T, then Heun on the velocity) equals DDBM's τ-space sampler."""
    br = DiffusionBridge(kind)
    field = gaussian_field(br, M, S, k=K)
    x0 = _x0()
    grid = ddbm_grid(4, br)
    assert grid[-1] == 1.0 and abs(float(grid[0]) - 1e-4 / br.schedule.T) < 1e-15
    x = x0.clone()
    sampler = DDBMHeun(guidance=w)
    res = sampler.sample(field, x, grid, cond=x0, generator=torch.Generator().manual_seed(6))
    assert res.nfe == 11 == sampler.expected_nfe(4)
    ref = _ddbm_reference(br, x, x0, grid, 0.33, w, 6)
    scale = float(ref.abs().max())
    assert float((res.x - ref).abs().max()) < 1e-9 * max(1.0, scale)


def test_ddbm_heun_options():
    br = DiffusionBridge("vp")
    field = gaussian_field(br, M, S, k=K)
    x0 = _x0()
    with pytest.raises(ValueError, match="final_euler"):
        DDBMHeun(final_euler=False).sample(field, x0, ddbm_grid(3, br), cond=x0)
    with pytest.raises(ValueError, match="churn"):
        DDBMHeun(churn=1.0)
    from genlab.interpolants import BrownianBridge

    bb = BrownianBridge(1.0, conditional_source=True)
    with pytest.raises(ValueError, match="guidance"):
        DDBMHeun(guidance=0.5).sample(gaussian_field(bb, M, S, k=K), x0, uniform(3, t_start=0.1, t_end=0.9),
                                      cond=x0)
