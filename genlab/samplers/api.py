"""``genlab.sample``: the one-line entry point (field, sampler name, steps, n, seed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from genlab.checks import check_count, check_device, check_field_dtype, check_sample_dtype, check_shape
from genlab.models.field import Field
from genlab.samplers.base import Sampler, SampleResult, StepInfo
from genlab.samplers.grids import make_grid
from genlab.samplers.registry import get_sampler
from genlab.utils import NoiseStream, check_finite, randn_per_sample

__all__ = ["sample"]


def _check_request(field: Field, *, n: Any, shape: Any, x_init: Any, seed: Any, device: Any,
                   dtype: Any) -> torch.device | None:
    """Argument checks of :func:`sample` (ValueError/TypeError naming the argument), before anything runs.

    Returns the checked device (``"auto"`` resolved), or ``None`` when none was given."""
    if not isinstance(field, Field):
        raise TypeError(f"field must be a genlab Field, got {type(field).__name__}")
    check_sample_dtype(dtype)
    if n is not None:
        check_count(n, name="n")
    if shape is not None:
        check_shape(shape)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    checked_device = check_device(device) if device is not None else None
    if x_init is not None:
        if not isinstance(x_init, Tensor) or not x_init.is_floating_point() or x_init.ndim < 1:
            raise TypeError("x_init must be a floating-point tensor of shape (n, ...)")
        if x_init.shape[0] == 0:
            raise ValueError("x_init holds no samples (its first dimension is 0)")
        check_sample_dtype(x_init.dtype, name="x_init.dtype")
        check_finite(x_init, name="x_init")
        check_field_dtype(field, x_init.dtype, name="x_init.dtype")
    else:
        check_field_dtype(field, dtype)
    return checked_device


def sample(
    field: Field,
    sampler: str | Sampler = "heun",
    *,
    steps: int | None = None,
    grid: str | Sequence[float] | Tensor | None = None,
    n: int | None = None,
    shape: Sequence[int] | None = None,
    x_init: Tensor | None = None,
    cond: Any | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    callback: Callable[[StepInfo], None] | None = None,
    return_trajectory: bool = False,
    grid_options: dict[str, Any] | None = None,
    progress: bool | None = None,
    **sampler_options: Any,
) -> SampleResult:
    """Sample ``field`` with any registered sampler.

    Example:
        >>> res = genlab.sample(field, sampler="dpmpp_2m", steps=10, n=64, shape=(2,), seed=0)  # doctest: +SKIP

    Args:
        field: The field to sample.
        sampler: Registered name (see ``genlab.samplers.available_samplers()``) or a :class:`Sampler`.
        steps: Number of grid steps (for named and recommended grids); ``None``: the sampler's
            :meth:`~genlab.samplers.base.Sampler.default_steps` (10, or a searched preset's own count).
        grid: Grid name (``uniform``, ``power``, ``log_snr``, ``karras``) or explicit times. ``None`` (default) uses
            the sampler's recommended grid (:meth:`Sampler.recommended_grid`: its :attr:`Sampler.default_grid`
            family, with ends where its conversions of this field are finite), so every sampler runs with no other
            argument on every path it supports.
        n: Number of samples (with ``shape``) when ``x_init`` is not given.
        shape: Per-sample shape, e.g. ``(2,)`` or ``(1, 16, 16)``.
        x_init: Initial state at the first grid time (default: N(0, I) scaled by the path's noise level for a
            Gaussian source; the known source ``cond`` for a bridge).
        cond: Conditioning (bridges: the known source x0).
        seed: Seed of a fresh generator (ignored when ``generator`` is given).
        generator: Random generator for the initial noise and stochastic samplers. With ``n`` samples drawn here it
            seeds one :class:`~genlab.utils.NoiseStream` per sample that gives the initial noise and every later
            draw of the sampler, so ``sample(..., n=100).x[:10]`` equals ``sample(..., n=10).x``.
        device: Device of the initial state (default: ``cond``'s, else the field parameters', else CPU).
        dtype: Dtype of the initial state.
        callback: Called after each step.
        progress: Bar over the steps (``None``: when stderr is a terminal, rank 0 only; ``True``/``False``).
        return_trajectory: Keep the states at every grid point.
        grid_options: Options of the named or recommended grid (``t_start``, ``t_end``, ``kappa``, ``rho``).
        **sampler_options: Constructor options of the sampler (e.g. ``eta=1.0``, ``order=3``).

    Returns:
        :class:`SampleResult`.
    """
    device = _check_request(field, n=n, shape=shape, x_init=x_init, seed=seed, device=device, dtype=dtype)
    smp = get_sampler(sampler, **sampler_options)
    interpolant = field.interpolant
    if device is None:
        if isinstance(cond, Tensor):
            device = cond.device
        elif x_init is not None:
            device = x_init.device
        else:
            params = list(field.parameters())
            device = params[0].device if params else torch.device("cpu")
    smp.check(field)  # refuse an incompatible path with the sampler's reason before building its grid
    if steps is None:
        steps = smp.default_steps(field)
    if grid is None:
        times = smp.recommended_grid(field, steps, device=device, **(grid_options or {}))
    else:
        times = make_grid(grid, steps, interpolant, device=device, **(grid_options or {}))
    if generator is None and seed is not None:
        gen_device = torch.device(device) if torch.device(device).type == "cuda" else torch.device("cpu")
        generator = torch.Generator(device=gen_device).manual_seed(int(seed))
    if x_init is None:
        if interpolant.conditional_source:
            x0 = field.known_source(cond)
            x_init = x0
        elif interpolant.gaussian_source:
            if n is None or shape is None:
                raise ValueError("pass n= and shape= (or x_init=) to sample a Gaussian-source path")
            if generator is not None:
                generator = NoiseStream(int(n), generator)
            noise = randn_per_sample((int(n), *shape), generator=generator, device=device, dtype=dtype)
            x_init = interpolant.init_scale(times[0], noise).reshape(-1, *([1] * len(shape))) * noise
        else:
            raise ValueError("this path has a data source: pass x_init= (samples of the source distribution)")
    from genlab.progress import ProgressBar

    with ProgressBar(int(times.numel() - 1), desc=f"sampling ({smp.name})", progress=progress, then=callback) as bar:
        return smp.sample(field, x_init, times, cond=cond, generator=generator, callback=bar.callback(),
                          return_trajectory=return_trajectory)
