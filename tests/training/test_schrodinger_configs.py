"""The shipped Schrödinger-bridge translation configs (Light SB, DSBM, SB-CFM on moons → 8 Gaussians; Light SB on
digits 0 → 8) train a few steps with the one Trainer, reload, sample with their SDE sampler from held-out
sources, and draw the translation picture that ``genlab sample`` writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.training import load_run, train
from genlab.training.sampling import draw_samples
from genlab.training.translation import is_translation_run, save_translation_picture

ROOT = Path(__file__).resolve().parents[2] / "configs"
NAMES = ("moons_to_8gaussians_lightsb", "moons_to_8gaussians_dsbm", "moons_to_8gaussians_sbcfm",
         "digits_0_to_8_lightsb")


@pytest.mark.parametrize("name", NAMES)
def test_translation_config_trains_samples_and_draws(tmp_path, name: str) -> None:
    overrides = ["train.steps=2", "train.batch_size=16", "train.device=cpu", "logging.progress=false",
                 "logging.stdout=false", "objective.phase_steps=1" if "lightsb" not in name else "train.log_every=1"]
    if "moons" in name:
        overrides += ["data.source.n=200", "data.target.n=200"]
    result = train(ROOT / f"{name}.yaml", out=tmp_path / "run", overrides=overrides)
    assert result.step == 2 and torch.isfinite(torch.tensor(result.loss))
    run = load_run(tmp_path / "run")
    assert is_translation_run(tmp_path / "run") and run.field.kind == "drift_fwd"
    smp = draw_samples(run.field, run.components, sampler=run.config.sample.sampler, steps=3, n=8,
                       return_trajectory=True)
    assert smp.x.shape == (8, *run.components.data_shape) and bool(torch.isfinite(smp.x).all())
    assert smp.x_init is not None and smp.nfe == 3
    pic = save_translation_picture(tmp_path / "run", smp, tmp_path / "t.png")
    assert pic.is_file()
