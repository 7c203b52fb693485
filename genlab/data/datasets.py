"""Map-style datasets over in-memory tensors, deterministic train/test splits and a name registry.

Item formats (what ``dataset[i]`` returns, and therefore what a ``DataLoader`` batch holds):

======================  ===================  ====================================================
dataset                 item                 notes
======================  ===================  ====================================================
:class:`ToyDataset`     ``x1``               ``(2,)`` point of a 2-D toy
:class:`GMMDataset`     ``x1``               ``(d,)`` draw of any ``.sample(n, generator=)`` object
:class:`DigitsDataset`  ``(x1, label)``      ``(1, S, S)`` in ``[-1, 1]``, int64 label; ``x1`` only
                                             with ``labels=False``
:class:`PatchDataset`   ``x1``               ``(C, size, size)`` in ``[-1, 1]``
:class:`MaskedDigits`   ``(x0, x1)``         ``x0`` = masked ``x1`` (removed pixels = ``fill``)
:class:`LowResDigits`   ``(x0, x1)``         ``x0`` = average-pooled then upsampled ``x1``
:class:`EdgeDigits`     ``(x0, x1)``         ``x0`` = Sobel edge map of ``x1``
======================  ===================  ====================================================

genlab convention: ``x0`` is the source (the condition/corrupted image of a bridge), ``x1`` the target data.
Per-item side information that is not part of the item (labels of paired digits, masks, patch origins) is
kept in ``dataset.extras`` and follows the dataset through :func:`train_test_split`.

All randomness comes from a ``seed`` turned into a CPU ``torch.Generator``; the same arguments give the same
tensors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from genlab.data.corruptions import apply_mask, box_mask, pixel_mask, pool_upsample, sobel_edges
from genlab.data.images import load_digits, photo_patches
from genlab.data.toys import TOY_NAMES, toy

__all__ = [
    "DATASET_NAMES",
    "ArrayDataset",
    "DigitsDataset",
    "EdgeDigits",
    "GMMDataset",
    "LowResDigits",
    "MaskedDigits",
    "PatchDataset",
    "Split",
    "ToyDataset",
    "get_dataset",
    "get_split",
    "train_test_split",
]


def _seeded(seed: int) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {seed!r}")
    return torch.Generator().manual_seed(seed)


class ArrayDataset(Dataset):
    """Aligned tensors indexed along their first dimension (a named ``TensorDataset``).

    ``dataset[i]`` is ``tensors[0][i]`` when there is one tensor, else the tuple ``(t[i] for t in tensors)``;
    ``item_names`` says what each position is (e.g. ``("x0", "x1")``).

    Args:
        *tensors: Tensors with the same first dimension, returned by ``__getitem__``.
        item_names: One name per tensor.
        extras: Further aligned tensors kept alongside (not returned by ``__getitem__``).
    """

    def __init__(
        self, *tensors: Tensor, item_names: Sequence[str], extras: Mapping[str, Tensor] | None = None
    ):
        if not tensors:
            raise ValueError("ArrayDataset: pass at least one tensor")
        if len(item_names) != len(tensors):
            raise ValueError(f"ArrayDataset: got {len(tensors)} tensors but {len(item_names)} item_names")
        extras = dict(extras or {})
        n = tensors[0].shape[0] if tensors[0].ndim else None
        for name, t in [*zip(item_names, tensors), *extras.items()]:
            if not isinstance(t, Tensor):
                raise TypeError(f"ArrayDataset: {name!r} must be a torch.Tensor; got {type(t).__name__}")
            if t.ndim == 0 or t.shape[0] != n:
                raise ValueError(
                    f"ArrayDataset: {name!r} has shape {tuple(t.shape)}; every tensor needs the same first "
                    f"dimension ({n})"
                )
        self.tensors: tuple[Tensor, ...] = tuple(tensors)
        self.item_names: tuple[str, ...] = tuple(item_names)
        self.extras: dict[str, Tensor] = extras

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index: int) -> Tensor | tuple[Tensor, ...]:
        if len(self.tensors) == 1:
            return self.tensors[0][index]
        return tuple(t[index] for t in self.tensors)

    def subset(self, indices: Tensor) -> ArrayDataset:
        """A plain :class:`ArrayDataset` holding the rows ``indices`` (items, names and extras kept)."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return ArrayDataset(
            *(t[idx.to(t.device)] for t in self.tensors),
            item_names=self.item_names,
            extras={k: v[idx.to(v.device)] for k, v in self.extras.items()},
        )

    def split(self, *, test_fraction: float = 0.2, seed: int = 0) -> Split:
        """:func:`train_test_split` of this dataset."""
        return train_test_split(self, test_fraction=test_fraction, seed=seed)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(t.shape[1:])}" for k, t in zip(self.item_names, self.tensors))
        return f"{type(self).__name__}(n={len(self)}, {shapes})"


@dataclass(frozen=True)
class Split:
    """A deterministic train/test split.

    Attributes:
        train: Training part.
        test: Test part.
        train_indices: Rows of the parent dataset in ``train`` (sorted, int64).
        test_indices: Rows of the parent dataset in ``test`` (sorted, int64).
    """

    train: ArrayDataset
    test: ArrayDataset
    train_indices: Tensor
    test_indices: Tensor


def train_test_split(dataset: ArrayDataset, *, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Split ``dataset`` with a seeded random permutation.

    The first ``round(test_fraction · n)`` entries of ``torch.randperm(n)`` (CPU generator seeded with
    ``seed``) form the test set; both parts keep the parent's order.

    Args:
        dataset: Dataset to split.
        test_fraction: Fraction of items in the test set, in ``(0, 1)``.
        seed: Seed of the permutation.

    Returns:
        :class:`Split`.
    """
    if not isinstance(dataset, ArrayDataset):
        raise TypeError(
            f"train_test_split: dataset must be a genlab ArrayDataset; got {type(dataset).__name__}"
        )
    n = len(dataset)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"train_test_split: test_fraction must be in (0, 1); got {test_fraction!r}")
    n_test = round(test_fraction * n)
    if not 0 < n_test < n:
        raise ValueError(
            f"train_test_split: test_fraction={test_fraction} of {n} items gives {n_test} test items; both "
            "parts must be non-empty (use more items or another fraction)"
        )
    perm = torch.randperm(n, generator=_seeded(seed))
    test_idx = torch.sort(perm[:n_test]).values
    train_idx = torch.sort(perm[n_test:]).values
    return Split(
        train=dataset.subset(train_idx),
        test=dataset.subset(test_idx),
        train_indices=train_idx,
        test_indices=test_idx,
    )


class ToyDataset(ArrayDataset):
    """``n`` points of a 2-D toy (:mod:`genlab.data.toys`). Items: ``x1`` of shape ``(2,)``.

    Args:
        name: Toy name (see :data:`genlab.data.toys.TOY_NAMES`).
        n: Number of points.
        seed: Seed of the draw.
        dtype: Floating dtype.
        **kw: Further keyword arguments of the toy sampler (``noise``, ...).
    """

    def __init__(self, name: str, n: int, seed: int = 0, *, dtype: torch.dtype = torch.float32, **kw: Any):
        x = toy(name, n, generator=_seeded(seed), dtype=dtype, **kw)
        super().__init__(x, item_names=("x1",))
        self.name = name


class GMMDataset(ArrayDataset):
    """``n`` draws of a (duck-typed) distribution, e.g. ``genlab.analytic.GaussianMixture``. Items: ``x1``.

    ``mixture.sample(n, generator=g)`` must return a ``(n, d)`` tensor, or a pair ``(samples, labels)`` (the
    labels, e.g. component indices, are then kept in ``extras["label"]``).

    Args:
        mixture: Any object with ``.sample(n, generator=...)``.
        n: Number of draws.
        seed: Seed of the CPU generator passed to ``sample``.
        dtype: Optional dtype to cast the samples to.
    """

    def __init__(self, mixture: Any, n: int, seed: int = 0, *, dtype: torch.dtype | None = None):
        sample = getattr(mixture, "sample", None)
        if not callable(sample):
            raise TypeError(
                f"GMMDataset: mixture must have a .sample(n, generator=...) method; got {type(mixture).__name__}"
            )
        out = sample(n, generator=_seeded(seed))
        labels: Tensor | None = None
        if isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(o, Tensor) for o in out):
            out, labels = out
        if not isinstance(out, Tensor) or out.ndim < 2 or out.shape[0] != n:
            raise TypeError(
                f"GMMDataset: mixture.sample({n}, generator=...) must return a tensor of shape ({n}, d) or a pair "
                f"(samples, labels); got {type(out).__name__}{tuple(out.shape) if isinstance(out, Tensor) else ''}"
            )
        x = out.detach() if dtype is None else out.detach().to(dtype)
        super().__init__(x, item_names=("x1",), extras={} if labels is None else {"label": labels})


class DigitsDataset(ArrayDataset):
    """scikit-learn's 1797 digits in ``[-1, 1]``. Items: ``(x1, label)``, or ``x1`` with ``labels=False``.

    Args:
        size: 8 or 16 (see :func:`genlab.data.images.load_digits`).
        resize: ``"bilinear"``, ``"nearest"`` or ``"pad"`` for ``size=16``.
        labels: Return the label with each image.
        dtype: Floating dtype of the images.
    """

    def __init__(
        self,
        *,
        size: Literal[8, 16] = 8,
        resize: Literal["bilinear", "nearest", "pad"] = "bilinear",
        labels: bool = True,
        dtype: torch.dtype = torch.float32,
    ):
        d = load_digits(size=size, resize=resize, dtype=dtype)
        if labels:
            super().__init__(d.images, d.labels, item_names=("x1", "label"))
        else:
            super().__init__(d.images, item_names=("x1",), extras={"label": d.labels})


class PatchDataset(ArrayDataset):
    """Patches of scikit-image's bundled photos (:func:`genlab.data.images.photo_patches`). Items: ``x1``.

    ``extras`` holds ``photo`` (index into ``self.photo_names``) and ``origin`` (top-left ``(row, col)``).

    Args:
        photos: Photo names (default: all bundled ones that fit ``channels``).
        size: Patch side.
        channels: 1 or 3.
        stride: Grid step (default ``size``: non-overlapping).
        scale: Rescale factor of the photos before cutting.
        dtype: Floating dtype.
    """

    def __init__(
        self,
        *,
        photos: Sequence[str] | None = None,
        size: int = 32,
        channels: Literal[1, 3] = 1,
        stride: int | None = None,
        scale: float = 1.0,
        dtype: torch.dtype = torch.float32,
    ):
        p = photo_patches(
            photos=photos, size=size, channels=channels, stride=stride, scale=scale, dtype=dtype
        )
        super().__init__(p.images, item_names=("x1",), extras={"photo": p.photo, "origin": p.origin})
        self.photo_names = p.names


class MaskedDigits(ArrayDataset):
    """Inpainting pairs. Items: ``(x0, x1)`` with ``x0 = m ⊙ x1 + (1 − m)·fill``.

    One mask per item, drawn once from ``seed``: a random box (``mask="box"``) or i.i.d. pixel dropout
    (``mask="pixel"``). ``extras`` holds ``mask`` (``(N, 1, S, S)``, 1 = kept) and ``label``.

    Args:
        mask: ``"box"`` or ``"pixel"``.
        box_size: Side of the removed box (default ``size // 2``).
        drop_prob: Probability that a pixel is removed for ``mask="pixel"``.
        fill: Value written in removed pixels (0 by default, the middle of ``[-1, 1]``).
        seed: Seed of the masks.
        size: Digit size, 8 or 16.
        resize: How 16×16 digits are made (see :func:`genlab.data.images.load_digits`).
        dtype: Floating dtype.
    """

    def __init__(
        self,
        *,
        mask: Literal["box", "pixel"] = "box",
        box_size: int | None = None,
        drop_prob: float = 0.5,
        fill: float = 0.0,
        seed: int = 0,
        size: Literal[8, 16] = 8,
        resize: Literal["bilinear", "nearest", "pad"] = "bilinear",
        dtype: torch.dtype = torch.float32,
    ):
        d = load_digits(size=size, resize=resize, dtype=dtype)
        x1 = d.images
        n, _, h, w = x1.shape
        g = _seeded(seed)
        if mask == "box":
            m = box_mask(
                n, h, w, box_size=box_size if box_size is not None else size // 2, generator=g, dtype=dtype
            )
        elif mask == "pixel":
            m = pixel_mask(n, h, w, drop_prob=drop_prob, generator=g, dtype=dtype)
        else:
            raise ValueError(f"MaskedDigits: mask must be 'box' or 'pixel'; got {mask!r}")
        x0 = apply_mask(x1, m, fill=fill)
        super().__init__(x0, x1, item_names=("x0", "x1"), extras={"mask": m, "label": d.labels})


class LowResDigits(ArrayDataset):
    """Super-resolution pairs. Items: ``(x0, x1)`` with ``x0`` = ``factor×factor`` average pool of ``x1``
    upsampled back (``"nearest"``: constant blocks; ``"bilinear"``). ``extras`` holds ``label``.

    Args:
        factor: Pooling factor (must divide ``size``).
        mode: ``"nearest"`` or ``"bilinear"`` upsampling.
        size: Digit size, 8 or 16.
        resize: How 16×16 digits are made.
        dtype: Floating dtype.
    """

    def __init__(
        self,
        *,
        factor: int = 2,
        mode: Literal["nearest", "bilinear"] = "nearest",
        size: Literal[8, 16] = 8,
        resize: Literal["bilinear", "nearest", "pad"] = "bilinear",
        dtype: torch.dtype = torch.float32,
    ):
        d = load_digits(size=size, resize=resize, dtype=dtype)
        x0 = pool_upsample(d.images, factor, mode=mode)
        super().__init__(x0, d.images, item_names=("x0", "x1"), extras={"label": d.labels})


class EdgeDigits(ArrayDataset):
    """Edges → digit pairs (as edges2handbags in DDBM). Items: ``(x0, x1)`` with ``x0 = sobel_edges(x1)``.

    ``extras`` holds ``label``.

    Args:
        size: Digit size, 8 or 16.
        resize: How 16×16 digits are made.
        dtype: Floating dtype.
    """

    def __init__(
        self,
        *,
        size: Literal[8, 16] = 8,
        resize: Literal["bilinear", "nearest", "pad"] = "bilinear",
        dtype: torch.dtype = torch.float32,
    ):
        d = load_digits(size=size, resize=resize, dtype=dtype)
        super().__init__(sobel_edges(d.images), d.images, item_names=("x0", "x1"), extras={"label": d.labels})


def _multimarginal(
    *, marginals: Sequence[str], n: int = 10_000, seed: int = 0, target: int = 1, dtype: torch.dtype = torch.float32
) -> ArrayDataset:
    """:class:`genlab.data.multimarginal.MultimarginalDataset` (imported lazily: that module imports this one)."""
    from genlab.data.multimarginal import MultimarginalDataset

    return MultimarginalDataset(marginals=marginals, n=n, seed=seed, target=target, dtype=dtype)


def _mnist5k(**kw: Any) -> ArrayDataset:
    """:class:`genlab.data.mnist.MNIST5kDataset` (lazy import: that module imports this one)."""
    from genlab.data.mnist import MNIST5kDataset

    return MNIST5kDataset(**kw)


def _mnist5k_pairs(corruption: str, **kw: Any) -> ArrayDataset:
    """:class:`genlab.data.mnist.MNIST5kPairs` with the given corruption (lazy import)."""
    from genlab.data.mnist import MNIST5kPairs

    return MNIST5kPairs(corruption=corruption, **kw)  # type: ignore[arg-type]


def _tensor_file(**kw: Any) -> ArrayDataset:
    """:class:`genlab.data.user.TensorFileDataset` (lazy import: that module imports this one)."""
    from genlab.data.user import TensorFileDataset

    return TensorFileDataset(**kw)


def _unpaired(**kw: Any) -> ArrayDataset:
    """:class:`genlab.data.unpaired.UnpairedDataset` (lazy import: that module imports this one)."""
    from genlab.data.unpaired import UnpairedDataset

    return UnpairedDataset(**kw)


def _image_folder(**kw: Any) -> ArrayDataset:
    """:class:`genlab.data.folders.ImageFolder` (lazy import: that module imports this one)."""
    from genlab.data.folders import ImageFolder

    return ImageFolder(**kw)


def _paired_image_folder(**kw: Any) -> ArrayDataset:
    """:class:`genlab.data.folders.PairedImageFolder` (lazy import)."""
    from genlab.data.folders import PairedImageFolder

    return PairedImageFolder(**kw)


_REGISTRY: dict[str, Callable[..., ArrayDataset]] = {
    **{name: functools.partial(ToyDataset, name) for name in TOY_NAMES},
    "toy": ToyDataset,
    "gmm": GMMDataset,
    "digits": DigitsDataset,
    "patches": PatchDataset,
    "masked_digits": MaskedDigits,
    "lowres_digits": LowResDigits,
    "edges_digits": EdgeDigits,
    "mnist5k": _mnist5k,
    "masked_mnist5k": functools.partial(_mnist5k_pairs, "masked"),
    "lowres_mnist5k": functools.partial(_mnist5k_pairs, "lowres"),
    "edges_mnist5k": functools.partial(_mnist5k_pairs, "edges"),
    "image_folder": _image_folder,
    "paired_image_folder": _paired_image_folder,
    "multimarginal": _multimarginal,
    "unpaired": _unpaired,
    "tensor_file": _tensor_file,
}

#: Names accepted by :func:`get_dataset` and :func:`get_split`.
DATASET_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_dataset(name: str, /, **kw: Any) -> ArrayDataset:
    """Build the dataset registered as ``name``.

    Examples: ``get_dataset("moons", n=10_000, seed=0)``, ``get_dataset("toy", name="pinwheel", n=500)``,
    ``get_dataset("gmm", mixture=gm, n=2048)``, ``get_dataset("masked_digits", mask="pixel", seed=1)``.

    Args:
        name: One of :data:`DATASET_NAMES`, a name added by :func:`genlab.data.register_dataset`, or a factory's
            import path ``"package.module:function"``.
        **kw: Keyword arguments of the dataset's constructor.

    Returns:
        The dataset.

    Raises:
        ValueError: If ``name`` is unknown; the message lists the valid names.
    """
    if name in _REGISTRY:
        return _REGISTRY[name](**kw)
    from genlab.data.user import as_dataset, load_factory, registered_datasets

    factory = load_factory(name)
    if factory is None:
        names = ", ".join([*DATASET_NAMES, *registered_datasets()])
        raise ValueError(
            f"unknown dataset {name!r}; choose one of {names}, register one with "
            "genlab.data.register_dataset(name, factory), or name a factory as 'package.module:function'"
        )
    made = factory(**kw)
    return made if isinstance(made, ArrayDataset) else as_dataset(made)


def get_split(name: str, /, *, test_fraction: float = 0.2, split_seed: int = 0, **kw: Any) -> Split:
    """:func:`get_dataset` followed by :func:`train_test_split` (``seed=split_seed``).

    Args:
        name: One of :data:`DATASET_NAMES`.
        test_fraction: Fraction of items in the test set.
        split_seed: Seed of the split permutation (independent of a dataset's own ``seed``).
        **kw: Keyword arguments of the dataset's constructor.

    Returns:
        :class:`Split`.
    """
    return train_test_split(get_dataset(name, **kw), test_fraction=test_fraction, seed=split_seed)
