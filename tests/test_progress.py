"""Progress bars: auto (TTY, rank 0), forced, off; composed with a user's callback; written by sample/solve/eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import genlab
from genlab.interpolants import VPDiffusion
from genlab.inverse import DiffusionPrior, solve
from genlab.inverse.testing import gaussian_problem
from genlab.progress import ProgressBar, progress_enabled, track


def test_progress_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert progress_enabled(True) and not progress_enabled(False)
    monkeypatch.setenv("RANK", "1")
    assert not progress_enabled(None)  # never on a worker rank
    with pytest.raises(TypeError, match="progress"):
        progress_enabled("yes")  # type: ignore[arg-type]


def test_bar_composes_with_user_callback(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[int] = []
    with ProgressBar(3, desc="unit", progress=True, then=seen.append) as bar:
        for i in range(3):
            bar.callback()(i)
    assert seen == [0, 1, 2]
    assert "unit" in capsys.readouterr().err
    assert ProgressBar(3, progress=False).callback() is None
    assert list(track(range(4), progress=False)) == [0, 1, 2, 3]


def test_solve_shows_a_bar_and_keeps_the_callback(capsys: pytest.CaptureFixture[str]) -> None:
    gp = gaussian_problem(4, 2, 0, sigma=0.5)
    prior = DiffusionPrior.from_gmm(gp.prior, VPDiffusion())
    steps: list[object] = []
    a = solve(gp.problem, prior, "pigdm", steps=6, n_samples=4, seed=0, progress=True, callback=steps.append)
    assert len(steps) == 6 and "solving (pigdm)" in capsys.readouterr().err
    b = solve(gp.problem, prior, "pigdm", steps=6, n_samples=4, seed=0, progress=False)
    assert torch.equal(a.samples, b.samples)  # the bar changes nothing


def test_eval_writes_curve_and_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    genlab.train("configs/moons_tiny.yaml", out=run, overrides=["train.steps=4", "train.log_every=2",
                                                               "train.ckpt_every=4"])
    res = genlab.training.evaluate(run, n=64, metrics=["sw"], seeds=2, progress=True)
    assert res.files == [run / "eval_samples.png", run / "eval_loss.png"] and all(f.is_file() for f in res.files)
    assert json.loads((run / "eval.json").read_text())["files"] == [str(f) for f in res.files]
    assert "evaluating" in capsys.readouterr().err
    out = tmp_path / "s.png"
    genlab.training.sample_run(run, out=out, n=16, progress=True)
    assert "sampling (euler)" in capsys.readouterr().err


def test_genlab_sample_shows_a_bar(capsys: pytest.CaptureFixture[str]) -> None:
    from genlab.analytic import GaussianMixture, exact_field

    field = exact_field(VPDiffusion(), "gaussian", GaussianMixture(torch.zeros(1, 2), 1.0), kind="noise")
    a = genlab.sample(field, sampler="dpmpp_2m", steps=5, n=8, shape=(2,), seed=0, progress=True)
    assert "sampling (dpmpp_2m)" in capsys.readouterr().err
    b = genlab.sample(field, sampler="dpmpp_2m", steps=5, n=8, shape=(2,), seed=0, progress=False)
    assert torch.equal(a.x, b.x) and capsys.readouterr().err == ""
