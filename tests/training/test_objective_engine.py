"""The training engine: any Objective (several modules, its own state) trains, checkpoints and resumes bit for
bit through the one Trainer; the config's ``objective`` section; format-1 checkpoints still resume."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import nn

from genlab.config import ConfigError
from genlab.couplings import unpack_target
from genlab.models import Field, TimeMLP
from genlab.training import (
    InterpolantObjective,
    LossOutput,
    Objective,
    ObjectiveBase,
    RunConfig,
    Trainer,
    build_components,
    checkpoint_key,
    load_checkpoint,
    load_config,
    load_run,
    register_objective,
    save_checkpoint,
    train,
)


class _Crash(RuntimeError):
    pass


class TwoNets(ObjectiveBase):
    """A toy stateful objective: two networks trained in alternation, the ``round`` counter (advanced every
    ``period`` loss calls) picks which one; the frozen other one shifts the target, and a running sum of the
    batches seen is kept as cached state."""

    def __init__(self, config: RunConfig, components: Any, *, period: int = 3) -> None:
        self.config, self.components, self.period = config, components, period
        self.fwd = components.net
        self.bwd = TimeMLP(2, hidden=16, depth=1)  # drawn from the global generator the Trainer seeds
        self.round, self.calls = 0, 0
        self.seen = torch.zeros(2, dtype=torch.float64)

    def modules(self) -> dict[str, nn.Module]:
        return {"fwd": self.fwd, "bwd": self.bwd}

    def loss(self, batch: Any, *, step: int, generator: torch.Generator | None) -> LossOutput:
        x1 = unpack_target(batch, coupling="toy")
        name, other = ("fwd", "bwd") if self.round % 2 == 0 else ("bwd", "fwd")
        x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
        t = torch.rand(x1.shape[0], generator=generator, dtype=x1.dtype)
        x_t = (1 - t[:, None]) * x0 + t[:, None] * x1
        with torch.no_grad():
            shift = self.module(other)(x_t, t)
        pred = self.module(name)(x_t, t)
        loss = (pred - (x1 - x0) - 0.1 * shift).pow(2).mean()
        self.seen += x1.double().sum(0)
        self.calls += 1
        if self.calls % self.period == 0:
            self.round += 1
        return LossOutput(
            loss=loss, batch_size=x1.shape[0], trained=(name,), logs={"round": float(self.round)}
        )

    def fields(self, *, ema: bool = True) -> dict[str, Field]:
        net = self.module("fwd", ema=True) if ema else self.fwd
        return {"fwd": Field(net, self.components.interpolant, "velocity")}

    def state_dict(self) -> dict[str, Any]:
        return {"round": self.round, "calls": self.calls, "seen": self.seen.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.round, self.calls = int(state["round"]), int(state["calls"])
        self.seen = state["seen"].clone()


register_objective("toy_two_nets", TwoNets, overwrite=True)


def _tensors(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(_tensors(v, f"{prefix}/{i}"))
    else:
        out[prefix] = obj
    return out


def _same(a: Any, b: Any) -> bool:
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def _toy(tiny, **train_kw: Any) -> dict[str, Any]:
    return tiny(
        objective={"name": "toy_two_nets", "period": 3},
        model={"hidden": 16, "depth": 1},
        train={"steps": 20, "ckpt_every": 5, "log_every": 5, "warmup": 2, **train_kw},
    )


def test_two_network_objective_resumes_bit_for_bit(tmp_path, tiny) -> None:
    cfg = _toy(tiny)
    straight = Trainer(load_config(cfg), tmp_path / "straight")
    init = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in straight.nets.items()}
    straight.fit()

    def crash_after_13(trainer: Trainer) -> None:
        if trainer.step == 13:  # killed between two checkpoints, inside a "bwd" round
            raise _Crash

    with pytest.raises(_Crash):
        Trainer(load_config(cfg), tmp_path / "resumed", hooks=[crash_after_13]).fit()
    assert load_checkpoint(tmp_path / "resumed")["step"] == 10
    resumed = Trainer(load_config(cfg), tmp_path / "resumed")
    resumed.fit(resume=True)
    assert straight.step == resumed.step == 20

    # in memory: parameters, EMAs, optimiser states and the objective's own state
    for name in ("fwd", "bwd"):
        for (ka, va), (kb, vb) in zip(
            straight.nets[name].state_dict().items(), resumed.nets[name].state_dict().items(), strict=True
        ):
            assert ka == kb and torch.equal(va, vb), (name, ka)
        for va, vb in zip(
            straight.emas[name].module.parameters(), resumed.emas[name].module.parameters(), strict=True
        ):
            assert torch.equal(va, vb), name
    sa, sb = straight.objective.state_dict(), resumed.objective.state_dict()
    assert sa["round"] == sb["round"] == 6 and sa["calls"] == sb["calls"] == 20
    assert torch.equal(sa["seen"], sb["seen"])

    # on disk: every entry of the two final checkpoints, under keys named by the module
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert a["modules"] == ["fwd", "bwd"] and a["format"] == 2
    keys = [checkpoint_key(e, m) for e in ("model", "ema", "optimizer", "scheduler") for m in ("fwd", "bwd")]
    assert set(keys) <= set(a) and "model" not in a
    ta, tb = (
        _tensors({k: a[k] for k in [*keys, "objective", "rng"]}),
        _tensors({k: b[k] for k in [*keys, "objective", "rng"]}),
    )
    assert ta.keys() == tb.keys() and len(ta) > 30
    for key in ta:
        assert _same(ta[key], tb[key]), key

    # both networks trained, each only in its own rounds: 20 steps in rounds of 3 → fwd 11 steps, bwd 9
    assert a["ema.fwd"]["step"] == 11 and a["ema.bwd"]["step"] == 9
    assert a["scheduler.fwd"]["last_epoch"] == 11 and a["scheduler.bwd"]["last_epoch"] == 9
    for name in ("fwd", "bwd"):
        assert not torch.equal(init[name]["net.0.weight"], a[checkpoint_key("model", name)]["net.0.weight"])

    # the round is logged, and the run loads back through the objective (its primary Field, EMA weights)
    assert [r["round"] for r in straight.history] == [1.0, 3.0, 5.0, 6.0]
    run = load_run(tmp_path / "resumed")
    x, t = torch.randn(8, 2), torch.full((8,), 0.5)
    torch.testing.assert_close(run.field(x, t), straight.ema_field()(x, t), rtol=0, atol=0)
    assert run.objective is not None and run.objective.state_dict()["round"] == 6


def test_a_stateful_objective_without_its_state_diverges(tmp_path, tiny) -> None:
    # the check above can fail: dropping the objective's state on resume changes the trained weights
    cfg = _toy(tiny, steps=10)
    train(cfg, out=tmp_path / "straight")
    with pytest.raises(_Crash):

        def crash(trainer: Trainer) -> None:
            if trainer.step == 6:
                raise _Crash

        train(cfg, out=tmp_path / "lost", hooks=[crash])
    path = tmp_path / "lost" / "checkpoints" / "ckpt_00000005.pt"
    state = load_checkpoint(path)
    state["objective"] = {"round": 0, "calls": 0, "seen": torch.zeros(2, dtype=torch.float64)}
    save_checkpoint(path, state)
    train(cfg, out=tmp_path / "lost", resume=True)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "lost")
    assert not torch.equal(a["model.bwd"]["net.0.weight"], b["model.bwd"]["net.0.weight"])


def test_objective_instance_and_factory_are_accepted(tmp_path, tiny) -> None:
    cfg = load_config(tiny(train={"steps": 2, "ckpt_every": 0}))
    comps_seen: list[Any] = []

    def factory(config: RunConfig, components: Any) -> InterpolantObjective:
        comps_seen.append(components)
        return InterpolantObjective(config, components)

    trainer = Trainer(cfg, tmp_path / "f", objective=factory)
    assert comps_seen == [trainer.components] and isinstance(trainer.objective, Objective)
    assert list(trainer.nets) == ["model"] and trainer.net is trainer.components.net
    with pytest.raises(TypeError, match="Objective protocol"):
        Trainer(cfg, tmp_path / "g", objective=object())  # type: ignore[arg-type]

    class Frozen(InterpolantObjective):
        def modules(self) -> dict[str, nn.Module]:
            return {"model": self.components.net.requires_grad_(False)}

    with pytest.raises(ValueError, match="no trainable parameters"):
        Trainer(cfg, tmp_path / "h", objective=Frozen)


def test_config_objective_section_is_strict(tiny) -> None:
    cfg = load_config(tiny())
    assert cfg.objective.name == "interpolant" and cfg.to_dict()["objective"] == {"name": "interpolant"}
    assert load_config(tiny(objective={"name": "toy_two_nets", "period": 4})).objective.kwargs == {
        "period": 4
    }
    with pytest.raises(ConfigError, match=r"objective\.name: unknown objective 'nope'"):
        Trainer(load_config(tiny(objective={"name": "nope"})), "unused")
    with pytest.raises(ConfigError, match=r"objective\.bogus"):
        Trainer(load_config(tiny(objective={"name": "interpolant", "bogus": 1})), "unused")
    with pytest.raises(ConfigError, match=r"objective\.periodd"):
        Trainer(load_config(tiny(objective={"name": "toy_two_nets", "periodd": 4})), "unused")


def test_format_1_checkpoints_still_resume(tmp_path, tiny) -> None:
    cfg = tiny(train={"steps": 20, "ckpt_every": 10})
    straight = train(cfg, out=tmp_path / "straight")
    with pytest.raises(_Crash):

        def crash(trainer: Trainer) -> None:
            if trainer.step == 12:
                raise _Crash

        train(cfg, out=tmp_path / "old", hooks=[crash])
    path = tmp_path / "old" / "checkpoints" / "ckpt_00000010.pt"
    state = load_checkpoint(path)  # rewrite as the one-network layout of format 1
    for key in ("modules", "objective"):
        del state[key]
    state["format"] = 1
    del state["config"]["objective"]
    save_checkpoint(path, state)
    resumed = train(cfg, out=tmp_path / "old", resume=True)
    assert resumed.loss == straight.loss
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "old")
    assert torch.equal(a["model"]["net.0.weight"], b["model"]["net.0.weight"])


def test_edm_preconditioning_lives_on_the_field(tiny) -> None:
    cfg = load_config(
        tiny(interpolant={"name": "ve"}, model={"kind": "x1", "precond": "edm", "sigma_data": 0.6})
    )
    comps = build_components(cfg)
    field = InterpolantObjective(cfg, comps).fields(ema=False)["model"]
    assert field.net is comps.net and field.precond is not None  # the raw network; EDM enters as precond
    from genlab.models.precond import EDMPreconditioner

    x, t = torch.randn(5, 2), torch.linspace(0.1, 0.9, 5)
    torch.testing.assert_close(
        field(x, t), EDMPreconditioner(comps.net, comps.interpolant, sigma_data=0.6)(x, t), rtol=0, atol=0
    )
