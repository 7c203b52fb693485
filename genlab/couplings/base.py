"""The coupling contract: a rule that turns what a DataLoader yields into pairs ``(x0, x1) ~ π``.

genlab convention: ``x0`` is the **source** (Gaussian noise for plain generation, a corrupted or condition image
for bridges and data-dependent couplings), ``x1`` the **target** data. Every interpolant in
:mod:`genlab.interpolants` takes the pair a coupling returns, so swapping the independent coupling for a
minibatch-OT or a data-dependent one is one argument of the training loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Coupling", "CouplingSample", "unpack_target"]


@dataclass
class CouplingSample:
    """One minibatch drawn from a coupling ``π(x0, x1)``.

    Attributes:
        x0: Source samples, shape ``(B, ...)``.
        x1: Target samples, same shape as ``x0``.
        cond: Conditioning input for the network (e.g. ``m(x1)`` for data-dependent couplings, or the masked
            image and its mask for inpainting), or ``None``.
        mask: Observation mask ``ξ`` of masked couplings (1 on observed pixels that stay fixed along the path,
            0 on the pixels to generate), broadcastable against ``x1``; ``None`` for other couplings. A training
            loss uses it to zero the velocity on observed pixels (see
            :func:`genlab.couplings.data_dependent.mask_velocity`).
    """

    x0: Tensor
    x1: Tensor
    cond: Tensor | None = None
    mask: Tensor | None = None


def unpack_target(batch: object, *, coupling: str) -> Tensor:
    """Extract the target batch ``x1`` from what a DataLoader yields.

    Accepted forms: a tensor ``x1`` of shape ``(B, ...)``, or a tuple/list whose first element is ``x1``
    (e.g. ``(x1, label)``; the remaining elements are ignored).

    Args:
        batch: The DataLoader output.
        coupling: Name of the calling coupling, used in error messages.

    Returns:
        The tensor ``x1``.

    Raises:
        TypeError: If ``batch`` is neither a tensor nor a non-empty tuple/list starting with a tensor.
        ValueError: If ``x1`` has no batch dimension or is empty.
    """
    if isinstance(batch, Tensor):
        x1 = batch
    elif isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)) and len(batch) > 0:
        x1 = batch[0]
        if not isinstance(x1, Tensor):
            raise TypeError(
                f"{coupling}: batch is a {type(batch).__name__} whose first element is a "
                f"{type(x1).__name__}; expected (x1, ...) with x1 a tensor"
            )
    else:
        raise TypeError(
            f"{coupling}: batch must be a tensor x1 or a tuple/list (x1, label, ...); got {type(batch).__name__}"
        )
    if x1.ndim < 1 or x1.shape[0] == 0:
        raise ValueError(f"{coupling}: x1 must have a non-empty batch dimension; got shape {tuple(x1.shape)}")
    if not torch.is_floating_point(x1):
        raise TypeError(
            f"{coupling}: x1 must be a floating-point tensor; got dtype {x1.dtype} (convert with .float())"
        )
    return x1


class Coupling(ABC):
    """A joint law ``π(x0, x1)`` sampled one minibatch at a time.

    Subclasses document which batch forms they accept and raise a clear ``TypeError``/``ValueError`` otherwise.
    Every stochastic draw goes through ``generator`` so a fixed seed reproduces the minibatch.
    """

    @abstractmethod
    def sample(self, batch: object, *, generator: torch.Generator | None = None) -> CouplingSample:
        """Draw ``(x0, x1)`` (and optionally ``cond``/``mask``) for one DataLoader batch.

        Args:
            batch: What the DataLoader yields: a tensor ``x1``, a tuple/list ``(x1, label)``, or for paired
                datasets ``(x0, x1)``; see the subclass.
            generator: Optional random generator.

        Returns:
            A :class:`CouplingSample`.
        """

    def __call__(self, batch: object, *, generator: torch.Generator | None = None) -> CouplingSample:
        """Alias of :meth:`sample`."""
        return self.sample(batch, generator=generator)
