"""Argument checks shared by the public entry points (``genlab.sample``, ``sample_run``, ``evaluate``, the CLI).

Each check raises a :class:`ValueError` or :class:`TypeError` whose message names the argument, what was
given and how to fix it, so that bad input ends in one clear line instead of a torch traceback from deep inside
a sampler. ``name`` is how the argument is spelled where the user wrote it (``"n"`` in Python, ``"--n"`` on the
command line).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "SAMPLING_DTYPES",
    "check_count",
    "check_device",
    "check_field_dtype",
    "check_metrics",
    "check_sample_dtype",
    "check_shape",
]

#: Dtypes a sampler integrates in (time grids and coefficients need at least single precision).
SAMPLING_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64)


def _given(name: str, value: Any) -> str:
    """How the user wrote the argument: ``--device cuda`` on the command line, ``device='cuda'`` in Python."""
    return f"{name} {value}" if name.startswith("--") else f"{name}={str(value)!r}"


def check_count(value: Any, *, name: str = "n") -> int:
    """A positive integer count (``n``, ``steps``).

    Args:
        value: The given value.
        name: Argument name used in the message.

    Returns:
        ``int(value)``.

    Raises:
        TypeError: If ``value`` is not an integer (``bool`` included).
        ValueError: If ``value < 1``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np

            ok = isinstance(value, np.integer)
        except ImportError:  # pragma: no cover - numpy ships with torch
            ok = False
        if not ok:
            raise TypeError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
    if int(value) < 1:
        raise ValueError(f"{name} must be a positive integer (at least 1), got {int(value)}")
    return int(value)


def check_shape(shape: Any, *, name: str = "shape") -> tuple[int, ...]:
    """A per-sample shape: a sequence of positive integers.

    Args:
        shape: The given shape.
        name: Argument name used in the message.

    Returns:
        The shape as a tuple of ints.

    Raises:
        TypeError: If ``shape`` is not a sequence of integers.
        ValueError: If a dimension is below 1.
    """
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (Sequence, torch.Size)):
        raise TypeError(f"{name} must be a sequence of positive integers such as (2,), got {shape!r}")
    return tuple(check_count(d, name=f"{name}[{i}]") for i, d in enumerate(shape))


def check_device(device: Any, *, name: str = "device") -> torch.device:
    """A device that exists here and can hold samples.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:<i>"``, ``"mps"``, ``"auto"`` (CUDA if available, else CPU) or a
            :class:`torch.device`.
        name: Argument name used in the message (``"--device"`` on the command line).

    Returns:
        The :class:`torch.device`.

    Raises:
        TypeError: If ``device`` is neither a string nor a device.
        ValueError: If the string is not a device, the device is ``meta``, or it is not available here.
    """
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name} must be a device name such as 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"{_given(name, device)} is not a device; use 'cpu', 'cuda', 'cuda:<index>' or 'mps'") from None
    if dev.type == "meta":
        raise ValueError(f"{_given(name, 'meta')} holds no values and cannot be sampled on; use 'cpu' or 'cuda'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{_given(name, device)} was requested but CUDA is not available here; use "
                             f"{_given(name, 'cpu')}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{_given(name, device)}: only {torch.cuda.device_count()} CUDA device(s) here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{_given(name, device)} was requested but MPS is not available here; use "
                         f"{_given(name, 'cpu')}")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{_given(name, device)} is not supported; use 'cpu', 'cuda', 'cuda:<index>' or 'mps'")
    return dev


def check_sample_dtype(dtype: Any, *, name: str = "dtype") -> torch.dtype:
    """A dtype a sampler can integrate in (:data:`SAMPLING_DTYPES`).

    Args:
        dtype: The given dtype.
        name: Argument name used in the message.

    Returns:
        ``dtype``.

    Raises:
        TypeError: If ``dtype`` is not a :class:`torch.dtype`.
        ValueError: If it is not float32 or float64 (half precisions lose the time grid and coefficients; run
            the network under ``torch.autocast`` instead).
    """
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{name} must be a torch.dtype (torch.float32 or torch.float64), got {dtype!r}")
    if dtype not in SAMPLING_DTYPES:
        raise ValueError(
            f"{name}={dtype} is not supported for sampling; use torch.float32 or torch.float64 (for a "
            "half-precision network, keep dtype=torch.float32 and run the network under torch.autocast)"
        )
    return dtype


def check_field_dtype(field: nn.Module, dtype: torch.dtype, *, name: str = "dtype") -> None:
    """The state dtype must match the dtype of the field's floating parameters (when it has any).

    Args:
        field: The field (an ``nn.Module``; exact fields without parameters always pass).
        dtype: Dtype of the sampled states.
        name: Argument name used in the message.

    Raises:
        TypeError: If the network's parameters have another floating dtype.
    """
    dtypes = {p.dtype for p in field.parameters() if p.is_floating_point()} if isinstance(field, nn.Module) else set()
    if dtypes and dtype not in dtypes:
        have = ", ".join(sorted(str(d) for d in dtypes))
        raise TypeError(
            f"{name}={dtype} does not match the network's parameters ({have}); pass {name}={have} or convert the "
            f"network (e.g. .to({dtype}))"
        )


def check_metrics(metrics: str | Iterable[str] | None, allowed: Sequence[str], *, name: str = "metrics"
                  ) -> list[str] | None:
    """Metric names: a list, one name, or a comma-separated string; every name must be allowed.

    Args:
        metrics: ``None`` (the defaults), ``"sw"``, ``"sw,mmd"`` or ``["sw", "mmd"]``.
        allowed: The known metric names.
        name: Argument name used in the message.

    Returns:
        The list of names (``None`` stays ``None``).

    Raises:
        TypeError: If ``metrics`` is neither a string nor an iterable of strings.
        ValueError: If it is empty or names an unknown metric.
    """
    if metrics is None:
        return None
    if isinstance(metrics, str):
        names = [m.strip() for m in metrics.split(",")]
    else:
        try:
            names = list(metrics)
        except TypeError:
            raise TypeError(f"{name} must be a metric name, a comma-separated string or a list of names, got "
                            f"{metrics!r}") from None
        if not all(isinstance(m, str) for m in names):
            raise TypeError(f"{name} must hold metric names (strings), got {names!r}")
        names = [m.strip() for m in names]
    names = [m for m in names if m]
    if not names:
        raise ValueError(f"{name} is empty; choose among {list(allowed)}")
    unknown = [m for m in names if m not in allowed]
    if unknown:
        raise ValueError(f"{name}: unknown metric(s) {unknown}; allowed: {list(allowed)}")
    return list(dict.fromkeys(names))
