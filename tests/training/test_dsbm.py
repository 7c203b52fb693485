"""Bridge matching / IMF / DSBM (Shi et al. NeurIPS'23; reference/interpolants.md §7, §9 checks 13–14): the
regression targets are the Brownian bridge's conditional forward/backward drifts (b_F = v + (σ²/2)s), phases
alternate with real data at the far end, the objective trains and resumes bit for bit in the one Trainer, and on
the 1-D Gaussian toy the learnt coupling reaches the closed-form EOT covariance (√5−1)/2 (slow)."""

from __future__ import annotations

import json
import math

import pytest
import torch

import genlab
from genlab.couplings import Independent
from genlab.interpolants import BrownianBridge
from genlab.models import TimeMLP
from genlab.training import Trainer, load_checkpoint, load_config, train
from genlab.training.dsbm import DSBM

DT = torch.float64


class _Crash(RuntimeError):
    pass


def _toy(phase_steps: int = 300, steps: int = 20, **kw) -> DSBM:
    torch.manual_seed(0)
    src = lambda n, generator=None: -1.0 + torch.randn(n, 1, generator=generator)
    return DSBM(TimeMLP(1, hidden=64, depth=3), TimeMLP(1, hidden=64, depth=3), sigma=1.0,
                coupling=Independent(src), phase_steps=phase_steps, steps=steps, **kw)


def test_targets_are_bridge_drifts() -> None:
    """(x1 − x_t)/(1 − t) = velocity + (σ²/2)·score target and (x0 − x_t)/t = −(velocity − (σ²/2)·score)."""
    sigma = 0.7
    path = BrownianBridge(sigma)
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(64, 3, generator=g, dtype=DT), torch.randn(64, 3, generator=g, dtype=DT)
    t = torch.rand(64, generator=g, dtype=DT) * 0.98 + 0.01
    ps = path.sample(x0, x1, t, generator=g)
    tt = t[:, None]
    eps = sigma**2 / 2
    fwd = ps.targets["velocity"] + eps * ps.targets["score"]
    bwd = ps.targets["velocity"] - eps * ps.targets["score"]
    torch.testing.assert_close((x1 - ps.x_t) / (1 - tt), fwd)
    torch.testing.assert_close((x0 - ps.x_t) / tt, -bwd)
    torch.testing.assert_close(fwd, x1 - x0 - sigma * torch.sqrt(tt / (1 - tt)) * ps.z)


def test_phases_alternate_and_keep_real_ends() -> None:
    obj = _toy(phase_steps=2, steps=3)
    x1 = 1.0 + torch.randn(16, 1, generator=torch.Generator().manual_seed(1))
    names = [obj.loss(x1, step=s, generator=torch.Generator().manual_seed(s)).trained for s in range(6)]
    assert names == [("backward",)] * 2 + [("forward",)] * 2 + [("backward",)] * 2
    obj.phase = 1  # forward phase: x̂0 simulated backward from the real x1
    pair = obj.pairs(x1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pair.x1, x1)
    obj.phase = 2  # backward phase: real x0 from the source, x̂1 simulated forward
    base = obj.coupling.sample(x1, generator=torch.Generator().manual_seed(5))
    pair = obj.pairs(x1, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(pair.x1, x1) and pair.x0.shape == x1.shape
    assert torch.allclose(pair.x0.mean(), base.x0.mean(), atol=1.0)
    ref = _toy(phase_steps=2, steps=3, first_coupling="ref")
    pr = ref.pairs(x1, generator=torch.Generator().manual_seed(0))
    assert float((pr.x1 - pr.x0).std()) == pytest.approx(1.0, abs=0.5)  # (x0, x0 + σξ)
    fields = obj.fields(ema=False)
    assert [f.kind for f in fields.values()] == ["drift_fwd", "drift_bwd", "velocity"]
    x, t = torch.randn(4, 1), torch.full((4,), 0.3)
    with torch.no_grad():
        vf, vb = obj.nets["forward"](x, t), obj.nets["backward"](x, t)
        torch.testing.assert_close(fields["pf_ode"](x, t), (vf - vb) / 2)
        torch.testing.assert_close(fields["backward"](x, t), -vb)


def _cfg(tiny):
    return tiny(
        objective={"name": "dsbm", "phase_steps": 8, "steps": 3},
        interpolant={"name": "brownian_bridge", "sigma": 1.0},
        model={"hidden": 16, "depth": 1, "kind": "drift_fwd", "eps": 0.5},
        train={"steps": 24, "ckpt_every": 5, "log_every": 4, "warmup": 2},
    )


def test_dsbm_trainer_resume_bit_exact(tmp_path, tiny) -> None:
    cfg = _cfg(tiny)
    straight = train(cfg, out=tmp_path / "straight")
    assert [r["phase"] for r in straight.history] == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]

    def crash_after_13(trainer: Trainer) -> None:
        if trainer.step == 13:
            raise _Crash

    with pytest.raises(_Crash):
        train(cfg, out=tmp_path / "resumed", hooks=[crash_after_13])
    assert load_checkpoint(tmp_path / "resumed")["objective"]["phase"] == 1
    train(cfg, out=tmp_path / "resumed", resume=True)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert a["objective"] == b["objective"] == {"phase": 2}
    for part in ("model.forward", "model.backward", "ema.forward", "ema.backward"):
        assert json.dumps(sorted(a[part])) == json.dumps(sorted(b[part]))
    for k, v in a["model.backward"].items():
        assert torch.equal(v, b["model.backward"][k]), k
    for k, v in a["model.forward"].items():
        assert torch.equal(v, b["model.forward"][k]), k


def test_bad_input(tiny) -> None:
    net = TimeMLP(1, hidden=8, depth=1)
    with pytest.raises(ValueError, match="sigma"):
        DSBM(net, TimeMLP(1, hidden=8, depth=1), sigma=0.0, coupling=Independent())
    with pytest.raises(ValueError, match="distinct"):
        DSBM(net, net, sigma=1.0, coupling=Independent())
    with pytest.raises(ValueError, match="first_coupling"):
        DSBM(net, TimeMLP(1, hidden=8, depth=1), sigma=1.0, coupling=Independent(), first_coupling="ot")
    with pytest.raises(ValueError, match="SDE sampler"):
        DSBM(net, TimeMLP(1, hidden=8, depth=1), sigma=1.0, coupling=Independent(), sampler="heun")
    with pytest.raises(ValueError, match="brownian_bridge"):
        Trainer(load_config(tiny(objective={"name": "dsbm"})), "unused")


@pytest.mark.slow
def test_dsbm_gaussian_toy_reaches_eot_coupling() -> None:
    """N(−1, 1) → N(1, 1), σ = 1: after 4 phases (b, f, b, f; 300 steps each) the forward SDE's coupling has
    Cov(x0, x1) = (√5 − 1)/2 ± 0.03, mean 1 ± 0.1, variance 1 ± 0.1 (measured 0.611, 1.08, 0.99)."""
    obj = _toy()
    opts = {k: torch.optim.Adam(m.parameters(), lr=2e-3) for k, m in obj.modules().items()}
    g = torch.Generator().manual_seed(0)
    for step in range(4 * 300):
        out = obj.loss(1.0 + torch.randn(512, 1, generator=g), step=step, generator=g)
        (name,) = out.trained
        opts[name].zero_grad()
        out.loss.backward()
        opts[name].step()
    x0 = -1.0 + torch.randn(5000, 1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = genlab.sample(obj.fields(ema=False)["forward"], "euler_maruyama", steps=50, x_init=x0, seed=2).x
    cov = torch.cov(torch.cat([x0, y], 1).T)
    assert float(cov[0, 1]) == pytest.approx((math.sqrt(5) - 1) / 2, abs=0.03)
    assert float(y.mean()) == pytest.approx(1.0, abs=0.1)
    assert float(y.var()) == pytest.approx(1.0, abs=0.1)
