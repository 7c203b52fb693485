"""Exact conversions between prediction kinds on every family (reference/interpolants.md §1.2, §1.4, §1.5, §8;
§9 item 2), and the errors of under-/over-determined or ill-posed requests.

The strongest check is target consistency: the conditional regression targets of a path sample (x1, x0, noise,
score, velocity built from the true x0, x1, z) satisfy every conversion identity exactly, so converting the
target of one kind must give the target of any other kind. A wrong coefficient anywhere breaks it.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from genlab.interpolants import (
    BrownianBridge,
    DiffusionBridge,
    Interpolant,
    LinearSchedule,
    RectifiedFlow,
    StochasticInterpolant,
    VEDiffusion,
    VPDiffusion,
    VPSchedule,
    build_interpolant,
)

DT = torch.float64
N, D = 6, 3
EPS = 0.37  # diffusion coefficient of the SDE drifts

ONE_SIDED = {
    "rectified-flow": RectifiedFlow(),
    "trig": StochasticInterpolant("trig", gamma="zero"),
    "linear-vp": StochasticInterpolant("linear-vp", gamma="zero"),
    "vp-linear": VPDiffusion("linear"),
    "vp-cosine": VPDiffusion("cosine"),
    "ve": VEDiffusion(sigma_min=0.01, sigma_max=20.0),
}
BRIDGES = {
    "ddbm-vp": DiffusionBridge("vp"),
    "ddbm-ve": DiffusionBridge("ve", sigma_max=10.0),
    "brownian-bridge-cond": BrownianBridge(0.7, conditional_source=True),
    "si-bsquared-cond": StochasticInterpolant("linear", gamma="bsquared", conditional_source=True),
}
TWO_SIDED = {
    **{f"linear-{g}": StochasticInterpolant("linear", gamma=g, a=2.0 if g == "a-brownian" else 1.0)
       for g in ("brownian", "a-brownian", "bsquared", "sinesquared")},
    **{f"trig-{g}": StochasticInterpolant("trig", gamma=g) for g in ("brownian", "bsquared", "sinesquared")},
    "brownian-bridge": BrownianBridge(0.5),
}
ONE_FIELD = {**ONE_SIDED, **BRIDGES}


def _draw(interp: Interpolant, seed: int, *, uniform: bool = False):
    g = torch.Generator().manual_seed(seed)
    x0, x1 = (torch.randn(N, D, generator=g, dtype=DT) for _ in range(2))
    t = torch.full((N,), 0.41, dtype=DT) if uniform else 0.05 + 0.9 * torch.rand(N, generator=g, dtype=DT)
    ps = interp.sample(None if interp.gaussian_source else x0, x1, t, generator=g)
    targets = dict(ps.targets)
    if interp.has_noise:
        targets["drift_fwd"] = targets["velocity"] + EPS * targets["score"]
        targets["drift_bwd"] = targets["velocity"] - EPS * targets["score"]
    known = ps.x0 if interp.conditional_source else None
    return ps, targets, known


def _close(a: torch.Tensor, b: torch.Tensor, msg: str = "") -> None:
    scale = max(1.0, float(b.abs().max()))
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * scale, msg=msg)


@pytest.mark.parametrize("uniform", [False, True], ids=["per-sample-t", "shared-t"])
@pytest.mark.parametrize("name", sorted(ONE_FIELD))
def test_one_field_conversions_reproduce_targets(name: str, uniform: bool) -> None:
    interp = ONE_FIELD[name]
    ps, targets, known = _draw(interp, 0, uniform=uniform)
    sources = [k for k in interp.kinds() if not (interp.conditional_source and k == "x0")]
    for k_from, k_to in itertools.product(sources, interp.kinds()):
        out = interp.convert(targets[k_from], k_from, k_to, ps.x_t, ps.t, x0=known, eps=EPS)
        _close(out, targets[k_to], f"{name}: {k_from} -> {k_to}")


@pytest.mark.parametrize("name", sorted(ONE_FIELD))
def test_one_field_round_trip_from_arbitrary_x1(name: str) -> None:
    # x1 -> k -> x1 for an arbitrary (not Bayes-consistent) prediction.
    interp = ONE_FIELD[name]
    ps, _, known = _draw(interp, 1)
    x1_hat = torch.randn(N, D, generator=torch.Generator().manual_seed(9), dtype=DT)
    for k in interp.kinds():
        if k == "x1" or (interp.conditional_source and k == "x0"):
            continue
        mid = interp.convert(x1_hat, "x1", k, ps.x_t, ps.t, x0=known, eps=EPS)
        back = interp.convert(mid, k, "x1", ps.x_t, ps.t, x0=known, eps=EPS)
        _close(back, x1_hat, f"{name}: x1 -> {k} -> x1")


@pytest.mark.parametrize("name", sorted(ONE_SIDED))
def test_one_sided_closed_forms(name: str) -> None:
    # Reference §1.5: x̂1 = (x − α ε̂)/β, s = −ε̂/α, b = (α̇/α) x + (β̇ − α̇β/α) x̂1.
    interp = ONE_SIDED[name]
    ps, _, _ = _draw(interp, 2)
    x1_hat = torch.randn(N, D, generator=torch.Generator().manual_seed(5), dtype=DT)
    c = interp.schedule(ps.t)
    a, b, da, db = (v[:, None] for v in (c.alpha, c.beta, c.d_alpha, c.d_beta))
    eps_hat = (ps.x_t - b * x1_hat) / a
    _close(interp.convert(x1_hat, "x1", "noise", ps.x_t, ps.t), eps_hat)
    _close(interp.convert(x1_hat, "x1", "x0", ps.x_t, ps.t), eps_hat)
    _close(interp.convert(x1_hat, "x1", "score", ps.x_t, ps.t), -eps_hat / a)
    vel = (da / a) * ps.x_t + (db - da * b / a) * x1_hat
    _close(interp.convert(x1_hat, "x1", "velocity", ps.x_t, ps.t), vel)
    # b = v − (αα̇)·s with v = β̇ x̂1 (the Gaussian slot plays γ's role)
    score = interp.convert(x1_hat, "x1", "score", ps.x_t, ps.t)
    _close(vel, db * x1_hat - a * da * score)


@pytest.mark.parametrize("uniform", [False, True], ids=["per-sample-t", "shared-t"])
@pytest.mark.parametrize("name", sorted(TWO_SIDED))
def test_two_sided_conversions_reproduce_targets(name: str, uniform: bool) -> None:
    interp = TWO_SIDED[name]
    ps, targets, _ = _draw(interp, 3, uniform=uniform)
    pairs = [("velocity", "noise"), ("x0", "x1"), ("velocity", "score"), ("x1", "noise"), ("drift_fwd", "drift_bwd"),
             ("velocity", "x1"), ("x0", "score")]
    for pair in pairs:
        preds = tuple(targets[k] for k in pair)
        for k_to in interp.kinds():
            out = interp.convert(preds, pair, k_to, ps.x_t, ps.t, eps=EPS)
            _close(out, targets[k_to], f"{name}: {pair} -> {k_to}")


@pytest.mark.parametrize("name", sorted(TWO_SIDED))
def test_two_sided_round_trip_and_b_equals_v_minus_gdg_s(name: str) -> None:
    interp = TWO_SIDED[name]
    ps, _, _ = _draw(interp, 4)
    g = torch.Generator().manual_seed(6)
    x0_hat, x1_hat = (torch.randn(N, D, generator=g, dtype=DT) for _ in range(2))
    vel = interp.convert((x0_hat, x1_hat), ("x0", "x1"), "velocity", ps.x_t, ps.t)
    noise = interp.convert((x0_hat, x1_hat), ("x0", "x1"), "noise", ps.x_t, ps.t)
    back0 = interp.convert((vel, noise), ("velocity", "noise"), "x0", ps.x_t, ps.t)
    back1 = interp.convert((vel, noise), ("velocity", "noise"), "x1", ps.x_t, ps.t)
    _close(back0, x0_hat)
    _close(back1, x1_hat)
    c = interp.schedule(ps.t)
    a, b, gam, da, db, gdg = (v[:, None] for v in (c.alpha, c.beta, c.gamma, c.d_alpha, c.d_beta, c.gamma_dgamma))
    score = -(ps.x_t - a * x0_hat - b * x1_hat) / gam**2  # x = αx̂0 + βx̂1 + γẑ, s = −ẑ/γ
    _close(interp.convert((x0_hat, x1_hat), ("x0", "x1"), "score", ps.x_t, ps.t), score)
    _close(noise, -gam * score)
    _close(vel, da * x0_hat + db * x1_hat - gdg * score)  # b = v − γγ̇ s (reference §1.2)


def test_encoder_decoder_from_both_ends() -> None:
    # On the encoder-decoder path only one of α, β is non-zero at a time; (x̂0, x̂1) still determine every kind.
    interp = StochasticInterpolant("encoder-decoder")
    ps, targets, _ = _draw(interp, 7)
    for k_to in interp.kinds():
        out = interp.convert((targets["x0"], targets["x1"]), ("x0", "x1"), k_to, ps.x_t, ps.t, eps=EPS)
        _close(out, targets[k_to], k_to)


def test_noise_free_two_sided_needs_one_field() -> None:
    interp = RectifiedFlow(source="data")
    assert interp.unknowns == ("x0", "x1") and interp.kinds() == ("velocity", "x1", "x0")
    ps, targets, _ = _draw(interp, 8)
    for k_from, k_to in itertools.product(interp.kinds(), repeat=2):
        _close(interp.convert(targets[k_from], k_from, k_to, ps.x_t, ps.t), targets[k_to], f"{k_from}->{k_to}")
    _close(targets["velocity"], ps.x1 - ps.x0)


def test_drift_identities() -> None:
    # drift_fwd/bwd = b ± ε s, and back: b = (F + B)/2, s = (F − B)/(2ε) (reference §1.4), ε per sample.
    interp = BrownianBridge(0.8)
    ps, _, _ = _draw(interp, 10)
    g = torch.Generator().manual_seed(11)
    b, s = (torch.randn(N, D, generator=g, dtype=DT) for _ in range(2))
    eps = 0.1 + torch.rand(N, generator=g, dtype=DT)
    fwd = interp.convert((b, s), ("velocity", "score"), "drift_fwd", ps.x_t, ps.t, eps=eps)
    bwd = interp.convert((b, s), ("velocity", "score"), "drift_bwd", ps.x_t, ps.t, eps=eps)
    _close(fwd, b + eps[:, None] * s)
    _close(bwd, b - eps[:, None] * s)
    _close(interp.convert((fwd, bwd), ("drift_fwd", "drift_bwd"), "velocity", ps.x_t, ps.t, eps=eps), (fwd + bwd) / 2)
    _close(interp.convert((fwd, bwd), ("drift_fwd", "drift_bwd"), "score", ps.x_t, ps.t, eps=eps),
           (fwd - bwd) / (2 * eps[:, None]))
    # one-sided: x1 -> drift_fwd equals velocity + ε·score
    rf = RectifiedFlow()
    ps, _, _ = _draw(rf, 12)
    x1_hat = torch.randn(N, D, generator=g, dtype=DT)
    vel = rf.convert(x1_hat, "x1", "velocity", ps.x_t, ps.t)
    score = rf.convert(x1_hat, "x1", "score", ps.x_t, ps.t)
    _close(rf.convert(x1_hat, "x1", "drift_fwd", ps.x_t, ps.t, eps=0.3), vel + 0.3 * score)
    _close(rf.convert(x1_hat, "x1", "drift_bwd", ps.x_t, ps.t, eps=0.3), vel - 0.3 * score)


def test_sample_targets_and_antithetic() -> None:
    interp = StochasticInterpolant("linear", gamma="brownian")
    g = torch.Generator().manual_seed(0)
    x0, x1, z = (torch.randn(4, 2, generator=g, dtype=DT) for _ in range(3))
    t = torch.tensor([0.1, 0.3, 0.6, 0.9], dtype=DT)
    ps = interp.sample(x0, x1, t, z)
    gam = torch.sqrt(t * (1 - t))[:, None]
    dgam = ((1 - 2 * t) / (2 * torch.sqrt(t * (1 - t))))[:, None]
    _close(ps.x_t, (1 - t[:, None]) * x0 + t[:, None] * x1 + gam * z)
    _close(ps.targets["velocity"], x1 - x0 + dgam * z)
    _close(ps.targets["score"], -z / gam)
    anti = interp.sample(x0, x1, t, z, antithetic=True)
    assert anti.x_t.shape == (8, 2)
    _close(anti.x_t[:4], ps.x_t)
    _close(anti.x_t[4:], (1 - t[:, None]) * x0 + t[:, None] * x1 - gam * z)
    # a Gaussian source flips x0 instead
    rf = RectifiedFlow()
    anti = rf.sample(x0, x1, t, antithetic=True)
    _close(anti.x0[4:], -x0)
    _close(anti.targets["noise"][4:], -x0)
    # a z passed to a noise-free path is ignored (it does not enter x_t, targets stay x0-based)
    ps = rf.sample(x0, x1, t, z)
    assert ps.z is None
    _close(ps.targets["noise"], x0)


def test_sample_is_batch_size_invariant() -> None:
    interp = StochasticInterpolant("linear", gamma="brownian")
    x0, x1 = torch.randn(5, 3, dtype=DT), torch.randn(5, 3, dtype=DT)
    t = torch.rand(5, dtype=DT)
    full = interp.sample(x0, x1, t, generator=torch.Generator().manual_seed(2))
    part = interp.sample(x0[:2], x1[:2], t[:2], generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(full.x_t[:2], part.x_t, rtol=0, atol=0)
    rf = RectifiedFlow()
    full = rf.sample(None, x1, t, generator=torch.Generator().manual_seed(2))
    part = rf.sample(None, x1[:2], t[:2], generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(full.x0[:2], part.x0, rtol=0, atol=0)


def test_float32_data_keeps_its_dtype() -> None:
    interp = VPDiffusion()
    x1 = torch.randn(4, 2)
    ps = interp.sample(None, x1, 0.3, generator=torch.Generator().manual_seed(0))
    out = interp.convert(ps.targets["x1"], "x1", "velocity", ps.x_t, 0.3)
    assert ps.x_t.dtype == torch.float32 and out.dtype == torch.float32
    torch.testing.assert_close(out, ps.targets["velocity"], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------- errors
def test_under_and_over_determined_conversions_raise() -> None:
    si = StochasticInterpolant("linear", gamma="brownian")
    x = torch.randn(3, 2, dtype=DT)
    with pytest.raises(ValueError, match="under-determined.*two fields"):
        si.convert(x, "velocity", "x1", x, 0.5)
    with pytest.raises(ValueError, match="over-determined"):
        RectifiedFlow().convert((x, x), ("x1", "score"), "velocity", x, 0.5)
    with pytest.raises(ValueError, match="got 1 predictions for 2 kinds"):
        si.convert((x,), ("velocity", "noise"), "x1", x, 0.5)


def test_bad_times_shapes_and_kinds_raise() -> None:
    rf = RectifiedFlow()
    x = torch.randn(3, 2, dtype=DT)
    for t in (1.5, -0.1, torch.tensor([0.2, 0.3, 1.2], dtype=DT)):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            rf.convert(x, "x1", "velocity", x, t)
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            rf.convert(x, "x1", "x1", x, t)  # also on the identity shortcut
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            rf.sample(x, x, t)
    with pytest.raises(ValueError, match="shape"):
        rf.convert(x, "x1", "velocity", x, torch.rand(4, dtype=DT))
    with pytest.raises(ValueError, match="prediction shape"):
        rf.convert(torch.randn(3, 3, dtype=DT), "x1", "velocity", x, 0.5)
    with pytest.raises(ValueError, match="same shape"):
        rf.sample(x, torch.randn(3, 3, dtype=DT), 0.5)
    with pytest.raises(ValueError, match="z must have the shape"):
        BrownianBridge().sample(x, x, 0.5, torch.randn(2, 2, dtype=DT))
    for bad in ("eps", "v"):
        with pytest.raises(ValueError, match="unknown prediction kind"):
            rf.convert(x, bad, "velocity", x, 0.5)
        with pytest.raises(ValueError, match="unknown prediction kind"):
            rf.convert(x, "x1", bad, x, 0.5)
        with pytest.raises(ValueError, match="unknown prediction kind"):
            rf.convert(x, bad, bad, x, 0.5)


def test_noise_free_data_path_has_no_score_or_noise() -> None:
    rf = RectifiedFlow(source="data")
    x = torch.randn(3, 2, dtype=DT)
    for kind in ("score", "noise", "drift_fwd"):
        with pytest.raises(ValueError, match="undefined"):
            rf.convert(x, "x1", kind, x, 0.5, eps=0.1)
        with pytest.raises(ValueError, match="undefined"):
            rf.convert(x, kind, "x1", x, 0.5, eps=0.1)
    ps = rf.sample(x, x, 0.5)
    assert "score" not in ps.targets and "noise" not in ps.targets
    with pytest.raises(ValueError, match="no target"):
        rf.loss(x, ps, "score")
    with pytest.raises(ValueError, match="antithetic"):
        rf.sample(x, x, 0.5, antithetic=True)
    with pytest.raises(ValueError, match="x0 is required"):
        rf.sample(None, x, 0.5)


def test_drift_without_eps_and_bridge_without_x0_raise() -> None:
    x = torch.randn(3, 2, dtype=DT)
    with pytest.raises(ValueError, match="needs eps"):
        RectifiedFlow().convert(x, "x1", "drift_fwd", x, 0.5)
    bridge = DiffusionBridge("vp")
    with pytest.raises(ValueError, match="known source x0"):
        bridge.convert(x, "x1", "velocity", x, 0.5)
    with pytest.raises(ValueError, match="x0 is known"):
        bridge.convert(x, "x0", "velocity", x, 0.5, x0=x)
    # the known x0 comes back unchanged as the "x0" kind
    _close(bridge.convert(x, "x1", "x0", x, 0.5, x0=2 * x), 2 * x)


def test_interpolant_construction_errors() -> None:
    with pytest.raises(TypeError, match="Schedule"):
        Interpolant("linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source must be"):
        Interpolant(LinearSchedule(), source="uniform")
    with pytest.raises(ValueError, match="two independent noise slots"):
        Interpolant(LinearSchedule("brownian"), source="gaussian")
    with pytest.raises(ValueError, match="conditional_source=True needs source='data'"):
        Interpolant(VPSchedule(), conditional_source=True)
    with pytest.raises(ValueError, match="unknown path"):
        StochasticInterpolant("cubic")
    with pytest.raises(ValueError, match="unknown interpolant"):
        build_interpolant("ddpm")
    with pytest.raises(TypeError, match="bad arguments for interpolant 'vp'"):
        build_interpolant("vp", sigma_max=3.0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        BrownianBridge(0.0)
    bb = build_interpolant("brownian_bridge", sigma=0.5)
    assert bb.schedule.gamma_fn.a == pytest.approx(0.25)
