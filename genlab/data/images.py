"""Small image data that ships with scikit-learn and scikit-image (nothing is downloaded).

* :func:`load_digits`: scikit-learn's 1797 handwritten digits (8×8, 17 grey levels, UCI "optdigits" test
  set), scaled to ``[-1, 1]`` as ``(N, 1, 8, 8)`` tensors, optionally brought to 16×16.
* :func:`photo_patches`: square patches cut on a regular grid from the photographs bundled with
  scikit-image (``skimage.data``), scaled to ``[-1, 1]`` as ``(N, C, size, size)``.

Both are deterministic: the same arguments always give the same tensors in the same order.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "GRAY_PHOTOS",
    "RGB_PHOTOS",
    "LabeledImages",
    "PhotoPatches",
    "load_digits",
    "photo_patches",
]

#: Greyscale photographs bundled with scikit-image (``skimage.data.<name>()``).
GRAY_PHOTOS: tuple[str, ...] = ("camera", "coins", "moon", "page", "text", "brick", "grass", "gravel")
#: RGB photographs bundled with scikit-image (``skimage.data.<name>()``).
RGB_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
)


@dataclass(frozen=True)
class LabeledImages:
    """Images with integer class labels.

    Attributes:
        images: ``(N, C, H, W)`` floats in ``[-1, 1]``.
        labels: ``(N,)`` int64 class labels.
    """

    images: Tensor
    labels: Tensor


@dataclass(frozen=True)
class PhotoPatches:
    """Patches cut from bundled photographs.

    Attributes:
        images: ``(N, C, size, size)`` floats in ``[-1, 1]``.
        photo: ``(N,)`` int64 index into ``names`` of the photo each patch comes from.
        origin: ``(N, 2)`` int64 ``(row, col)`` of each patch's top-left pixel in the (rescaled) photo.
        names: Photo names, in the order they were cut.
    """

    images: Tensor
    photo: Tensor
    origin: Tensor
    names: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """The scikit-learn digits as read-only arrays (cached: the file content never changes)."""
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = np.ascontiguousarray(bunch.images, dtype=np.float64)
    labels = np.ascontiguousarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits(
    *,
    size: Literal[8, 16] = 8,
    resize: Literal["bilinear", "nearest", "pad"] = "bilinear",
    dtype: torch.dtype = torch.float32,
) -> LabeledImages:
    """scikit-learn's 8×8 digits as ``[-1, 1]`` tensors with their labels.

    Pixel values ``v ∈ {0, …, 16}`` map to ``v/8 − 1`` (0 → −1 background, 16 → +1 ink).

    Args:
        size: 8 (native) or 16.
        resize: How to reach 16×16: ``"bilinear"`` (``F.interpolate``, ``align_corners=False``; a convex
            combination, so values stay in ``[-1, 1]``), ``"nearest"`` (each pixel becomes a 2×2 block) or
            ``"pad"`` (4 pixels of background −1 on every side). Ignored when ``size=8``.
        dtype: Floating dtype of the images.

    Returns:
        :class:`LabeledImages` with ``images`` of shape ``(1797, 1, size, size)`` and ``labels`` ``(1797,)``.
    """
    if size not in (8, 16):
        raise ValueError(f"load_digits: size must be 8 or 16; got {size!r}")
    if resize not in ("bilinear", "nearest", "pad"):
        raise ValueError(f"load_digits: resize must be 'bilinear', 'nearest' or 'pad'; got {resize!r}")
    if not dtype.is_floating_point:
        raise TypeError(f"load_digits: dtype must be a floating dtype; got {dtype}")
    raw, labels = _digits_raw()
    x = torch.from_numpy(raw.copy()).unsqueeze(1) / 8.0 - 1.0
    if size == 16:
        if resize == "pad":
            x = F.pad(x, (4, 4, 4, 4), value=-1.0)
        elif resize == "nearest":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        else:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    return LabeledImages(images=x.to(dtype), labels=torch.from_numpy(labels.copy()))


def _load_photo(name: str, channels: int) -> np.ndarray:
    """A bundled photo as float64 ``(H, W, channels)`` in ``[0, 1]``."""
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    img = img_as_float(getattr(skimage.data, name)())
    if img.ndim == 2:
        if channels == 3:
            raise ValueError(
                f"photo_patches: photo {name!r} is greyscale but channels=3; use an RGB photo "
                f"({', '.join(RGB_PHOTOS)}) or channels=1"
            )
        return img[:, :, None]
    if channels == 1:
        return rgb2gray(img[:, :, :3])[:, :, None]
    return img[:, :, :3]


def photo_patches(
    *,
    photos: Sequence[str] | None = None,
    size: int = 32,
    channels: Literal[1, 3] = 1,
    stride: int | None = None,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> PhotoPatches:
    """Square patches cut on a regular grid from scikit-image's bundled photographs.

    Each photo (optionally rescaled by ``scale`` with anti-aliasing) is tiled row-major with patches of side
    ``size`` whose top-left corners are ``(i·stride, j·stride)``; patches that would cross the border are
    dropped. With the default ``stride = size`` the patches do not overlap, so a random train/test split of
    them does not leak pixels. Values ``[0, 1] → [-1, 1]``; RGB photos become grey with ``rgb2gray`` when
    ``channels=1``.

    Args:
        photos: Names of ``skimage.data`` photos; default :data:`GRAY_PHOTOS` + :data:`RGB_PHOTOS` for
            ``channels=1`` and :data:`RGB_PHOTOS` for ``channels=3``.
        size: Patch side in pixels.
        channels: 1 (greyscale) or 3 (RGB).
        stride: Grid step in pixels (default ``size``).
        scale: Rescale factor applied to each photo before cutting (``< 1`` gives patches with more content).
        dtype: Floating dtype of the patches.

    Returns:
        :class:`PhotoPatches` with ``images`` of shape ``(N, channels, size, size)``.
    """
    if channels not in (1, 3):
        raise ValueError(f"photo_patches: channels must be 1 or 3; got {channels!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"photo_patches: size must be a positive int; got {size!r}")
    stride = size if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"photo_patches: stride must be a positive int; got {stride!r}")
    if not (isinstance(scale, (int, float)) and 0 < scale <= 1):
        raise ValueError(f"photo_patches: scale must be in (0, 1]; got {scale!r}")
    if not dtype.is_floating_point:
        raise TypeError(f"photo_patches: dtype must be a floating dtype; got {dtype}")
    if photos is None:
        names = RGB_PHOTOS if channels == 3 else GRAY_PHOTOS + RGB_PHOTOS
    else:
        names = tuple(photos)
        allowed = GRAY_PHOTOS + RGB_PHOTOS
        unknown = [p for p in names if p not in allowed]
        if unknown or not names:
            raise ValueError(
                f"photo_patches: unknown or empty photos {unknown or list(names)!r}; choose from {', '.join(allowed)}"
            )

    patches: list[Tensor] = []
    photo_idx: list[int] = []
    origins: list[tuple[int, int]] = []
    for k, name in enumerate(names):
        img = _load_photo(name, channels)
        if scale != 1.0:
            from skimage.transform import rescale

            img = np.clip(rescale(img, scale, anti_aliasing=True, channel_axis=2), 0.0, 1.0)
        t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)  # (C, H, W)
        h, w = t.shape[1:]
        for r in range(0, h - size + 1, stride):
            for c in range(0, w - size + 1, stride):
                patches.append(t[:, r : r + size, c : c + size])
                photo_idx.append(k)
                origins.append((r, c))
    if not patches:
        raise ValueError(
            f"photo_patches: no patch of size {size} fits in the photos {names} at scale {scale}"
        )
    images = (torch.stack(patches) * 2.0 - 1.0).to(dtype)
    return PhotoPatches(
        images=images,
        photo=torch.tensor(photo_idx, dtype=torch.int64),
        origin=torch.tensor(origins, dtype=torch.int64),
        names=names,
    )
