"""Named restoration tasks and `genlab solve` on a trained run (a 2-step digits VP run: wiring, not quality)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import genlab
from genlab.cli import main
from genlab.inverse.tasks import TASKS, make_task, solve_run

pytest.importorskip("matplotlib")


@pytest.mark.parametrize("name", TASKS)
def test_make_task_shapes(name: str) -> None:
    op = make_task(name, (1, 8, 8))
    y = op.A(torch.zeros(2, 1, 8, 8))
    assert y.shape[0] == 2


def test_make_task_errors() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        make_task("inpaint", (1, 8, 8))
    with pytest.raises(ValueError, match="images"):
        make_task("deblur", (16,))
    with pytest.raises(ValueError, match="divisible"):
        make_task("sr4", (1, 6, 6))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("solve") / "run"
    genlab.train(
        "configs/digits_vp.yaml",
        out=run,
        overrides=["train.steps=2", "train.batch_size=16", "train.ckpt_every=2", "train.warmup=0",
                   "model.block_out_channels=[8, 16]", "logging.progress=false", "logging.stdout=false"],
    )
    return run


def test_solve_run_writes_picture_and_tensors(digits_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "solve.png"
    res = solve_run(digits_run, task="inpaint-box", method="dps", n=3, steps=4, out=out)
    assert res.files == [out, out.with_suffix(".pt")] and all(f.is_file() for f in res.files)
    dump = torch.load(out.with_suffix(".pt"), weights_only=True)
    assert dump["samples"].shape == (3, 1, 8, 8) and torch.equal(dump["x"], res.ground_truth)
    with pytest.raises(FileExistsError, match="overwrite"):
        solve_run(digits_run, task="inpaint-box", n=3, steps=4, out=out)
    with pytest.raises(ValueError, match="index"):
        solve_run(digits_run, task="sr2", index=10**6)


def test_cli_solve(digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.png"
    code = main(["solve", "--run", str(digits_run), "--task", "sr2", "--method", "pigdm", "--n", "2", "--steps", "3",
                 "--out", str(out)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == [str(out), str(out.with_suffix(".pt"))] and report["nfe"] > 0


def test_solve_run_with_an_hvae_run(tmp_path: Path) -> None:
    run = tmp_path / "hvae"
    genlab.train("configs/digits_hvae.yaml", out=run,
                 overrides=["train.steps=2", "train.ckpt_every=2", "logging.progress=false", "logging.stdout=false"])
    res = solve_run(run, task="inpaint-random", method="pnp_hvae", n=2, out=tmp_path / "hv.png")
    assert res.result.config["method"] == "pnp_hvae" and res.files[0].is_file()
    with pytest.raises(ValueError, match="pnp_hvae|HVAE|diffusion"):
        solve_run(run, task="inpaint-random", method="dps", n=2)
