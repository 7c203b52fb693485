"""Light SB as a registered objective (Korotin et al. ICLR'24, eq. 14): ``objective: light_sb`` trains the
mixture potential with the one Trainer on unpaired (x0, x1) rows, resumes bit for bit, its loss is exactly the
paper's objective, ``genlab sample`` integrates the closed-form drift Field with an SDE sampler and draws the
translation picture; bad configs are refused with the fix; the unpaired data set pairs two sets independently."""

from __future__ import annotations

import json
import math

import pytest
import torch

from genlab.data import get_dataset
from genlab.models import LightSB
from genlab.training import Trainer, load_checkpoint, load_config, load_run, sample_run, train
from genlab.training.translation import is_translation_run, save_translation_picture, translation_grid

EPS = 0.1


class _Crash(RuntimeError):
    pass


def _cfg(tiny, **over):
    cfg = tiny(
        data={"name": "unpaired", "source": {"name": "moons", "n": 400}, "target": {"name": "eight_gaussians",
                                                                                    "n": 400}},
        interpolant={"name": "brownian_bridge", "sigma": math.sqrt(EPS)},
        coupling={"name": "paired"},
        model={"name": "light_sb", "kind": "drift_fwd", "eps": EPS / 2, "n_components": 8, "s_init": 0.1,
               "hidden": None, "depth": None},
        objective={"name": "light_sb"},
        train={"steps": 24, "ckpt_every": 5, "log_every": 4, "lr": 1e-2, "grad_clip": None, "ema_decay": 0.0,
               "warmup": 0, "schedule": "constant"},
        sample={"sampler": "euler_maruyama", "steps": 10, "n": 64},
    )
    for key, value in over.items():
        cfg[key] = {**cfg[key], **value}
    return cfg


def _clean(cfg):
    for key, value in list(cfg["model"].items()):
        if value is None:
            cfg["model"].pop(key)
    cfg["interpolant"] = {k: v for k, v in cfg["interpolant"].items() if v is not None}
    return cfg


def test_unpaired_dataset_rows_are_two_independent_sets() -> None:
    d = get_dataset("unpaired", source={"name": "moons", "n": 300}, target={"name": "eight_gaussians", "n": 500})
    assert d.item_names == ("x0", "x1") and len(d) == 300
    moons = get_dataset("moons", n=300).tensors[0]
    assert torch.equal(torch.sort(d.tensors[0][:, 0]).values, torch.sort(moons[:, 0]).values)  # a permutation
    digits = get_dataset("unpaired", source={"name": "digits", "classes": [0]}, target={"name": "digits",
                                                                                       "classes": [8]})
    assert digits.tensors[0].shape[1:] == (1, 8, 8)
    with pytest.raises(ValueError, match="classes"):
        get_dataset("unpaired", source={"name": "moons", "n": 10, "classes": [1]}, target={"name": "moons", "n": 10})
    with pytest.raises(ValueError, match="same shape"):
        get_dataset("unpaired", source={"name": "moons", "n": 10}, target={"name": "digits"})


def test_loss_is_the_papers_objective_and_trains(tmp_path, tiny) -> None:
    cfg = _clean(_cfg(tiny))
    res = train(cfg, out=tmp_path / "run")
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    run = load_run(tmp_path / "run")
    model = run.field.net.model
    assert isinstance(model, LightSB) and model.eps == pytest.approx(EPS) and model.n_components == 8
    assert run.field.kind == "drift_fwd" and run.field.eps == pytest.approx(EPS / 2)
    # the objective's loss on a batch is mean log c(x0) − mean log v(x1) of that batch
    batch = run.components.split.train[:32]
    out = run.objective.loss(batch, step=0, generator=None)
    x0, x1 = batch
    torch.testing.assert_close(out.loss, model.log_c(x0).mean() - model.log_v(x1).mean())


def test_light_sb_resume_bit_exact_and_sample_picture(tmp_path, tiny) -> None:
    cfg = _clean(_cfg(tiny))
    train(cfg, out=tmp_path / "straight")

    def crash_after_13(trainer: Trainer) -> None:
        if trainer.step == 13:
            raise _Crash

    with pytest.raises(_Crash):
        train(cfg, out=tmp_path / "resumed", hooks=[crash_after_13])
    train(cfg, out=tmp_path / "resumed", resume=True)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert json.dumps(sorted(a["model.model"] if "model.model" in a else a["model"])) == json.dumps(
        sorted(b["model.model"] if "model.model" in b else b["model"]))
    wa = a["model.model"] if "model.model" in a else a["model"]
    wb = b["model.model"] if "model.model" in b else b["model"]
    for k, v in wa.items():
        assert torch.equal(v, wb[k]), k
    # genlab sample: Euler–Maruyama on the drift Field from held-out sources; translation picture
    assert is_translation_run(tmp_path / "straight")
    res = sample_run(tmp_path / "straight", out=tmp_path / "s.png", return_trajectory=True)
    assert res.samples.nfe == 10 and res.samples.x.shape == (64, 2)
    assert res.samples.trajectory.shape == (11, 64, 2)
    pic = save_translation_picture(tmp_path / "straight", res.samples, tmp_path / "t.png")
    assert pic.is_file() and pic.stat().st_size > 1000


def test_translation_grid_order() -> None:
    src, out = torch.zeros(8, 1, 2, 2), torch.ones(8, 1, 2, 2)
    grid = translation_grid(src, out, per_row=4, rows=2)
    assert [float(g.mean()) for g in grid] == [0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4
    with pytest.raises(ValueError, match="alike"):
        translation_grid(src, out[:4])


def test_bad_configs(tiny) -> None:
    with pytest.raises(ValueError, match="light_sb"):
        Trainer(load_config(_clean(_cfg(tiny, model={"name": "mlp", "hidden": 8, "n_components": None, "s_init": None}))), "x")
    with pytest.raises(ValueError, match="model.eps"):
        Trainer(load_config(_clean(_cfg(tiny, model={"eps": 0.5}))), "x")
    with pytest.raises(ValueError, match=r"model.dim=3 .* set model.dim: 2"):
        Trainer(load_config(_clean(_cfg(tiny, model={"dim": 3}))), "x")
    with pytest.raises(ValueError, match="n_components"):
        Trainer(load_config(_clean(_cfg(tiny, model={"n_components": 0}))), "x")
    with pytest.raises(ValueError, match="brownian_bridge"):
        Trainer(load_config(_clean(_cfg(tiny, interpolant={"name": "rectified_flow", "sigma": None}))), "x")
