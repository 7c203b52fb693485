"""genlab's EMA and diffusers' EMAModel behind one interface give the same weights; the Trainer takes either."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import genlab
from genlab.training.checkpoint import load_checkpoint
from genlab.training.config import ConfigError, load_config
from genlab.training.ema import DiffusersEMA, make_ema


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2)).double()


def test_backends_give_the_same_weights_and_decays() -> None:
    net = _net()
    ours, theirs = make_ema(net, decay=0.9), make_ema(net, backend="diffusers", decay=0.9)
    assert isinstance(theirs, DiffusersEMA)
    opt = torch.optim.SGD(net.parameters(), lr=0.2)
    g = torch.Generator().manual_seed(1)
    decays = []
    for _ in range(40):
        loss = net(torch.randn(16, 3, generator=g, dtype=torch.float64)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        d1, d2 = ours.update(net), theirs.update(net)
        assert d1 == d2
        decays.append(d1)
    assert decays[0] == 0.0 and decays[-1] == 0.9  # warm-up from the first weights up to the target decay
    for (k, a), b in zip(ours.module.state_dict().items(), theirs.module.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=k)
    assert theirs.state_dict()["backend"] == "diffusers" and theirs.state_dict()["step"] == 40


def test_diffusers_backend_refuses_constant_decay() -> None:
    with pytest.raises(ValueError, match="ema_warmup"):
        make_ema(_net(), backend="diffusers", warmup=False)
    with pytest.raises(ValueError, match="ema_backend"):
        make_ema(_net(), backend="timm")
    with pytest.raises(ConfigError, match="ema_backend"):
        load_config("configs/moons_tiny.yaml", overrides=["train.ema_backend=diffusers", "train.ema_warmup=false"])


def test_trainer_with_diffusers_ema_matches_genlab_ema(tmp_path: Path) -> None:
    common = ["train.steps=6", "train.ckpt_every=6", "train.log_every=3"]
    genlab.train("configs/moons_tiny.yaml", out=tmp_path / "a", overrides=common)
    genlab.train("configs/moons_tiny.yaml", out=tmp_path / "b", overrides=[*common, "train.ema_backend=diffusers"])
    a = load_checkpoint(next((tmp_path / "a" / "checkpoints").glob("*.pt")))
    b = load_checkpoint(next((tmp_path / "b" / "checkpoints").glob("*.pt")))
    key = next(k for k in a if k.startswith("ema"))
    for name, w in a[key]["weights"].items():
        torch.testing.assert_close(w, b[key]["weights"][name], rtol=1e-5, atol=1e-6, msg=name)
