"""Small shared helpers: broadcasting, per-sample noise, validation and atomic file writes.

Everything here is pure (no global state) and device-agnostic.
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
    "append_dims",
    "as_time",
    "atomic_write",
    "check_finite",
    "randn_like_per_sample",
    "randn_per_sample",
    "schedule_dtype",
]


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
    if check_range and bool(((t < 0) | (t > 1)).any()):
        raise ValueError(f"{name} must lie in [0, 1] (genlab time); got values in [{t.min():.4g}, {t.max():.4g}]")
    return t


def randn_per_sample(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal noise drawn one sample at a time so results do not depend on the batch size.

    With a generator, row ``i`` depends only on the generator state and ``i``, so the first ``k`` rows of a batch of
    ``n`` equal a batch of ``k`` drawn from the same seed. On CPU this is a vectorised Box–Muller transform of
    sequentially drawn uniforms (float64); on other devices, one ``randn`` call per row. Without a generator it is
    plain ``torch.randn``.

    Args:
        shape: Full shape ``(B, ...)``.
        generator: Optional generator; its device decides where the noise is drawn.
        device: Device of the result.
        dtype: Dtype of the result.

    Returns:
        A tensor of shape ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    gen_device = generator.device
    n, per = shape[0], math.prod(shape[1:])
    if gen_device.type == "cpu":
        # CPU uniforms are drawn sequentially (the first k·m numbers do not depend on how many are drawn), so one
        # vectorised Box–Muller transform of 2·⌈m/2⌉ uniforms per row is batch-size invariant, unlike one randn call.
        half = (per + 1) // 2
        u = torch.rand((n, 2, half), generator=generator, dtype=torch.float64)
        radius = torch.sqrt(-2.0 * torch.log1p(-u[:, 0]))  # 1 − u ∈ (0, 1]
        angle = (2.0 * math.pi) * u[:, 1]
        z = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)[:, :per]
        out = z.reshape(shape).to(dtype)
    else:
        # other devices: one draw per row (the device generator's element order may depend on the launch size)
        rows = [torch.randn(shape[1:], generator=generator, device=gen_device, dtype=dtype) for _ in range(n)]
        out = torch.stack(rows) if rows else torch.empty(shape, device=gen_device, dtype=dtype)
    return out.to(device=device if device is not None else gen_device)


def randn_like_per_sample(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """:func:`randn_per_sample` with the shape, device and dtype of ``x``."""
    return randn_per_sample(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def check_finite(x: Tensor, *, name: str) -> Tensor:
    """Raise a ``ValueError`` naming ``name`` if ``x`` holds NaN or infinite values.

    Args:
        x: Tensor to check.
        name: What produced it (e.g. ``"model output"``), used in the message.

    Returns:
        ``x`` unchanged.
    """
    # one reduction: NaN/inf propagate into the sum (a finite tensor whose sum overflows is re-checked in full)
    if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
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
