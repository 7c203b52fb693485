"""solve(..., picture=) writes measurement | samples | posterior mean/std | ground truth and names the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.interpolants import VPDiffusion
from genlab.inverse import DiffusionPrior, InverseProblem, solve
from genlab.inverse.operators import Inpainting
from genlab.inverse.pictures import measurement_image, save_solve_picture
from genlab.inverse.testing import gaussian_problem

pytest.importorskip("matplotlib")


def test_solve_writes_its_picture_vectors(tmp_path: Path) -> None:
    for d in (2, 6):
        gp = gaussian_problem(d, 1, 0, sigma=0.4)
        prior = DiffusionPrior.from_gmm(gp.prior, VPDiffusion())
        out = tmp_path / f"solve{d}.png"
        res = solve(gp.problem, prior, "dps", steps=5, n_samples=16, seed=0, picture=out, ground_truth=gp.x_star)
        assert res.files == [out] and out.stat().st_size > 1000


def test_image_picture_rows(tmp_path: Path) -> None:
    x = torch.rand(1, 1, 6, 6) * 2 - 1
    mask = (torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    problem = InverseProblem(Inpainting(mask), Inpainting(mask).A(x), sigma=0.0)
    shown = measurement_image(problem)
    assert shown is not None and torch.equal(shown, x * mask)
    samples = x + 0.1 * torch.randn(5, 1, 6, 6)
    path = save_solve_picture(samples, problem, tmp_path / "img.png", ground_truth=x[0])
    assert path.is_file()
    with pytest.raises(ValueError, match="samples must have shape"):
        save_solve_picture(samples[:, :, :3], problem, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="picture must be a .png"):
        solve(problem, None, "dps", picture=tmp_path / "x.jpg")
