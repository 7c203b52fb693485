"""Reflow as a stateful objective: round 0 is the plain interpolant run, later rounds re-pair with a frozen
snapshot of the EMA model through ModelCoupling, and the teacher and round resume bit for bit."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from genlab.config import ConfigError
from genlab.interpolants import DiffusionBridge
from genlab.training import ReflowObjective, Trainer, build_components, load_checkpoint, load_config, train


class _Crash(RuntimeError):
    pass


def _reflow(tiny, **train_kw):
    return tiny(
        objective={"name": "reflow", "sampler": "euler", "steps": 3, "round_steps": 8},
        model={"hidden": 16, "depth": 1},
        train={"steps": 24, "ckpt_every": 5, "log_every": 4, "warmup": 2, **train_kw},
    )


def test_reflow_rounds_teacher_and_resume(tmp_path, tiny) -> None:
    cfg = _reflow(tiny)
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def keep_ema(trainer: Trainer) -> None:
        if trainer.step in (8, 16):
            snapshots[trainer.step] = {k: v.clone() for k, v in trainer.ema.module.state_dict().items()}

    straight = Trainer(load_config(cfg), tmp_path / "straight", hooks=[keep_ema])
    straight.fit()
    teacher = straight.objective.teacher.state_dict()
    assert straight.objective.round == 2
    for k, v in teacher.items():  # round 2's teacher is the EMA after 16 steps
        assert torch.equal(v, snapshots[16][k]), k
    assert not all(torch.equal(v, snapshots[8][k]) for k, v in teacher.items())

    # round 0 is exactly the interpolant objective; re-pairing changes the losses from round 1 on
    plain = train({**cfg, "objective": {"name": "interpolant"}}, out=tmp_path / "plain")  # same seed
    rl = [r["loss"] for r in straight.history]
    pl = [r["loss"] for r in plain.history]
    assert rl[:2] == pl[:2] and rl[2:] != pl[2:]
    assert [r["round"] for r in straight.history] == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]

    def crash_after_13(trainer: Trainer) -> None:
        if trainer.step == 13:
            raise _Crash

    with pytest.raises(_Crash):
        train(cfg, out=tmp_path / "resumed", hooks=[crash_after_13])
    assert load_checkpoint(tmp_path / "resumed")["objective"]["round"] == 1
    train(cfg, out=tmp_path / "resumed", resume=True)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert a["objective"]["round"] == b["objective"]["round"] == 2
    for part in ("model", "optimizer"):
        assert json.dumps(sorted(a[part])) == json.dumps(sorted(b[part]))
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for k, v in a["objective"]["teacher"].items():
        assert torch.equal(v, b["objective"]["teacher"][k]), k
    for k, v in a["ema"]["weights"].items():
        assert torch.equal(v, b["ema"]["weights"][k]), k


def test_reflow_refuses_what_it_cannot_re_pair(tiny) -> None:
    with pytest.raises(ConfigError, match=r"objective\.rounds"):
        Trainer(load_config(tiny(objective={"name": "reflow", "rounds": 2})), "unused")
    comps = build_components(load_config(tiny()))
    bridge = dataclasses.replace(comps, interpolant=DiffusionBridge("vp"))
    assert bridge.interpolant.conditional_source
    with pytest.raises(ValueError, match="known-source"):
        ReflowObjective(load_config(tiny()), bridge)
    with pytest.raises(ValueError, match="round_steps must be a positive integer"):
        ReflowObjective(load_config(tiny()), build_components(load_config(tiny())), round_steps=0)
