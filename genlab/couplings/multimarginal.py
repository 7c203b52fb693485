"""The independent multimarginal coupling: a Gaussian x_0 and independent draws from K data sets.

Multimarginal stochastic interpolants (Albergo, Boffi, Lindsey & Vanden-Eijnden, ICLR'24, arXiv:2310.03695) train on
tuples (x_0, x_1, …, x_K) from any coupling whose marginals are ρ_0, …, ρ_K; the paper's default, used here, is the
independent one with x_0 ~ N(0, I).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.couplings.base import Coupling, CouplingSample, unpack_target
from genlab.utils import randn_per_sample

__all__ = ["MultimarginalCoupling", "stack_marginals"]


class MultimarginalCoupling(Coupling):
    """Independent coupling of K data marginals and the Gaussian.

    A batch is ``(B, K, *shape)``, or a tuple whose first item is (a :class:`~genlab.data.MultimarginalDataset` batch
``(xs, x1)``). :meth:`sample` returns a
    :class:`CouplingSample` with ``x0`` the Gaussian ``(B, *shape)`` (per-sample noise) and ``x1`` the data
    ``(B, K, *shape)`` in which every marginal's column is permuted independently within the batch (``shuffle``),
    so the rows of different marginals are independent draws; :func:`stack_marginals` gives the
    ``(B, K + 1, *shape)`` stack the multimarginal loss takes. Unlike two-marginal couplings, ``x0`` and ``x1``
    differ in shape.

    Args:
        shuffle: Re-permute each marginal within the batch.
    """

    def __init__(self, *, shuffle: bool = True) -> None:
        self.shuffle = bool(shuffle)

    def sample(self, batch: object, *, generator: torch.Generator | None = None) -> CouplingSample:
        """Draw ``x0 ~ N(0, I)`` and independently shuffled data marginals (see the class docstring)."""
        xs = unpack_target(batch, coupling="multimarginal")
        if xs.ndim < 3:
            raise ValueError(
                f"multimarginal: a batch must stack the K data marginals along dim 1, shape (B, K, ...); got "
                f"{tuple(xs.shape)} (use data: {{name: multimarginal, marginals: [...]}})"
            )
        B, K = xs.shape[0], xs.shape[1]
        if self.shuffle and B > 1:
            gdev = generator.device if generator is not None else xs.device
            keys = torch.rand(K, B, generator=generator, device=gdev)
            perm = keys.argsort(dim=1).to(xs.device)  # (K, B)
            xs = torch.stack([xs[perm[k], k] for k in range(K)], dim=1)
        x0 = randn_per_sample((B, *xs.shape[2:]), generator=generator, device=xs.device, dtype=xs.dtype)
        return CouplingSample(x0=x0, x1=xs)

    def __repr__(self) -> str:
        return f"MultimarginalCoupling(shuffle={self.shuffle})"


def stack_marginals(pair: CouplingSample) -> Tensor:
    """``(B, K + 1, *shape)``: the Gaussian ``pair.x0`` as vertex 0 followed by the K data marginals ``pair.x1``."""
    if pair.x1.ndim != pair.x0.ndim + 1 or pair.x1.shape[2:] != pair.x0.shape[1:]:
        raise ValueError(
            f"stack_marginals needs x0 (B, ...) and x1 (B, K, ...) of one data shape; got {tuple(pair.x0.shape)} and "
            f"{tuple(pair.x1.shape)}"
        )
    return torch.cat([pair.x0.unsqueeze(1), pair.x1], dim=1)
