"""Two unpaired data sets side by side, for unpaired translation (Schrödinger bridges, minibatch OT).

Each row is ``(x0, x1)`` with ``x0`` from the *source* data set and ``x1`` from the *target* one, drawn
independently (each side shuffled with its own seed), so the empirical joint law of the rows is the independent
coupling ``p0 ⊗ p1``. With ``coupling: paired`` a trainer reads these independent pairs; with ``coupling:
{name: minibatch_sb, base: paired, ...}`` they are re-paired inside each batch (SB-CFM); Light SB and DSBM only
use the two marginals.

Each side is any registered data set given as ``{name: ..., **kwargs}`` (``get_dataset``), optionally restricted to
some classes of a labelled set (``classes: [3]`` on ``digits``).

.. code-block:: yaml

    data: {name: unpaired, source: {name: moons, n: 10000}, target: {name: eight_gaussians, n: 10000}}
    data: {name: unpaired, source: {name: digits, classes: [0]}, target: {name: digits, classes: [8]}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from genlab.data.datasets import ArrayDataset, get_dataset

__all__ = ["UnpairedDataset", "side_samples"]


def _side(spec: object, role: str) -> tuple[dict[str, Any], list[int] | None]:
    if isinstance(spec, str):
        return {"name": spec}, None
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise TypeError(
            f"{role} must be a dataset name or a mapping {{name: ..., **kwargs}} (e.g. {{name: moons, n: 10000}}); "
            f"got {spec!r}"
        )
    kw = dict(spec)
    classes = kw.pop("classes", None)
    if classes is not None:
        if isinstance(classes, int) and not isinstance(classes, bool):
            classes = [classes]
        if not isinstance(classes, Sequence) or not classes or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in classes
        ):
            raise ValueError(f"{role}.classes must be a non-empty list of int labels; got {classes!r}")
        classes = [int(c) for c in classes]
    return kw, classes


def side_samples(spec: object, *, role: str = "source") -> Tensor:
    """The ``x1`` items of one side's data set (``spec`` as in :class:`UnpairedDataset`), classes applied.

    Args:
        spec: ``"name"`` or ``{name: ..., classes: [...]?, **kwargs}``.
        role: ``"source"`` or ``"target"`` (for error messages).

    Returns:
        ``(n, ...)`` samples.

    Raises:
        ValueError: If ``classes`` is given for an unlabelled set or selects nothing.
    """
    kw, classes = _side(spec, role)
    ds = get_dataset(kw.pop("name"), **kw)
    names = list(getattr(ds, "item_names", ("x1",)))
    x = ds.tensors[names.index("x1")] if "x1" in names else ds.tensors[0]
    if classes is None:
        return x
    labels = ds.tensors[names.index("label")] if "label" in names else ds.extras.get("label")
    if labels is None:
        raise ValueError(f"{role}.classes needs a labelled data set (e.g. digits); {spec!r} has no labels")
    keep = torch.isin(labels, torch.tensor(classes, dtype=labels.dtype))
    if not bool(keep.any()):
        raise ValueError(f"{role}.classes={classes} selects no item of {spec!r}")
    return x[keep]


class UnpairedDataset(ArrayDataset):
    """Rows ``(x0, x1)``: independent draws of a source and a target data set. Items: ``(x0, x1)``.

    Args:
        source: Source data set: a name or ``{name: ..., classes: [...]?, **kwargs}``.
        target: Target data set, same form.
        n: Number of rows (default: the size of the smaller side); a side with fewer items is cycled through
            several shuffles.
        seed: Seed of the two shuffles.

    Raises:
        ValueError: If the two sides have different per-sample shapes, or ``n < 2``.
    """

    def __init__(self, *, source: object, target: object, n: int | None = None, seed: int = 0) -> None:
        x0 = side_samples(source, role="source")
        x1 = side_samples(target, role="target")
        if x0.shape[1:] != x1.shape[1:]:
            raise ValueError(
                f"source items have shape {tuple(x0.shape[1:])} but target items {tuple(x1.shape[1:])}; the two "
                "sides of an unpaired translation must have the same shape"
            )
        rows = min(len(x0), len(x1)) if n is None else n
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 2:
            raise ValueError(f"n must be an int >= 2; got {n!r}")
        g = torch.Generator().manual_seed(int(seed))

        def draw(x: Tensor) -> Tensor:
            reps = -(-rows // len(x))
            idx = torch.cat([torch.randperm(len(x), generator=g) for _ in range(reps)])[:rows]
            return x[idx]

        super().__init__(draw(x0), draw(x1.to(x0.dtype)), item_names=("x0", "x1"))
        self.source, self.target = source, target
