"""The coupling given by a paired dataset: ``(x0, x1)`` pairs are read, not drawn."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from genlab.couplings.base import Coupling, CouplingSample

__all__ = ["Paired"]


class Paired(Coupling):
    """Pairs supplied by the dataset, e.g. (corrupted, clean) images for a diffusion bridge.

    The coupling ``π`` is the empirical joint law of the dataset: DDBM/DBIM (Zhou et al., ICLR 2024; Zheng et
    al., ICLR 2025) and I²SB train bridges on such pairs, with ``x0`` the condition image (``x_T`` in their
    notation) and ``x1`` the clean image. DDBM also feeds ``x0`` to the network as a condition: set ``cond=True``
    to return it as ``cond``.

    Accepted batches: a tuple/list ``(x0, x1)`` of two tensors with the same shape. ``x0`` is moved to ``x1``'s
    device and dtype. The sample uses no randomness (``generator`` is accepted for the common contract).

    Args:
        cond: Also return ``x0`` as the network's conditioning input.
    """

    def __init__(self, *, cond: bool = False) -> None:
        if not isinstance(cond, bool):
            raise TypeError(f"cond must be a bool; got {type(cond).__name__}")
        self.cond = cond

    def __repr__(self) -> str:
        return f"Paired(cond={self.cond})"

    def sample(self, batch: object, *, generator: torch.Generator | None = None) -> CouplingSample:
        """Return the dataset's pairs after shape checks.

        Args:
            batch: A tuple/list ``(x0, x1)`` of tensors of equal shape ``(B, ...)``.
            generator: Unused (no randomness).

        Returns:
            ``CouplingSample(x0, x1, cond=x0 if cond else None)``.

        Raises:
            TypeError: If ``batch`` is not a pair of floating-point tensors.
            ValueError: If the shapes differ or the batch is empty.
        """
        del generator
        if isinstance(batch, Tensor) or not isinstance(batch, Sequence) or isinstance(batch, (str, bytes)):
            raise TypeError(
                f"Paired: batch must be a tuple/list (x0, x1) from a paired dataset; got {type(batch).__name__}. "
                "For unpaired data use Independent() or MinibatchOT()."
            )
        if len(batch) != 2:
            raise ValueError(
                f"Paired: batch must hold exactly two tensors (x0, x1); got {len(batch)} elements"
            )
        x0, x1 = batch
        for name, x in (("x0", x0), ("x1", x1)):
            if not isinstance(x, Tensor) or not torch.is_floating_point(x):
                kind = f"tensor of dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
                raise TypeError(f"Paired: {name} must be a floating-point tensor; got a {kind}")
        if tuple(x0.shape) != tuple(x1.shape):
            raise ValueError(
                f"Paired: x0 and x1 must have the same shape; got x0 {tuple(x0.shape)} and x1 {tuple(x1.shape)}"
            )
        if x1.ndim < 1 or x1.shape[0] == 0:
            raise ValueError(f"Paired: the batch must be non-empty; got shape {tuple(x1.shape)}")
        x0 = x0.to(device=x1.device, dtype=x1.dtype)
        return CouplingSample(x0=x0, x1=x1, cond=x0 if self.cond else None)
