"""Small shared helpers: broadcasting, per-sample noise, validation and atomic file writes.

Per-sample randomness lives here, once, for samplers, guidance, couplings and training: :func:`randn_per_sample`
(one batch-size-invariant draw from a generator) and :class:`NoiseStream` (a sequence of draws, one generator per
sample, so every draw of sample ``i`` depends only on the seed and ``i``). Every function that draws accepts a
:data:`RandomSource` (a generator, a stream or ``None``).

Everything else here is pure (no global state) and device-agnostic.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "NoiseStream",
    "RandomSource",
    "append_dims",
    "as_time",
    "atomic_write",
    "check_finite",
    "rand_per_sample",
    "randn_like_per_sample",
    "randn_per_sample",
    "schedule_dtype",
]

_SEED_HIGH = 2**62


def schedule_dtype(device: torch.device | str | None) -> torch.dtype:
    """The dtype schedule arithmetic runs in: float64 where the device supports it, else float32.

    Args:
        device: Device the computation will run on.

    Returns:
        ``torch.float64`` on CPU/CUDA, ``torch.float32`` on devices without float64 (e.g. MPS).
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return torch.float32 if dev.type == "mps" else torch.float64


def append_dims(v: Tensor, ndim: int) -> Tensor:
    """Append trailing singleton dimensions so ``v`` broadcasts against a tensor with ``ndim`` dims.

    Args:
        v: Tensor of shape ``(B,)`` or a scalar tensor.
        ndim: Number of dimensions of the target tensor.

    Returns:
        ``v`` viewed with shape ``(B, 1, ..., 1)`` (or unchanged if it already has ``ndim`` dims).
    """
    if v.ndim > ndim:
        raise ValueError(f"append_dims: tensor has {v.ndim} dims, more than the target's {ndim}")
    return v.reshape(*v.shape, *([1] * (ndim - v.ndim)))


def as_time(t: Tensor | float, x: Tensor, *, name: str = "t", check_range: bool = True) -> Tensor:
    """Turn ``t`` (a float, a 0-d tensor or a ``(B,)`` tensor) into a ``(B,)`` tensor on ``x``'s device.

    Args:
        t: Time(s) in ``[0, 1]``.
        x: Batch whose leading dimension is ``B``.
        name: Argument name used in error messages.
        check_range: Raise if any time lies outside ``[0, 1]``.

    Returns:
        A ``(B,)`` tensor on ``x.device`` in the schedule dtype (float64 where available).
    """
    dtype = schedule_dtype(x.device)
    if not isinstance(t, Tensor):
        t = torch.tensor(float(t), dtype=dtype)
    t = t.to(device=x.device, dtype=dtype)
    batch = x.shape[0] if x.ndim > 0 else 1
    if t.ndim == 0:
        t = t.expand(batch)
    elif t.ndim != 1 or t.shape[0] not in (1, batch):
        raise ValueError(
            f"{name} must be a float, a 0-d tensor or a tensor of shape ({batch},) matching the batch; "
            f"got shape {tuple(t.shape)}"
        )
    elif t.shape[0] == 1 and batch != 1:
        t = t.expand(batch)
    if check_range and t.numel() and _out_of_unit(t):
        raise ValueError(f"{name} must lie in [0, 1] (genlab time); got values in [{t.min():.4g}, {t.max():.4g}]")
    return t


def _out_of_unit(t: Tensor) -> bool:
    """Whether a non-empty ``t`` has a value outside ``[0, 1]`` (one fused min/max reduction; NaN passes, as before)."""
    lo, hi = torch.aminmax(t.detach())
    return float(lo) < 0 or float(hi) > 1


def randn_per_sample(
    shape: Sequence[int],
    *,
    generator: RandomSource = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal noise drawn one sample at a time so results do not depend on the batch size.

    With a generator, row ``i`` depends only on the generator state and ``i``, so the first ``k`` rows of a batch of
    ``n`` equal a batch of ``k`` drawn from the same seed. On CPU this is a vectorised Box–Muller transform of
    sequentially drawn uniforms (float64); on other devices, one ``randn`` call per row. Without a generator it is
    plain ``torch.randn``.

    A :class:`NoiseStream` as ``generator`` draws its next value for every sample instead.

    Args:
        shape: Full shape ``(B, ...)``.
        generator: Optional generator (its device decides where the noise is drawn) or a :class:`NoiseStream`.
        device: Device of the result.
        dtype: Dtype of the result.

    Returns:
        A tensor of shape ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    if isinstance(generator, NoiseStream):
        return generator.randn(shape, dtype=dtype, device=device)
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    gen_device = generator.device
    n, per = shape[0], math.prod(shape[1:])
    if gen_device.type == "cpu":
        # CPU uniforms are drawn sequentially (the first k·m numbers do not depend on how many are drawn), so one
        # vectorised Box–Muller transform of 2·⌈m/2⌉ uniforms per row is batch-size invariant, unlike one randn call.
        half = (per + 1) // 2
        u = torch.rand((n, 2, half), generator=generator, dtype=torch.float64)
        # the same elementwise operations as sqrt(−2·log1p(−u0)) and 2π·u1, in place on fresh contiguous tensors
        radius = torch.log1p(-u[:, 0]).mul_(-2.0).sqrt_()  # 1 − u ∈ (0, 1]
        angle = u[:, 1].mul(2.0 * math.pi)
        z = torch.cat([torch.cos(angle).mul_(radius), angle.sin_().mul_(radius)], dim=1)[:, :per]
        out = z.reshape(shape).to(dtype)
    else:
        # other devices: one draw per row (the device generator's element order may depend on the launch size)
        rows = [torch.randn(shape[1:], generator=generator, device=gen_device, dtype=dtype) for _ in range(n)]
        out = torch.stack(rows) if rows else torch.empty(shape, device=gen_device, dtype=dtype)
    return out.to(device=device if device is not None else gen_device)


def randn_like_per_sample(x: Tensor, *, generator: RandomSource = None) -> Tensor:
    """:func:`randn_per_sample` with the shape, device and dtype of ``x``."""
    return randn_per_sample(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def rand_per_sample(
    shape: Sequence[int],
    *,
    generator: RandomSource = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Uniform ``[0, 1)`` draws of full shape ``(B, ...)``, row ``i`` from stream ``i`` when ``generator`` is a
    :class:`NoiseStream` (else one call on the generator, whose CPU draws are sequential, or the global RNG).

    Args:
        shape: Full shape ``(B, ...)``.
        generator: A :class:`NoiseStream`, a generator or ``None``.
        device: Device of the result (default: the generator's).
        dtype: Dtype of the result.

    Returns:
        A tensor of shape ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    if isinstance(generator, NoiseStream):
        return generator.rand(shape, dtype=dtype, device=device)
    gdev = generator.device if generator is not None else device
    out = torch.rand(shape, generator=generator, device=gdev, dtype=dtype)
    return out if device is None else out.to(device)


class _Streams:
    """The shared state of a :class:`NoiseStream`: one generator per sample and the pre-drawn normal blocks."""

    def __init__(self, n: int, generator: torch.Generator | None, block_elements: int) -> None:
        self.n = int(n)
        self.generator = generator
        self.block_elements = int(block_elements)
        self.draws = 0
        self.gens: list[torch.Generator] = []
        # (per-sample shape, dtype) -> [buffer (n, block, *shape) on the generator device, position, block]
        self.buffers: dict[tuple[tuple[int, ...], torch.dtype], list] = {}
        if generator is not None:
            gdev = generator.device
            for _ in range(self.n):
                seed = int(torch.randint(0, _SEED_HIGH, (1,), generator=generator, device=gdev))
                self.gens.append(torch.Generator(device=gdev).manual_seed(seed))


class NoiseStream:
    """Standard normal (and uniform) draws with one independent generator per sample.

    Sample ``i``'s generator is seeded by the ``i``-th draw of the caller's generator, so the whole sequence of
    draws of sample ``i`` depends only on the seed and ``i``: the first ``k`` rows of a batch of ``n`` equal a batch
    of ``k``, at every step of a sampler or a guided run (EDM's ``StackedRandomGenerator`` idea, Karras et al.
    NeurIPS'22 code). Normal draws are made in blocks whose size depends only on the per-sample shape, never on the
    batch size or the number of steps.

    Building a stream from another stream shares its generators (a sampler handed a stream by
    :func:`genlab.sample` or :func:`genlab.inverse.solve` continues it instead of re-seeding).

    Args:
        like: A batch ``(B, ...)`` giving the default shape, dtype and device of :meth:`__call__`, or the number of
            samples ``B``.
        generator: Source of the per-sample seeds, or a :class:`NoiseStream` to continue; ``None`` falls back to the
            global RNG (fast but neither reproducible nor batch-size invariant).
        block_elements: Per-sample element budget of one block of pre-drawn normal noise.
        steps_hint: Accepted for callers that know how many draws they will make; it changes nothing (draws must
            not depend on the number of steps).

    Example:
        >>> stream = NoiseStream(x, torch.Generator().manual_seed(0))  # doctest: +SKIP
        >>> xi = stream()  # same shape as x, reproducible per sample  # doctest: +SKIP
    """

    def __init__(
        self,
        like: Tensor | int,
        generator: torch.Generator | NoiseStream | None,
        *,
        block_elements: int = 1024,
        steps_hint: int | None = None,
    ) -> None:
        if isinstance(like, Tensor):
            if like.ndim < 1:
                raise ValueError("NoiseStream needs a batched tensor (B, ...) as like")
            self.shape: tuple[int, ...] | None = tuple(like.shape)
            self.dtype, self.device = like.dtype, like.device
            n = like.shape[0]
        elif isinstance(like, int) and not isinstance(like, bool) and like >= 0:
            self.shape, self.dtype, self.device = None, torch.float32, None
            n = like
        else:
            raise TypeError(f"like must be a batch tensor or a number of samples, got {like!r}")
        if isinstance(generator, NoiseStream):
            if generator.n != n:
                raise ValueError(f"the stream has {generator.n} samples, the batch {n}: build a stream per batch")
            self._core = generator._core
        elif generator is None or isinstance(generator, torch.Generator):
            self._core = _Streams(n, generator, block_elements)
        else:
            raise TypeError(f"generator must be a torch.Generator, a NoiseStream or None, got "
                            f"{type(generator).__name__}")

    @property
    def n(self) -> int:
        """Number of samples (streams)."""
        return self._core.n

    @property
    def generator(self) -> torch.Generator | None:
        """The parent generator (``None``: global RNG)."""
        return self._core.generator

    @property
    def generators(self) -> list[torch.Generator] | None:
        """The per-sample generators (``None`` without a parent generator), e.g. for diffusers' per-sample
        ``generator=[...]`` lists."""
        return list(self._core.gens) if self._core.generator is not None else None

    @property
    def draws(self) -> int:
        """Number of draws made so far (shared by streams built from one another)."""
        return self._core.draws

    def __len__(self) -> int:
        return self._core.n

    def __call__(self) -> Tensor:
        """The next standard normal draw, shaped like ``like``."""
        if self.shape is None:
            raise ValueError("this NoiseStream was built from a sample count: call randn(shape) or randn_like(x)")
        return self.randn(self.shape, dtype=self.dtype, device=self.device)

    def randn_like(self, x: Tensor) -> Tensor:
        """The next standard normal draw shaped like ``x`` (row ``i`` from stream ``i``)."""
        return self.randn(x.shape, dtype=x.dtype, device=x.device)

    def randn(self, shape: Sequence[int], *, dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None) -> Tensor:
        """The next standard normal draw of full shape ``(B, ...)`` (``B`` must equal the number of streams)."""
        core = self._core
        shape = tuple(int(s) for s in shape)
        self._check(shape)
        core.draws += 1
        if core.generator is None:
            return torch.randn(shape, dtype=dtype, device=device)
        per = shape[1:]
        key = (per, dtype)
        entry = core.buffers.get(key)
        if entry is None or entry[1] >= entry[2]:
            block = max(1, core.block_elements // max(1, math.prod(per)))
            gdev = core.generator.device
            if core.gens:
                buf = torch.stack([torch.randn((block, *per), generator=g, device=gdev, dtype=dtype)
                                   for g in core.gens])
            else:
                buf = torch.empty((0, block, *per), dtype=dtype, device=gdev)
            entry = core.buffers[key] = [buf, 0, block]
        out = entry[0][:, entry[1]]
        entry[1] += 1
        return out if device is None else out.to(device)

    def rand(self, shape: Sequence[int], *, dtype: torch.dtype = torch.float64,
             device: torch.device | str | None = None) -> Tensor:
        """Uniform ``[0, 1)`` draws of full shape ``(B, ...)`` (row ``i`` from stream ``i``)."""
        core = self._core
        shape = tuple(int(s) for s in shape)
        self._check(shape)
        core.draws += 1
        if core.generator is None:
            return torch.rand(shape, dtype=dtype, device=device)
        gdev = core.generator.device
        rows = [torch.rand(shape[1:], generator=g, device=gdev, dtype=dtype) for g in core.gens]
        out = torch.stack(rows) if rows else torch.empty(shape, dtype=dtype, device=gdev)
        return out if device is None else out.to(device)

    def _check(self, shape: tuple[int, ...]) -> None:
        if not shape or shape[0] != self._core.n:
            raise ValueError(f"a draw of shape {shape} from a NoiseStream of {self._core.n} samples: the leading "
                             "dimension must be the number of samples")


#: Where random draws come from: a generator (one batch-size-invariant draw), a :class:`NoiseStream` or ``None``
#: (the global RNG).
RandomSource = torch.Generator | NoiseStream | None


def check_finite(x: Tensor, *, name: str) -> Tensor:
    """Raise a ``ValueError`` naming ``name`` if ``x`` holds NaN or infinite values.

    Args:
        x: Tensor to check.
        name: What produced it (e.g. ``"model output"``), used in the message.

    Returns:
        ``x`` unchanged.
    """
    # one reduction: NaN/inf propagate into the sum (a finite tensor whose sum overflows is re-checked in full)
    if x.numel() == 1 and not x.is_complex():  # a scalar loss: read it, no kernel
        bad = not math.isfinite(float(x.detach()))
    else:
        bad = not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all())
    if bad:
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} contains {n_bad} non-finite values (NaN/inf). Check the network/inputs, the time range "
            "(endpoints where a conversion divides by zero), or lower the learning rate."
        )
    return x


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator:
    """Open a temporary file next to ``path`` and rename it onto ``path`` only if the block succeeds.

    Args:
        path: Destination file.
        mode: File mode, ``"wb"`` or ``"w"``.

    Yields:
        The open temporary file object.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results and checkpoints are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
