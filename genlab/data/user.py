"""Your own data in genlab: register a dataset factory, or hand tensors / a ``torch.utils.data.Dataset`` over.

Three ways, from most to least reusable:

* **A registered factory**: ``register_dataset("my_set", factory)`` where ``factory(**kwargs)`` returns an
  :class:`~genlab.data.datasets.ArrayDataset` (or any map-style ``Dataset``, converted by :func:`as_dataset`).
  Configs then say ``data: {name: my_set, ...kwargs}``. A registration lives in the Python process that made
  it; for the CLI, name the factory by import path instead: ``data: {name: "my_pkg.data:make_set"}`` (imported
  when the config is validated, so ``genlab train`` / ``sample`` / ``eval`` all find it).
* **A tensor file**: ``data: {name: tensor_file, path: data.pt}`` where the file holds ``{"x1": Tensor}``,
  ``{"x0": Tensor, "x1": Tensor}`` (pairs, for bridges and couplings) and optionally ``"label"`` (int64).
* **Objects in Python**: ``genlab.train(config, data=x1)``, ``data=(x0, x1)``, ``data={"x1": x, "label": y}``
  or ``data=<torch Dataset>``. The data is checked (:func:`as_dataset`), written atomically to
  ``<run>/data.pt`` and the run's config points at that file (``tensor_file``), so ``resume``, ``load_run``,
  ``genlab sample`` and ``genlab eval`` rebuild the same split without the original objects.

Conventions (as everywhere in genlab): ``x1`` is the target data, ``x0`` the source of a paired task, images
are ``(C, H, W)`` floats in ``[-1, 1]``, labels are int64 class indices.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from genlab.data.datasets import ArrayDataset

__all__ = [
    "TensorFileDataset",
    "as_dataset",
    "is_import_path",
    "load_factory",
    "register_dataset",
    "registered_datasets",
    "save_tensor_file",
    "unregister_dataset",
]

#: User factories added by :func:`register_dataset` (the built-ins live in ``datasets._REGISTRY``).
_USER: dict[str, Callable[..., Any]] = {}

_ITEM_KEYS = ("x0", "x1", "label")


def _builtin() -> dict[str, Callable[..., Any]]:
    from genlab.data import datasets as _datasets

    return _datasets._REGISTRY


def register_dataset(name: str, factory: Callable[..., Any], *, overwrite: bool = False) -> None:
    """Make ``factory`` available as ``data.name`` in configs and :func:`~genlab.data.get_dataset`.

    Args:
        name: The name configs use (letters, digits, ``_``, ``-``; no ``:``, which marks import paths).
        factory: Callable ``factory(**kwargs)`` returning an :class:`~genlab.data.datasets.ArrayDataset` or a
            map-style ``Dataset`` whose items :func:`as_dataset` understands.
        overwrite: Replace an earlier registration of ``name`` (a built-in name is never replaced).

    Raises:
        TypeError: If ``factory`` is not callable or ``name`` not a string.
        ValueError: If ``name`` is empty, contains ``:``, is a built-in dataset, or is registered already
            (without ``overwrite``).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_dataset: name must be a non-empty string; got {name!r}")
    if ":" in name or any(c.isspace() for c in name):
        raise ValueError(
            f"register_dataset: name {name!r} may not contain ':' or spaces (':' marks 'module:function' "
            "import paths in configs)"
        )
    if not callable(factory):
        raise TypeError(f"register_dataset: factory must be callable; got {type(factory).__name__}")
    if name in _builtin():
        raise ValueError(f"register_dataset: {name!r} is a built-in dataset; choose another name")
    if name in _USER and not overwrite:
        raise ValueError(f"register_dataset: {name!r} is registered already; pass overwrite=True to replace it")
    _USER[name] = factory


def unregister_dataset(name: str) -> None:
    """Remove a dataset added by :func:`register_dataset` (a no-op for unknown names)."""
    _USER.pop(name, None)


def registered_datasets() -> tuple[str, ...]:
    """Names added by :func:`register_dataset` in this process, sorted."""
    return tuple(sorted(_USER))


def is_import_path(name: str) -> bool:
    """Whether ``name`` has the ``"package.module:attribute"`` form of a factory named by import path."""
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr and all(p.isidentifier() for p in [*module.split("."), *attr.split(".")]))


def load_factory(name: str) -> Callable[..., Any] | None:
    """The factory behind a user dataset name: registered, or imported from ``"module:attribute"``.

    Args:
        name: A registered name or an import path.

    Returns:
        The factory, or ``None`` when ``name`` is neither.

    Raises:
        ValueError: If an import path's module or attribute cannot be loaded, or is not callable.
    """
    if name in _USER:
        return _USER[name]
    if not is_import_path(name):
        return None
    module_name, _, attr = name.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"data.name {name!r}: cannot import module {module_name!r} ({err})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"data.name {name!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"data.name {name!r}: {attr!r} is not callable (a dataset factory is)")  # noqa: TRY004 - a config value
    return obj


def _check_tensor(t: Any, key: str, *, n: int | None) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"data: {key!r} must be a torch.Tensor; got {type(t).__name__}")
    if t.ndim == 0:
        raise ValueError(f"data: {key!r} is a scalar; pass one row per item, shape (n, ...)")
    if n is not None and t.shape[0] != n:
        raise ValueError(f"data: {key!r} has {t.shape[0]} items but 'x1' has {n}; every part needs one row per item")
    if key == "label":
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"data: 'label' must hold integer class indices; got dtype {t.dtype}")
        if t.ndim != 1:
            raise ValueError(f"data: 'label' must have shape (n,); got {tuple(t.shape)}")
        if t.numel() and int(t.min()) < 0:
            raise ValueError("data: 'label' holds negative values; labels are class indices 0..K-1")
        return t.to(torch.int64).cpu()
    if not t.dtype.is_floating_point:
        raise TypeError(
            f"data: {key!r} has dtype {t.dtype}; genlab trains on floating-point data (convert, e.g. "
            "images as x.float() / 127.5 - 1 for uint8)"
        )
    if t.ndim not in (2, 4):
        raise ValueError(
            f"data: {key!r} has shape {tuple(t.shape)}; items must be vectors (n, d) or images (n, C, H, W)"
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"data: {key!r} holds NaN or inf values")
    if t.ndim == 4 and t.numel():
        lo, hi = float(t.min()), float(t.max())
        if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
            raise ValueError(
                f"data: images in {key!r} span [{lo:.4g}, {hi:.4g}]; genlab's image paths, pictures and metrics "
                "expect [-1, 1] (from [0, 1] use 2 * x - 1; from uint8 use x / 127.5 - 1)"
            )
    return t.detach().to(torch.float32).cpu().contiguous()


def _from_parts(parts: Mapping[str, Tensor]) -> ArrayDataset:
    unknown = sorted(set(parts) - set(_ITEM_KEYS))
    if unknown:
        raise ValueError(f"data: unknown key(s) {unknown}; use 'x1' (required), 'x0' (pairs) and 'label'")
    if "x1" not in parts:
        raise ValueError("data: 'x1' (the target data) is required")
    x1 = _check_tensor(parts["x1"], "x1", n=None)
    names, tensors = ["x1"], [x1]
    if "x0" in parts:
        x0 = _check_tensor(parts["x0"], "x0", n=x1.shape[0])
        names, tensors = ["x0", "x1"], [x0, x1]
    if "label" in parts:
        names.append("label")
        tensors.append(_check_tensor(parts["label"], "label", n=x1.shape[0]))
    if x1.shape[0] < 2:
        raise ValueError(f"data: got {x1.shape[0]} item(s); a train/test split needs at least 2")
    return ArrayDataset(*tensors, item_names=names)


def _stack_items(dataset: Dataset) -> dict[str, Tensor]:
    """Read a map-style Dataset item by item into ``{"x1", "x0"?, "label"?}`` tensors."""
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError("data: a Dataset must be map-style (define __len__ and __getitem__)") from None
    if n == 0:
        raise ValueError("data: the Dataset is empty")
    first = dataset[0]
    rows: list[Any] = [first] + [dataset[i] for i in range(1, n)]

    def as_t(v: Any) -> Tensor:
        return v if isinstance(v, Tensor) else torch.as_tensor(v)

    if isinstance(first, Mapping):
        return {k: torch.stack([as_t(r[k]) for r in rows]) for k in first}
    if isinstance(first, Tensor):
        return {"x1": torch.stack(rows)}
    if isinstance(first, Sequence) and len(first) == 2:
        a, b = as_t(first[0]), as_t(first[1])
        if b.ndim == 0 and not b.dtype.is_floating_point:  # (x, label), as torchvision datasets yield
            return {"x1": torch.stack([as_t(r[0]) for r in rows]), "label": torch.stack([as_t(r[1]) for r in rows])}
        if a.shape == b.shape or a.dtype.is_floating_point and b.dtype.is_floating_point:
            return {"x0": torch.stack([as_t(r[0]) for r in rows]), "x1": torch.stack([as_t(r[1]) for r in rows])}
    raise TypeError(
        f"data: cannot read Dataset items of type {type(first).__name__}; items must be a tensor (x1), a pair "
        "(x, integer label), a pair (x0, x1) of same-shape tensors, or a dict with keys 'x1', 'x0', 'label'"
    )


def as_dataset(data: Any) -> ArrayDataset:
    """Check user data and turn it into an :class:`~genlab.data.datasets.ArrayDataset`.

    Accepted: an ``ArrayDataset`` (checked, returned with its items); a tensor ``x1`` of shape ``(n, d)`` or
    ``(n, C, H, W)``; a pair ``(x0, x1)`` of tensors; a dict with ``"x1"`` and optionally ``"x0"``/``"label"``;
    a map-style ``torch.utils.data.Dataset`` whose items are a tensor, ``(x, int label)``, ``(x0, x1)`` or such
    a dict (read once into memory: for data that does not fit, register a factory instead).

    Args:
        data: The data.

    Returns:
        The dataset (float32 CPU tensors; labels int64).

    Raises:
        TypeError: For unsupported containers and dtypes (non-float data, float labels).
        ValueError: For mismatched lengths, unsupported ranks, non-finite values, images outside ``[-1, 1]``,
            fewer than two items.
    """
    if isinstance(data, ArrayDataset):
        parts = dict(zip(data.item_names, data.tensors))
        if "label" not in parts and "label" in data.extras:
            parts["label"] = data.extras["label"]
        return _from_parts({k: v for k, v in parts.items() if k in _ITEM_KEYS})
    if isinstance(data, Tensor):
        return _from_parts({"x1": data})
    if isinstance(data, Mapping):
        return _from_parts(data)
    if isinstance(data, (tuple, list)):
        if len(data) != 2 or not all(isinstance(t, Tensor) for t in data):
            raise TypeError("data: a tuple/list must be the pair (x0, x1) of tensors")
        return _from_parts({"x0": data[0], "x1": data[1]})
    if isinstance(data, Dataset):
        return _from_parts(_stack_items(data))
    raise TypeError(
        f"data: expected a Tensor, an (x0, x1) pair, a dict of tensors or a torch Dataset; got {type(data).__name__}"
    )


def save_tensor_file(dataset: ArrayDataset, path: str | Path) -> Path:
    """Write ``dataset``'s items to ``path`` atomically (the format :class:`TensorFileDataset` reads)."""
    from genlab.utils import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as fh:
        torch.save({k: t for k, t in zip(dataset.item_names, dataset.tensors)}, fh)
    return path


class TensorFileDataset(ArrayDataset):
    """Items read from a ``.pt`` file of named tensors (``torch.load(weights_only=True)``).

    The file holds ``{"x1": Tensor}`` and optionally ``"x0"`` (paired tasks) and ``"label"``; the same checks
    as :func:`as_dataset` apply.

    Args:
        path: The file.
        n: Keep only the first ``n`` items (default all).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a mapping of tensors in the format above.
    """

    def __init__(self, path: str | Path, *, n: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"data.path: {str(path)!r} does not exist (a .pt file of named tensors)")
        try:
            parts = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
            raise ValueError(f"data.path: cannot read {str(path)!r} as a tensor file ({err})") from None
        if not isinstance(parts, Mapping):
            raise ValueError(  # noqa: TRY004 - a bad file, not a bad argument type
                f"data.path: {str(path)!r} must hold a dict {{'x1': ..., 'x0'?: ..., 'label'?: ...}}"
            )
        ds = _from_parts(parts)
        if n is not None:
            if isinstance(n, bool) or not isinstance(n, int) or n < 2 or (isinstance(n, float) and math.isnan(n)):
                raise ValueError(f"data.n must be an int >= 2; got {n!r}")
            ds = ds.subset(torch.arange(min(n, len(ds))))
        super().__init__(*ds.tensors, item_names=ds.item_names)
        self.path = path
