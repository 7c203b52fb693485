"""scikit-learn digits and scikit-image photo patches: exact values, resizing, cutting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.data.images import GRAY_PHOTOS, RGB_PHOTOS, load_digits, photo_patches


@pytest.fixture(scope="module")
def sk_digits():
    from sklearn.datasets import load_digits as sk_load

    return sk_load()


def test_digits_values_and_labels(sk_digits) -> None:
    d = load_digits()
    assert d.images.shape == (1797, 1, 8, 8) and d.images.dtype == torch.float32
    assert d.labels.shape == (1797,) and d.labels.dtype == torch.int64
    expected = torch.from_numpy(sk_digits.images).float().unsqueeze(1) / 8 - 1
    assert torch.equal(d.images, expected)
    assert torch.equal(d.labels, torch.from_numpy(sk_digits.target).long())
    assert d.images.min() == -1 and d.images.max() == 1
    # 17 grey levels k/8 - 1
    assert torch.equal(d.images, torch.round((d.images + 1) * 8) / 8 - 1)


def test_digits_16_nearest_and_pad() -> None:
    x8 = load_digits(dtype=torch.float64).images
    near = load_digits(size=16, resize="nearest", dtype=torch.float64).images
    assert near.shape == (1797, 1, 16, 16)
    for di in (0, 1):
        for dj in (0, 1):
            assert torch.equal(near[..., di::2, dj::2], x8)
    pad = load_digits(size=16, resize="pad", dtype=torch.float64).images
    assert torch.equal(pad[..., 4:12, 4:12], x8)
    border = torch.ones(16, 16, dtype=torch.bool)
    border[4:12, 4:12] = False
    assert bool((pad[..., border] == -1).all())


def test_digits_16_bilinear_weights() -> None:
    x8 = load_digits(dtype=torch.float64).images
    up = load_digits(size=16, resize="bilinear", dtype=torch.float64).images
    assert up.min() >= -1 and up.max() <= 1
    # align_corners=False, scale 2: output (2i+1, 2j+1) sits at source (i + 1/4, j + 1/4)
    i, j = 3, 4
    want = (
        0.5625 * x8[..., i, j]
        + 0.1875 * x8[..., i + 1, j]
        + 0.1875 * x8[..., i, j + 1]
        + 0.0625 * x8[..., i + 1, j + 1]
    )
    assert torch.allclose(up[..., 2 * i + 1, 2 * j + 1], want, atol=1e-12)


def test_patches_content_and_grid() -> None:
    import skimage.data

    p = photo_patches(photos=["camera"], size=32)
    assert p.images.shape == (256, 1, 32, 32)  # 512 x 512 tiled without overlap
    assert p.names == ("camera",) and bool((p.photo == 0).all())
    cam = torch.from_numpy(skimage.data.camera().astype(np.float64) / 255.0) * 2 - 1
    for k in (0, 17, 255):
        r, c = p.origin[k].tolist()
        assert r % 32 == 0 and c % 32 == 0
        assert torch.allclose(p.images[k, 0].double(), cam[r : r + 32, c : c + 32], atol=1e-6)
    assert len({tuple(o) for o in p.origin.tolist()}) == 256
    q = photo_patches(photos=["camera"], size=32, stride=16)
    assert q.images.shape[0] == 31 * 31
    assert torch.equal(photo_patches(photos=["camera"], size=32).images, p.images)


def test_patches_rgb_and_scale() -> None:
    p = photo_patches(photos=["astronaut"], channels=3, size=32)
    assert p.images.shape == (256, 3, 32, 32)
    assert p.images.min() >= -1 and p.images.max() <= 1
    assert not torch.allclose(p.images[:, 0], p.images[:, 1])  # real colour, not replicated grey
    half = photo_patches(photos=["astronaut"], channels=3, size=32, scale=0.5)
    assert half.images.shape == (64, 3, 32, 32)
    default = photo_patches(channels=3)
    assert default.names == RGB_PHOTOS


def test_patches_bad_input() -> None:
    with pytest.raises(ValueError, match="greyscale"):
        photo_patches(photos=[GRAY_PHOTOS[0]], channels=3)
    with pytest.raises(ValueError, match="unknown"):
        photo_patches(photos=["lena"])
    with pytest.raises(ValueError, match="channels"):
        photo_patches(channels=2)
    with pytest.raises(ValueError, match="size"):
        load_digits(size=12)
