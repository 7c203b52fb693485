"""Datasets: item formats, DataLoader use, deterministic disjoint splits, paired (x0, x1) construction."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from genlab.data.corruptions import sobel_edges
from genlab.data.datasets import (
    DATASET_NAMES,
    ArrayDataset,
    DigitsDataset,
    EdgeDigits,
    GMMDataset,
    LowResDigits,
    MaskedDigits,
    ToyDataset,
    get_dataset,
    get_split,
    train_test_split,
)
from genlab.data.images import load_digits
from genlab.data.toys import toy


class FakeMixture:
    """Duck-typed stand-in for genlab.analytic.GaussianMixture: two unit Gaussians at +-3 in d = 3."""

    def __init__(self, with_labels: bool = False):
        self.with_labels = with_labels

    def sample(self, n: int, generator: torch.Generator | None = None):
        k = torch.randint(0, 2, (n,), generator=generator)
        x = torch.randn(n, 3, generator=generator) + (6.0 * k - 3.0)[:, None]
        return (x, k) if self.with_labels else x


@pytest.fixture(scope="module")
def digits() -> DigitsDataset:
    return DigitsDataset()


def test_digits_items_and_loader(digits: DigitsDataset) -> None:
    assert len(digits) == 1797
    x1, label = digits[10]
    ref = load_digits()
    assert torch.equal(x1, ref.images[10]) and int(label) == int(ref.labels[10])
    xb, yb = next(iter(DataLoader(digits, batch_size=32, shuffle=False)))
    assert xb.shape == (32, 1, 8, 8) and yb.shape == (32,) and yb.dtype == torch.int64
    assert torch.equal(xb, ref.images[:32])
    only = DigitsDataset(labels=False)
    assert isinstance(only[0], torch.Tensor) and torch.equal(only.extras["label"], ref.labels)


def test_split_disjoint_deterministic(digits: DigitsDataset) -> None:
    s = digits.split(test_fraction=0.25, seed=7)
    assert len(s.test) == round(0.25 * 1797) and len(s.train) + len(s.test) == 1797
    both = torch.cat([s.train_indices, s.test_indices])
    assert torch.equal(torch.sort(both).values, torch.arange(1797))  # disjoint and covering
    assert torch.equal(s.test.tensors[0], digits.tensors[0][s.test_indices])
    assert torch.equal(s.test.tensors[1], digits.tensors[1][s.test_indices])  # labels stay aligned
    again = train_test_split(digits, test_fraction=0.25, seed=7)
    assert torch.equal(again.test_indices, s.test_indices)
    other = digits.split(test_fraction=0.25, seed=8)
    assert not torch.equal(other.test_indices, s.test_indices)
    with pytest.raises(ValueError, match="test_fraction"):
        digits.split(test_fraction=1.0)


def test_toy_dataset_matches_sampler() -> None:
    d = ToyDataset("pinwheel", 300, seed=3)
    assert torch.equal(d.tensors[0], toy("pinwheel", 300, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(d.tensors[0], ToyDataset("pinwheel", 300, seed=4).tensors[0])
    assert d[5].shape == (2,)
    batch = next(iter(DataLoader(d, batch_size=64)))
    assert torch.equal(batch, d.tensors[0][:64])
    s = get_split("moons", n=100, seed=0, test_fraction=0.1, split_seed=1)
    assert len(s.train) == 90 and len(s.test) == 10


def test_gmm_dataset_duck_typed() -> None:
    d = GMMDataset(FakeMixture(), 400, seed=1)
    assert d.tensors[0].shape == (400, 3) and d[0].shape == (3,)
    assert torch.equal(d.tensors[0], GMMDataset(FakeMixture(), 400, seed=1).tensors[0])
    assert not torch.equal(d.tensors[0], GMMDataset(FakeMixture(), 400, seed=2).tensors[0])
    labelled = get_dataset("gmm", mixture=FakeMixture(with_labels=True), n=400, seed=1)
    k = labelled.extras["label"]
    assert torch.allclose(labelled.tensors[0].mean(1)[k == 1], torch.tensor(3.0), atol=2.5)
    split = labelled.split(test_fraction=0.5, seed=0)
    assert torch.equal(split.test.extras["label"], k[split.test_indices])
    with pytest.raises(TypeError, match="sample"):
        GMMDataset(object(), 10)


@pytest.mark.parametrize("kind", ["box", "pixel"])
def test_masked_digits(kind: str) -> None:
    d = MaskedDigits(mask=kind, seed=0)
    x0, x1 = d.tensors
    m = d.extras["mask"]
    assert torch.equal(x0[m == 0], torch.zeros_like(x0[m == 0]))  # removed pixels are 0
    assert torch.equal(x0[m == 1], x1[m == 1])  # kept pixels untouched
    assert torch.equal(x1, load_digits().images)
    if kind == "box":
        assert bool(((1 - m).sum(dim=(1, 2, 3)) == 16).all())  # one 4 x 4 box per 8 x 8 digit
    else:
        assert abs(m.mean().item() - 0.5) < 0.01
    assert torch.equal(m, MaskedDigits(mask=kind, seed=0).extras["mask"])
    assert not torch.equal(m, MaskedDigits(mask=kind, seed=1).extras["mask"])
    a, b = next(iter(DataLoader(d, batch_size=8)))
    assert a.shape == b.shape == (8, 1, 8, 8)


def test_lowres_digits_blocks() -> None:
    for size, factor in ((8, 2), (16, 4)):
        d = LowResDigits(size=size, factor=factor, dtype=torch.float64)
        x0, x1 = d.tensors
        b0 = x0.unfold(2, factor, factor).unfold(3, factor, factor)
        b1 = x1.unfold(2, factor, factor).unfold(3, factor, factor)
        assert torch.equal(b0, b0[..., :1, :1].expand_as(b0))  # x0 constant on pooling blocks
        assert torch.allclose(b0[..., 0, 0], b1.mean(dim=(-1, -2)), atol=1e-12)  # equal to the block means


def test_edge_digits() -> None:
    d = EdgeDigits(size=16, resize="pad")
    x0, x1 = d.tensors
    assert x0.shape == x1.shape == (1797, 1, 16, 16)
    assert torch.equal(x0, sobel_edges(x1))
    assert x0.min() >= -1 and x0.max() <= 1
    # the 4-pixel blank border of the padded digits is flat: no edge more than one pixel away from the ink
    assert bool((x0[..., :3, :] == -1).all()) and bool((x0[..., :, -3:] == -1).all())
    assert bool((x0[..., 3:13, 3:13] > -1).any(dim=(-1, -2)).all())  # every digit has some edge


def test_registry() -> None:
    assert {"moons", "gmm", "digits", "patches", "masked_digits", "lowres_digits", "edges_digits"} <= set(
        DATASET_NAMES
    )
    with pytest.raises(ValueError, match="masked_digits"):
        get_dataset("mnist")
    d = get_dataset("toy", name="checkerboard", n=50, seed=2)
    assert isinstance(d, ArrayDataset) and torch.equal(
        d.tensors[0], ToyDataset("checkerboard", 50, 2).tensors[0]
    )
    p = get_dataset("patches", photos=["coins"], size=32)
    assert p[0].shape == (1, 32, 32) and p.photo_names == ("coins",)
    with pytest.raises(ValueError, match="same first dimension"):
        ArrayDataset(torch.zeros(3, 2), torch.zeros(4), item_names=("x0", "x1"))
