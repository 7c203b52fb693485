"""The independent coupling ``π = ρ0 ⊗ ρ1``: a fresh source sample for every target sample."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from genlab.couplings.base import Coupling, CouplingSample, unpack_target
from genlab.utils import randn_like_per_sample

__all__ = ["Independent"]

SourceSampler = Callable[..., Tensor]


class Independent(Coupling):
    r"""Independent coupling ``(x0, x1) ~ ρ0(x0) ρ1(x1)``.

    The default used by flow matching, rectified flow and stochastic interpolants (Albergo & Vanden-Eijnden,
    2022; Lipman et al., 2023; Liu et al., 2023; Table 1 of Albergo et al., ICML 2024, "Independent").

    With ``source="gaussian"`` the source is ``x0 ~ N(0, I)`` shaped like ``x1``, drawn one sample at a time with
    :func:`genlab.utils.randn_like_per_sample`, so under a generator the first ``k`` rows of a batch of ``n``
    equal a batch of ``k`` drawn from the same seed. Any other source is an object with a method
    ``sample(n, generator=...)`` (e.g. a Gaussian mixture from :mod:`genlab.analytic`) or a callable
    ``source(n, generator=...)``; it must return ``n`` samples with ``x1``'s per-sample shape, and they are moved
    to ``x1``'s device and dtype. Whether such a source is batch-size invariant is up to it.

    Accepted batches: a tensor ``x1`` or a tuple/list ``(x1, label, ...)`` (extra elements ignored).

    Args:
        source: ``"gaussian"``, or an object with ``.sample(n, generator=...)``, or a callable
            ``source(n, generator=...)``.

    Example:
        .. code-block:: python

            pair = Independent().sample(x1, generator=torch.Generator().manual_seed(0))
            x_t = interpolant.sample(pair.x0, pair.x1, t).x_t
    """

    def __init__(self, source: str | Any = "gaussian") -> None:
        if isinstance(source, str):
            if source != "gaussian":
                raise ValueError(
                    f"source must be 'gaussian' or a sampler (an object with .sample(n, generator=...) or a "
                    f"callable source(n, generator=...)); got the string {source!r}"
                )
            self._draw: SourceSampler | None = None
        elif callable(getattr(source, "sample", None)):
            self._draw = source.sample
        elif callable(source):
            self._draw = source
        else:
            raise TypeError(
                "source must be 'gaussian', an object with .sample(n, generator=...), or a callable "
                f"source(n, generator=...); got {type(source).__name__}"
            )
        self.source = source

    def __repr__(self) -> str:
        return f"Independent(source={self.source!r})"

    def sample(self, batch: object, *, generator: torch.Generator | None = None) -> CouplingSample:
        """Pair each target with an independent source sample.

        Args:
            batch: A tensor ``x1`` of shape ``(B, ...)`` or a tuple/list ``(x1, label, ...)``.
            generator: Optional random generator.

        Returns:
            ``CouplingSample(x0, x1)`` with ``cond=None``.

        Raises:
            ValueError: If a custom source returns samples of the wrong shape.
        """
        x1 = unpack_target(batch, coupling="Independent")
        if self._draw is None:
            return CouplingSample(x0=randn_like_per_sample(x1, generator=generator), x1=x1)
        x0 = self._draw(x1.shape[0], generator=generator)
        if not isinstance(x0, Tensor):
            raise TypeError(f"Independent: source returned a {type(x0).__name__}; it must return a tensor")
        if tuple(x0.shape) != tuple(x1.shape):
            raise ValueError(
                f"Independent: source returned shape {tuple(x0.shape)} but x1 has shape {tuple(x1.shape)}; the "
                "source must return n samples with the data's per-sample shape"
            )
        return CouplingSample(x0=x0.to(device=x1.device, dtype=x1.dtype), x1=x1)
