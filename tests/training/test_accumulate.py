"""Gradient accumulation: k micro-batches give the optimiser step of the concatenated batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.training import load_config
from genlab.training.accumulate import split_batch
from genlab.training.config import ConfigError
from genlab.training.objective import LossOutput
from genlab.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "moons_tiny.yaml"


class _Regression:
    """A deterministic objective (no random draws): loss = mean over items of |net(x, t(x)) − target(x)|²."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net
        self.train_net: torch.nn.Module = net

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"net": self.net}

    def bind(self, *, train, ema, autocast) -> None:
        self.train_net = train["net"]

    def loss(self, batch, *, step, generator) -> LossOutput:
        x = batch
        t = torch.sigmoid(x[:, 0])
        err = self.train_net(x, t) - torch.stack([x[:, 1] ** 2, torch.sin(3 * x[:, 0])], 1)
        return LossOutput(loss=err.pow(2).sum(1).mean(), batch_size=x.shape[0])

    def fields(self, ema: bool) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state) -> None:
        pass


def _trainer(tmp_path: Path, accumulate: int, name: str) -> Trainer:
    cfg = load_config(TINY, overrides=[f"train.accumulate={accumulate}", "train.batch_size=12"])
    return Trainer(cfg, tmp_path / name, objective=lambda c, comp: _Regression(comp.net))


def test_split_batch_sizes_weights_and_structure() -> None:
    x, y = torch.arange(10.0), torch.arange(10.0) * 2
    parts = split_batch((x, {"y": y, "flag": None}), 3)
    assert [len(p[0][0]) for p in parts] == [4, 3, 3]
    assert sum(w for _, w in parts) == pytest.approx(1.0)
    assert torch.equal(torch.cat([p[0][1]["y"] for p in parts]), y) and parts[2][0][1]["flag"] is None
    with pytest.raises(ValueError, match="accumulate"):
        split_batch(x, 11)


@pytest.mark.parametrize("k", [2, 5])
def test_accumulated_step_equals_the_step_on_the_whole_batch(tmp_path: Path, k: int) -> None:
    whole, accum = _trainer(tmp_path, 1, "a"), _trainer(tmp_path, k, "b")
    for p, q in zip(whole.net.parameters(), accum.net.parameters()):
        assert torch.equal(p, q)  # same seed, same initial weights
    batch = torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
    for _ in range(3):  # several AdamW steps (with clipping at 1.0 on the global norm of the summed gradient)
        loss_a, norm_a = whole.train_step(batch)
        loss_b, norm_b = accum.train_step(batch)
        assert loss_b == pytest.approx(loss_a, rel=1e-5)
        assert norm_b == pytest.approx(norm_a, rel=1e-5)
    for p, q in zip(whole.net.parameters(), accum.net.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    # the test can fail: training on the first micro-batch alone (same 3 steps) ends elsewhere
    alone = _trainer(tmp_path, 1, "c")
    for _ in range(3):
        alone.train_step(batch[: 12 // k])
    assert not all(torch.allclose(p, q, atol=1e-6) for p, q in zip(alone.net.parameters(), accum.net.parameters()))


def test_accumulate_is_validated() -> None:
    with pytest.raises(ConfigError, match="accumulate"):
        load_config(TINY, overrides=["train.accumulate=0"])
    with pytest.raises(ConfigError, match="accumulate"):
        load_config(TINY, overrides=["train.accumulate=200"])


@pytest.mark.slow
def test_compiled_trainer_takes_the_same_steps(tmp_path: Path) -> None:
    """``train.compile: true`` wraps the trained modules in torch.compile; the steps are those of eager mode."""
    eager = _trainer(tmp_path, 1, "eager")
    cfg = load_config(TINY, overrides=["train.compile=true", "train.batch_size=12"])
    compiled = Trainer(cfg, tmp_path / "compiled", objective=lambda c, comp: _Regression(comp.net))
    assert type(compiled.prepared["net"]).__name__ == "OptimizedModule"
    batch = torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        assert compiled.train_step(batch)[0] == pytest.approx(eager.train_step(batch)[0], rel=1e-5)
    for p, q in zip(eager.net.parameters(), compiled.net.parameters()):
        assert torch.allclose(p, q, atol=1e-5)
    key = next(k for k in eager.state_dict() if k.startswith("model"))
    assert set(compiled.state_dict()[key]) == set(eager.state_dict()[key])  # no "_orig_mod." prefixes
