"""Schedules and γ family: closed-form values, boundaries, derivatives against autograd, γγ̇ at the ends,
log-SNR inverses and bad input (reference/interpolants.md §1.1, §5, §9 items 1 and 7)."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.interpolants import (
    BrownianGamma,
    BSquaredGamma,
    DDBMSchedule,
    EncoderDecoderSchedule,
    Interpolant,
    LinearSchedule,
    LinearVPSchedule,
    Schedule,
    SineSquaredGamma,
    TrigSchedule,
    VESchedule,
    VPSchedule,
    ZeroGamma,
    make_gamma,
    make_schedule,
)

GAMMA_NAMES = ("zero", "brownian", "a-brownian", "bsquared", "sinesquared")
A_SCALE = {"a-brownian": 2.0}  # a = 1 for the others (trig needs γ < 1 away from t = ½)

# Interior times; ½ is avoided on purpose (trig + sinesquared has γ = 1 and a kink there).
T_INTERIOR = torch.tensor([0.03, 0.17, 0.31, 0.46, 0.62, 0.78, 0.93], dtype=torch.float64)


def _gamma_ref(name: str, t: float) -> float:
    a = A_SCALE.get(name, 1.0)
    return {
        "zero": 0.0,
        "brownian": math.sqrt(t * (1 - t)),
        "a-brownian": math.sqrt(a * t * (1 - t)),
        "bsquared": t * (1 - t),
        "sinesquared": math.sin(math.pi * t) ** 2,
    }[name]


def _vp_linear_ref(t: float, bmin: float = 0.1, bmax: float = 20.0) -> tuple[float, float]:
    s = 1 - t
    big_t = 0.5 * s**2 * (bmax - bmin) + s * bmin
    return math.sqrt(1 - math.exp(-big_t)), math.exp(-big_t / 2)


def _vp_cosine_ref(t: float, c: float = 0.008) -> tuple[float, float]:
    def f(s: float) -> float:
        return math.cos((s + c) / (1 + c) * math.pi / 2) ** 2

    abar = f(1 - t) / f(0.0)
    return math.sqrt(1 - abar), math.sqrt(abar)


def _schedules() -> list[tuple[str, Schedule, object]]:
    """(id, schedule, reference (α, β, γ) as a function of a float t, or None where tested elsewhere)."""
    out: list[tuple[str, Schedule, object]] = []
    for g in GAMMA_NAMES:
        a = A_SCALE.get(g, 1.0)
        out.append((f"linear-{g}", LinearSchedule(g, a=a), lambda t, g=g: (1 - t, t, _gamma_ref(g, t))))

        def trig_ref(t: float, g: str = g) -> tuple[float, float, float]:
            gam = _gamma_ref(g, t)
            r = math.sqrt(1 - gam**2)
            return r * math.cos(math.pi * t / 2), r * math.sin(math.pi * t / 2), gam

        out.append((f"trig-{g}", TrigSchedule(g, a=a), trig_ref))
    out.append(
        (
            "encoder-decoder",
            EncoderDecoderSchedule(),
            lambda t: (
                math.cos(math.pi * t) ** 2 * (t <= 0.5),
                math.cos(math.pi * t) ** 2 * (t > 0.5),
                math.sin(math.pi * t) ** 2,
            ),
        )
    )
    out.append(("linear-vp", LinearVPSchedule(), lambda t: (math.sqrt(1 - t * t), t, 0.0)))
    out.append(("vp-linear", VPSchedule("linear"), lambda t: (*_vp_linear_ref(t), 0.0)))
    out.append(("vp-cosine", VPSchedule("cosine"), lambda t: (*_vp_cosine_ref(t), 0.0)))
    out.append(("ve", VESchedule(sigma_min=0.002, sigma_max=80.0), lambda t: (0.002 * 40000.0 ** (1 - t), 1.0, 0.0)))
    out.append(("ddbm-vp", DDBMSchedule("vp"), None))
    out.append(("ddbm-ve", DDBMSchedule("ve"), None))
    out.append(("ddbm-ve-small", DDBMSchedule("ve", sigma_max=2.0), None))
    return out


SCHEDULES = _schedules()
IDS = [s[0] for s in SCHEDULES]
EXACT_BOUNDARY = [s for s in SCHEDULES if s[0] not in ("vp-linear", "ve")]


def _interpolant(schedule: Schedule) -> Interpolant:
    if isinstance(schedule, DDBMSchedule):
        return Interpolant(schedule, source="data", conditional_source=True)
    return Interpolant(schedule, source="data" if schedule.has_noise else "gaussian")


@pytest.mark.parametrize(("name", "schedule", "ref"), [s for s in SCHEDULES if s[2] is not None],
                         ids=[s[0] for s in SCHEDULES if s[2] is not None])
def test_values_match_reference_formulas(name: str, schedule: Schedule, ref) -> None:
    c = schedule(T_INTERIOR)
    for i, t in enumerate(T_INTERIOR.tolist()):
        alpha, beta, gamma = ref(t)
        assert float(c.alpha[i]) == pytest.approx(alpha, rel=1e-12, abs=1e-14), (name, t)
        assert float(c.beta[i]) == pytest.approx(beta, rel=1e-12, abs=1e-14), (name, t)
        assert float(c.gamma[i]) == pytest.approx(gamma, rel=1e-12, abs=1e-14), (name, t)


@pytest.mark.parametrize(("name", "schedule", "ref"), EXACT_BOUNDARY, ids=[s[0] for s in EXACT_BOUNDARY])
def test_exact_boundaries_give_the_ends(name: str, schedule: Schedule, ref) -> None:
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    c = schedule(ends)
    torch.testing.assert_close(c.alpha, torch.tensor([1.0, 0.0], dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(c.beta, torch.tensor([0.0, 1.0], dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(c.gamma, torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-12)
    g = torch.Generator().manual_seed(1)
    x0, x1, z = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3))
    interp = _interpolant(schedule)
    zz = z if schedule.has_noise else None
    torch.testing.assert_close(interp.sample(x0, x1, 0.0, zz).x_t, x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(interp.sample(x0, x1, 1.0, zz).x_t, x1, rtol=0, atol=1e-12)


def test_vp_linear_boundary_is_approximate() -> None:
    c = VPSchedule("linear")(torch.tensor([0.0, 1.0], dtype=torch.float64))
    beta0 = math.exp(-0.5 * (0.5 * 19.9 + 0.1))  # e^{-5.025} ≈ 0.0066 (reference §1.1)
    assert float(c.beta[0]) == pytest.approx(beta0, rel=1e-12)
    assert abs(float(c.beta[0])) < 7e-3 and abs(float(c.alpha[0]) - 1) < 7e-3
    assert float(c.alpha[1]) == 0.0 and float(c.beta[1]) == 1.0
    torch.testing.assert_close(c.alpha**2 + c.beta**2, torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-14)


def test_ve_boundary_is_approximate() -> None:
    sched = VESchedule(sigma_min=0.01, sigma_max=50.0)
    t = torch.tensor([0.0, 0.4, 1.0], dtype=torch.float64)
    c = sched(t)
    assert float(c.alpha[0]) == pytest.approx(50.0, rel=1e-14)
    assert float(c.alpha[2]) == pytest.approx(0.01, rel=1e-14)
    torch.testing.assert_close(c.beta, torch.ones(3, dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(c.d_beta, torch.zeros(3, dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(c.gamma, torch.zeros(3, dtype=torch.float64), rtol=0, atol=0)


def _grad(value: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """d value / dt elementwise (zero for a constant that autograd does not track)."""
    if not value.requires_grad:
        return torch.zeros_like(t)
    (grad,) = torch.autograd.grad(value.sum(), t, retain_graph=True, allow_unused=True)
    return torch.zeros_like(t) if grad is None else grad


@pytest.mark.parametrize(("name", "schedule", "ref"), SCHEDULES, ids=IDS)
def test_derivatives_match_autograd(name: str, schedule: Schedule, ref) -> None:
    t = T_INTERIOR.clone().requires_grad_(True)
    c = schedule(t)
    for value, deriv in ((c.alpha, c.d_alpha), (c.beta, c.d_beta), (c.gamma, c.d_gamma)):
        torch.testing.assert_close(deriv.detach(), _grad(value, t), rtol=1e-10, atol=1e-8, msg=name)
    gdg = (c.gamma * _grad(c.gamma, t)).detach()
    torch.testing.assert_close(c.gamma_dgamma.detach(), gdg, rtol=1e-10, atol=1e-8, msg=name)


@pytest.mark.parametrize(("name", "schedule", "ref"), SCHEDULES, ids=IDS)
def test_gamma_dgamma_finite_at_ends_and_equals_half_dgamma2(name: str, schedule: Schedule, ref) -> None:
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    gdg = schedule(ends).gamma_dgamma
    assert bool(torch.isfinite(gdg).all()), (name, gdg)
    # γγ̇ = ½ d(γ²)/dt: one-sided differences into the interval.
    h = 1e-7
    g2 = lambda tt: schedule(torch.tensor(tt, dtype=torch.float64)).gamma ** 2
    fd0 = 0.5 * float(g2([h]) - g2([0.0])) / h
    fd1 = 0.5 * float(g2([1.0]) - g2([1.0 - h])) / h
    scale = max(1.0, abs(fd0), abs(fd1))
    assert float(gdg[0]) == pytest.approx(fd0, abs=1e-5 * scale), name
    assert float(gdg[1]) == pytest.approx(fd1, abs=1e-5 * scale), name


@pytest.mark.parametrize(
    ("gamma", "ref_gdg"),
    [
        (BrownianGamma(), lambda t: (1 - 2 * t) / 2),
        (BrownianGamma(3.0), lambda t: 3.0 * (1 - 2 * t) / 2),
        (BSquaredGamma(), lambda t: t * (1 - t) * (1 - 2 * t)),
        (SineSquaredGamma(), lambda t: math.sin(math.pi * t) ** 2 * math.pi * math.sin(2 * math.pi * t)),
        (ZeroGamma(), lambda t: 0.0),
    ],
    ids=["brownian", "a-brownian", "bsquared", "sinesquared", "zero"],
)
def test_gamma_dgamma_closed_forms(gamma, ref_gdg) -> None:
    t = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    v = gamma(t)
    ref = torch.tensor([ref_gdg(x) for x in t.tolist()], dtype=torch.float64)
    torch.testing.assert_close(v.gamma_dgamma, ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(v.gamma[[0, -1]], torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-14)


def test_brownian_gamma_dgamma_is_infinite_at_the_ends_only() -> None:
    v = BrownianGamma()(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    assert float(v.d_gamma[0]) == math.inf and float(v.d_gamma[2]) == -math.inf
    assert float(v.d_gamma[1]) == 0.0


def test_ddbm_derivatives_finite_by_finite_differences() -> None:
    # Second, independent check of the DDBM chain rule (dτ/dt = −T) with central differences.
    for sched in (DDBMSchedule("vp"), DDBMSchedule("ve", sigma_max=5.0)):
        t = T_INTERIOR
        h = 1e-6
        cp, cm, c = sched(t + h), sched(t - h), sched(t)
        torch.testing.assert_close(c.d_alpha, (cp.alpha - cm.alpha) / (2 * h), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(c.d_beta, (cp.beta - cm.beta) / (2 * h), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(c.d_gamma, (cp.gamma - cm.gamma) / (2 * h), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("schedule", [VPSchedule("linear"), VPSchedule("cosine"), VESchedule()],
                         ids=["vp-linear", "vp-cosine", "ve"])
def test_snr_inverse_round_trip(schedule) -> None:
    t = torch.tensor([0.05, 0.2, 0.5, 0.8, 0.97], dtype=torch.float64)
    c = schedule(t)
    log_snr = torch.log(c.beta**2 / c.alpha**2)
    torch.testing.assert_close(schedule.snr_inverse(log_snr), t, rtol=0, atol=1e-9)


def test_markov_omega_only_where_known() -> None:
    s, t = torch.tensor([0.2]), torch.tensor([0.4])
    assert LinearSchedule("bsquared").markov_omega(s.double(), t.double()) is None
    assert VPSchedule().markov_omega(s.double(), t.double()) is None
    # Brownian bridge posterior std: sqrt(a (t - s)(1 - t)/(1 - s)) for a = 1 (≈ sqrt(0.2 * 0.6 / 0.8))
    sd, td = s.double(), t.double()
    omega = LinearSchedule("brownian").markov_omega(sd, td)
    torch.testing.assert_close(omega, ((td - sd) * (1 - td) / (1 - sd)).sqrt(), rtol=1e-12, atol=1e-14)


def test_factories_and_bad_input() -> None:
    assert isinstance(make_schedule("trig", gamma="bsquared"), TrigSchedule)
    assert isinstance(make_gamma("a-brownian", a=2.0), BrownianGamma) and make_gamma("a-brownian", a=2.0).a == 2.0
    sched = LinearSchedule()
    assert make_schedule(sched) is sched
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("nope")
    with pytest.raises(TypeError, match="bad arguments for schedule 'vp'"):
        make_schedule("vp", sigma=1.0)
    with pytest.raises(ValueError, match="unknown gamma"):
        make_gamma("cubic")
    with pytest.raises(ValueError, match="a must be > 0"):
        BrownianGamma(0.0)
    with pytest.raises(ValueError, match="kind must be"):
        VPSchedule("quadratic")
    with pytest.raises(ValueError, match="beta_min < beta_max"):
        VPSchedule(beta_min=5.0, beta_max=1.0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        VESchedule(sigma_min=2.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="kind must be 'vp' or 've'"):
        DDBMSchedule("i2sb")
