"""Per-sample noise streams for multi-step stochastic samplers.

:func:`genlab.utils.randn_like_per_sample` makes one draw independent of the batch size, but a sampler that draws
at every step from one generator would still hand sample ``i`` different noise at step 2 when the batch grows (the
first step consumed more draws). :class:`NoiseStream` gives every sample its own generator, seeded by the ``i``-th
draw of the caller's generator, so the whole sequence of draws of sample ``i`` depends only on the seed and ``i``:
the first ``k`` rows of a batch of ``n`` equal a batch of ``k`` (EDM's ``StackedRandomGenerator`` idea, Karras et
al. NeurIPS'22 code). Draws are made in blocks of a size that depends only on the per-sample shape, so the values
never depend on the batch size either.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["NoiseStream"]

_SEED_HIGH = 2**62


class NoiseStream:
    """Standard normal draws shaped like ``like``, one independent stream per sample.

    Args:
        like: A batch ``(B, ...)`` giving shape, dtype and device of each draw.
        generator: Source of the per-sample seeds; ``None`` falls back to the global RNG (``torch.randn``), which
            is fast but neither reproducible nor batch-size invariant.
        steps_hint: Accepted for callers that know how many draws they will make; it does not change the block
            size (draws must not depend on the number of steps or on the batch size).
        block_elements: Per-sample element budget of one block of pre-drawn noise. The block size (draws per
            refill) depends only on this and the per-sample shape, never on the batch size or the number of
            steps, so the k-th draw of sample i is a fixed function of (seed, i, k).

    Example:
        >>> stream = NoiseStream(x, generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
        >>> xi = stream()  # same shape as x, reproducible per sample  # doctest: +SKIP
    """

    def __init__(
        self,
        like: Tensor,
        generator: torch.Generator | None,
        *,
        steps_hint: int | None = None,
        block_elements: int = 1024,
    ) -> None:
        if like.ndim < 1:
            raise ValueError("NoiseStream needs a batched tensor (B, ...)")
        self.shape = tuple(like.shape)
        self.dtype = like.dtype
        self.device = like.device
        self.generator = generator
        self.steps_hint = steps_hint
        self.draws = 0
        per_sample = max(1, int(torch.Size(self.shape[1:]).numel()))
        self._block = max(1, int(block_elements) // per_sample)
        self._buffer: Tensor | None = None
        self._pos = 0
        self._gens: list[torch.Generator] = []
        if generator is not None:
            gdev = generator.device
            for _ in range(self.shape[0]):
                seed = int(torch.randint(0, _SEED_HIGH, (1,), generator=generator, device=gdev))
                self._gens.append(torch.Generator(device=gdev).manual_seed(seed))

    def _refill(self) -> None:
        gdev = self.generator.device  # type: ignore[union-attr]
        if not self._gens:
            self._buffer = torch.empty((0, self._block, *self.shape[1:]), dtype=self.dtype, device=self.device)
        else:
            rows = [torch.randn((self._block, *self.shape[1:]), generator=g, device=gdev, dtype=self.dtype)
                    for g in self._gens]
            self._buffer = torch.stack(rows).to(self.device)
        self._pos = 0

    def __call__(self) -> Tensor:
        """The next standard normal draw, shape ``like.shape``."""
        self.draws += 1
        if self.generator is None:
            return torch.randn(self.shape, dtype=self.dtype, device=self.device)
        if self._buffer is None or self._pos >= self._block:
            self._refill()
        out = self._buffer[:, self._pos]  # type: ignore[index]
        self._pos += 1
        return out
