"""Gradient accumulation helpers for the :class:`~genlab.training.trainer.Trainer` (``train.accumulate``).

A step's batch is split along its first dimension into ``k`` micro-batches; micro-batch ``j`` of ``n_j`` items
is back-propagated with weight ``n_j / n``. For an objective whose loss is a mean over the items of its batch
(every genlab objective), the summed gradient is exactly the gradient of the loss on the whole batch, so one
optimiser step after the ``k`` backward passes is the step on the concatenated batch (up to floating-point
summation order). Under DDP the first ``k − 1`` backward passes run inside ``no_sync()``: the gradients are
all-reduced once, on the last one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["batch_length", "no_sync", "split_batch"]


def batch_length(batch: Any) -> int:
    """Number of items of a batch (first dimension of its first tensor)."""
    if isinstance(batch, Tensor):
        return int(batch.shape[0])
    if isinstance(batch, Mapping):
        for v in batch.values():
            try:
                return batch_length(v)
            except TypeError:
                continue
    elif isinstance(batch, (tuple, list)):
        for v in batch:
            try:
                return batch_length(v)
            except TypeError:
                continue
    raise TypeError(f"cannot find a tensor in a batch of type {type(batch).__name__} to split it")


def _chunk(batch: Any, bounds: list[tuple[int, int]]) -> list[Any]:
    if isinstance(batch, Tensor):
        return [batch[a:b] for a, b in bounds]
    if isinstance(batch, Mapping):
        parts = {k: _chunk(v, bounds) for k, v in batch.items()}
        return [type(batch)({k: p[j] for k, p in parts.items()}) for j in range(len(bounds))]  # type: ignore[call-arg]
    if isinstance(batch, (tuple, list)):
        parts = [_chunk(v, bounds) for v in batch]
        return [type(batch)(p[j] for p in parts) for j in range(len(bounds))]
    return [batch for _ in bounds]  # non-tensor leaves (None, flags) are shared


def split_batch(batch: Any, k: int) -> list[tuple[Any, float]]:
    """Split ``batch`` (a tensor, or tuples/lists/dicts of tensors) into ``k`` contiguous micro-batches.

    Args:
        batch: The step's batch; every tensor leaf is split along dim 0.
        k: Number of micro-batches (``1 <= k <= len``); sizes differ by at most one.

    Returns:
        ``[(micro_batch, weight)]`` with ``weight = len(micro_batch) / len(batch)`` (the weights sum to 1).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"accumulate must be a positive int; got {k!r}")
    n = batch_length(batch)
    if k > n:
        raise ValueError(f"accumulate={k} micro-batches do not fit in a batch of {n}; use accumulate <= batch_size")
    if k == 1:
        return [(batch, 1.0)]
    base, extra = divmod(n, k)
    sizes = [base + (1 if j < extra else 0) for j in range(k)]
    bounds, start = [], 0
    for size in sizes:
        bounds.append((start, start + size))
        start += size
    return list(zip(_chunk(batch, bounds), (s / n for s in sizes)))


@contextlib.contextmanager
def no_sync(modules: Iterable[torch.nn.Module]) -> Iterator[None]:
    """``no_sync()`` of every DDP-wrapped module (a no-op for plain modules)."""
    with contextlib.ExitStack() as stack:
        for m in modules:
            if hasattr(m, "no_sync"):
                stack.enter_context(m.no_sync())
        yield
