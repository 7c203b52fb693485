"""DDBM bridges trained end to end (issue 9): the shipped bridge configs build a Field with the DDBM
preconditioning and the condition as channels, the objective uses the preconditioning's loss weight and τ law,
training resumes bit for bit, a trained tiny bridge's DBIM(η=0) encode→decode round trip is exact up to the
solver's first order, configs with a missing condition or a wrong channel count fail clearly, and the uncoupled
baseline couplings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.analytic import GaussianMixture
from genlab.analytic.fields import ConditionalGMM
from genlab.couplings import MaskedCoupling, SuperResolution
from genlab.interpolants import DiffusionBridge
from genlab.models import DDBMPrecond, Field, TimeMLP, UNet
from genlab.samplers import DBIM, dbim_grid
from genlab.training import InterpolantObjective, Trainer, load_config
from genlab.training.checkpoint import load_checkpoint
from genlab.training.components import build_components, collate, make_cond, make_field

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
F64 = torch.float64


def _tiny(name: str, *extra: str):
    return load_config(
        CONFIGS / f"{name}.yaml",
        overrides=[
            "model.block_out_channels=[8,16]",
            "train.batch_size=8",
            "train.steps=6",
            "train.ckpt_every=3",
            "train.log_every=3",
            "train.warmup=2",
            "train.sample_every=0",
            *extra,
        ],
    )


@pytest.mark.parametrize("name", ["digits_bridge_edges", "digits_bridge_sr2", "digits_bridge_inpaint",
                                  "digits_bridge_edges_ve"])
def test_bridge_configs_build_a_preconditioned_channel_conditioned_field(name):
    cfg = _tiny(name)
    comp = build_components(cfg)
    assert isinstance(comp.net, UNet) and comp.net.cond_channels == 1
    field = make_field(comp.net, cfg, comp)
    assert isinstance(field.precond, DDBMPrecond) and field.kind == "x1"
    # the objective's loss = the precond's bridge_karras weight at its τ law, on the Field the samplers use
    obj = InterpolantObjective(cfg, comp)
    batch = collate(comp.split.train, torch.arange(8))
    got = obj(field, batch, generator=torch.Generator().manual_seed(5), antithetic=False).loss
    g = torch.Generator().manual_seed(5)
    pair = comp.coupling.sample(batch, generator=g)
    t = field.precond.train_times(8, generator=g)
    assert float(t.min()) >= 0 and float(t.max()) <= 1 - field.precond.tau_min / field.precond.T
    path = comp.interpolant.sample(pair.x0, pair.x1, t, generator=g, antithetic=False)
    pred = field(path.x_t, path.t, make_cond(comp.interpolant, pair, None))
    w = field.precond.loss_weight(path.t, path.x_t)
    want = comp.interpolant.loss(pred, path, "x1", weight=w)
    torch.testing.assert_close(got, want)


def test_bridge_run_resumes_bit_for_bit(tmp_path):
    straight = Trainer(_tiny("digits_bridge_edges"), tmp_path / "straight")
    straight.fit()

    class _Crash(Exception):
        pass

    def crash(trainer: Trainer) -> None:
        if trainer.step == 4:
            raise _Crash

    with pytest.raises(_Crash):
        Trainer(_tiny("digits_bridge_edges"), tmp_path / "resumed", hooks=[crash]).fit()
    resumed = Trainer(_tiny("digits_bridge_edges"), tmp_path / "resumed")
    resumed.fit(resume=True)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert a["step"] == b["step"] == 6
    for ka, va in straight.net.state_dict().items():
        assert torch.equal(va, resumed.net.state_dict()[ka]), ka
    for va, vb in zip(straight.ema.module.parameters(), resumed.ema.module.parameters(), strict=True):
        assert torch.equal(va, vb)
    assert len(a["rng"]) == len(b["rng"])


def test_missing_condition_or_wrong_channels_fail_clearly():
    with pytest.raises(ValueError, match="paired dataset"):
        build_components(_tiny("digits_bridge_edges", "data.name=digits"))
    with pytest.raises(ValueError, match="condition"):
        build_components(_tiny("digits_bridge_edges", "coupling.name=independent"))
    with pytest.raises(ValueError, match=r"model.cond_channels=3 .* 1 channel"):
        build_components(_tiny("digits_bridge_edges", "model.cond_channels=3"))
    with pytest.raises(ValueError, match=r"model.cond_channels=0 .* set it to 1"):
        build_components(_tiny("digits_bridge_edges", "model.cond_channels=0"))


def test_trained_tiny_bridge_dbim_round_trip_is_first_order():
    """Train a tiny DDBM-preconditioned MLP bridge on a conditional GMM, then encode data with DBIM(η=0) and
    decode with the recovered booting noise: the error shrinks like 1/N (the DBIM ODE is first order)."""
    torch.manual_seed(0)
    br = DiffusionBridge("vp")
    pre = DDBMPrecond(br)
    net = TimeMLP(2, hidden=64, depth=2, cond_dim=2).double()
    field = Field(net, br, "x1", precond=pre)
    cg = ConditionalGMM(GaussianMixture(torch.tensor([[0.6, -0.4], [-0.5, 0.3]], dtype=F64), 0.05), scale=0.5)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(150):
        x0 = 0.5 * torch.randn(256, 2, generator=g, dtype=F64)
        x1 = cg.sample(x0, generator=g)
        path = br.sample(x0, x1, pre.train_times(256, generator=g), generator=g)
        loss = br.loss(field(path.x_t, path.t, x0), path, "x1", weight=pre.loss_weight(path.t, path.x_t))
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.requires_grad_(False)
    x0 = 0.5 * torch.randn(32, 2, generator=g, dtype=F64)
    x1 = cg.sample(x0, generator=g)
    errs = []
    for n in (20, 40, 80):
        grid = dbim_grid(n, br)
        # encode from the data end of the grid: the grid's last point, reached from x1 by the exact path
        enc = DBIM().sample(field, x1, grid.flip(0), cond=x0)
        rec = DBIM(eps_boot=enc.aux["eps_boot"]).sample(field, x0, grid, cond=x0).x
        errs.append(float((rec - x1).abs().max()))
    assert errs[-1] < 0.08, errs
    assert errs[0] / errs[1] > 1.5 and errs[1] / errs[2] > 1.5, errs


def test_uncoupled_baselines_start_from_noise_with_the_same_condition():
    x1 = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for cls, kw in ((SuperResolution, {"factor": 2, "sigma": 0.1}), (MaskedCoupling, {"tiles": 16, "p": 0.4})):
        a = cls(**kw).sample(x1, generator=torch.Generator().manual_seed(3))
        b = cls(**kw, coupled=False).sample(x1, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(a.cond, b.cond)  # same network input
        assert b.mask is None
        # x0 is standard noise, independent of x1 (no trace of the observation)
        assert abs(float((b.x0 * x1).mean())) < 0.15 and abs(float(b.x0.std()) - 1) < 0.15
    with pytest.raises(ValueError, match="cond=True"):
        SuperResolution(2, 0.1, cond=False, coupled=False)
    with pytest.raises(ValueError, match="image_and_mask"):
        MaskedCoupling(cond="mask", coupled=False)
    with pytest.raises(TypeError, match="coupled"):
        MaskedCoupling(coupled="no")  # type: ignore[arg-type]


def test_cli_sample_cond_writes_input_sample_target_grid(tmp_path):
    from genlab.cli import main
    from genlab.training.conditional import grid_rows, sample_conditional

    Trainer(_tiny("digits_bridge_edges", "train.steps=2"), tmp_path / "run").fit()
    comp = build_components(_tiny("digits_bridge_edges"))
    x0, x1 = collate(comp.split.test, torch.arange(5))
    torch.save({"x0": x0, "x1": x1}, tmp_path / "cond.pt")
    assert main(["sample", "--run", str(tmp_path / "run"), "--cond", str(tmp_path / "cond.pt"), "--steps", "3",
                 "--out", str(tmp_path / "g.png")]) == 0
    dump = torch.load(tmp_path / "g.pt", weights_only=True)
    assert dump["x"].shape == x0.shape and dump["nfe"] == 3 and torch.equal(dump["target"], x1)
    assert torch.equal(dump["inputs"], x0) and (tmp_path / "g.png").stat().st_size > 0
    held = sample_conditional(tmp_path / "run", cond="held_out", n=4, steps=2)
    assert held.x.shape == (4, 1, 8, 8) and held.target is not None and held.nfe == 2
    assert grid_rows(held.inputs, held.x, held.target).shape == (24, 1, 8, 8)  # 3 rows of 8, padded
    torch.save(torch.zeros(2, 1, 4, 4), tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="per-sample shape"):
        sample_conditional(tmp_path / "run", cond=tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="held_out"):
        sample_conditional(tmp_path / "run", cond=tmp_path / "missing.pt")
