"""Per-sample random streams, so a guided run does not change with the batch size.

:func:`genlab.utils.randn_per_sample` makes *one* draw batch-size invariant; a sampling run makes many (initial
noise, one draw per stochastic step, probes, augmentations), and with one shared generator sample ``i``'s second
draw depends on how many samples the first draw consumed. :class:`SampleStreams` gives every sample its own
generator, seeded from the parent generator one sample at a time, so the first ``k`` samples of a run with ``n``
samples equal a run with ``k`` samples, draw for draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from genlab.utils import randn_like_per_sample

__all__ = ["SampleStreams", "rand_per_sample", "randn_like"]

_SEED_HIGH = 2**62


class SampleStreams:
    """One generator per sample, seeded from ``generator``.

    Args:
        n: Number of samples.
        generator: Parent generator (its device is used for every stream).
    """

    def __init__(self, n: int, generator: torch.Generator) -> None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.device = generator.device
        seeds = [int(torch.randint(0, _SEED_HIGH, (1,), generator=generator, device=self.device))
                 for _ in range(n)]
        self.generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]

    def __len__(self) -> int:
        return len(self.generators)

    def randn_like(self, x: Tensor) -> Tensor:
        """Standard normal noise shaped like ``x`` (row ``i`` from stream ``i``)."""
        self._check(x.shape[0])
        rows = [torch.randn(x.shape[1:], generator=g, device=self.device, dtype=x.dtype) for g in self.generators]
        return torch.stack(rows).to(x.device)

    def rand(self, shape: Sequence[int], *, dtype: torch.dtype = torch.float64,
             device: torch.device | str | None = None) -> Tensor:
        """Uniform ``[0, 1)`` draws of per-sample shape ``shape`` (row ``i`` from stream ``i``)."""
        rows = [torch.rand(tuple(shape), generator=g, device=self.device, dtype=dtype) for g in self.generators]
        return torch.stack(rows).to(device if device is not None else self.device)

    def _check(self, batch: int) -> None:
        if batch != len(self.generators):
            raise ValueError(f"batch of {batch} samples drawn from {len(self.generators)} streams")


def randn_like(x: Tensor, generator: torch.Generator | SampleStreams | None) -> Tensor:
    """Noise shaped like ``x`` from per-sample streams, a generator (per-row draw) or the global RNG."""
    if isinstance(generator, SampleStreams):
        return generator.randn_like(x)
    return randn_like_per_sample(x, generator=generator)


def rand_per_sample(n: int, shape: Sequence[int], generator: torch.Generator | SampleStreams | None, *,
                    dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
    """Uniform draws ``(n, *shape)`` from per-sample streams, a generator or the global RNG."""
    if isinstance(generator, SampleStreams):
        generator._check(n)
        return generator.rand(shape, dtype=dtype, device=device)
    gdev = generator.device if generator is not None else device
    return torch.rand((n, *shape), generator=generator, device=gdev, dtype=dtype).to(device)
