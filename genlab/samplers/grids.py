"""Time grids. Samplers never build their own: they receive one of these (or an explicit/searched grid).

Every grid is a float64 tensor of ``N + 1`` genlab times, increasing for generation (source → data). Pass
``reverse=True`` (or flip it) to encode. Formulas: ``reference/samplers.md`` §1, written in genlab time, where the
"diffusion time" of the references is ``s = 1 − t``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genlab.interpolants.interpolant import Interpolant

__all__ = ["END_OFFSET", "GRIDS", "explicit", "karras", "log_snr", "make_grid", "open_ends", "power",
           "recommended_grid", "uniform"]

_F64 = torch.float64


def _steps(steps: int) -> int:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return steps


def _finish(t: Tensor, reverse: bool) -> Tensor:
    return t.flip(0) if reverse else t


def uniform(steps: int, *, t_start: float = 0.0, t_end: float = 1.0, reverse: bool = False,
            device: torch.device | str | None = None) -> Tensor:
    """Uniform in t (DDIM "uniform", DBIM, rectified-flow Euler).

    Args:
        steps: Number of steps N.
        t_start: First time (source side).
        t_end: Last time (data side).
        reverse: Return the grid from ``t_end`` to ``t_start`` (encoding).
        device: Device of the grid.

    Returns:
        ``(N+1,)`` float64 times.
    """
    _check_range(t_start, t_end)
    return _finish(torch.linspace(t_start, t_end, _steps(steps) + 1, dtype=_F64, device=device), reverse)


def power(steps: int, *, kappa: float = 2.0, t_start: float = 0.0, t_end: float = 1.0 - 1e-3,
          reverse: bool = False, device: torch.device | str | None = None) -> Tensor:
    """Power grid in diffusion time s = 1 − t: ``s_i = (s_0^{1/κ} + r(s_N^{1/κ} − s_0^{1/κ}))^κ`` (DEIS
    ``ts_phase="t"``, ``ts_order=κ``; κ = 2 is the "quadratic" grid of Zhang & Chen 2023). Dense near the data.

    Args:
        steps: Number of steps N.
        kappa: Exponent κ > 0.
        t_start: First time.
        t_end: Last time (DEIS's sampling ε = 1e-3 by default).
        reverse: Encoding order.
        device: Device.

    Returns:
        ``(N+1,)`` float64 times.
    """
    _check_range(t_start, t_end)
    if not kappa > 0:
        raise ValueError(f"kappa must be > 0, got {kappa}")
    r = torch.linspace(0, 1, _steps(steps) + 1, dtype=_F64, device=device)
    s0, s1 = (1 - t_start) ** (1 / kappa), (1 - t_end) ** (1 / kappa)
    return _finish(1 - (s0 + r * (s1 - s0)) ** kappa, reverse)


#: |λ| beyond which a default grid end counts as degenerate: one coefficient is below 1e-13 of the other, i.e. a
#: zero that only rounding made non-zero (cos(π/2) ≈ 6e-17 gives |λ| ≈ 37).
_LAM_DEGENERATE = 30.0


def _degenerate(lam: Tensor) -> bool:
    return not bool((torch.isfinite(lam) & (lam.abs() <= _LAM_DEGENERATE)).all())


def _auto_range(interpolant: Interpolant, t_start: float | None, t_end: float | None) -> tuple[float, float]:
    """Pull the default ends inside by :data:`END_OFFSET` (1e-3) where the log-SNR is infinite (α = 0 at t = 1, β = 0 at t = 0), or so
    large that the end is such a zero up to rounding (|λ| > 30); explicit ends are kept but must have a finite λ."""
    fn = interpolant.lam
    ts = 0.0 if t_start is None else t_start
    te = 1.0 if t_end is None else t_end
    if t_start is None and _degenerate(fn(torch.tensor([ts], dtype=_F64))):
        ts = END_OFFSET
    if t_end is None and _degenerate(fn(torch.tensor([te], dtype=_F64))):
        te = 1 - END_OFFSET
    _check_range(ts, te)
    for v in (ts, te):
        if not bool(torch.isfinite(fn(torch.tensor([v], dtype=_F64))).all()):
            raise ValueError(f"the log-SNR is infinite at t={v}; choose t_start/t_end strictly inside (0, 1)")
    return ts, te


def log_snr(steps: int, interpolant: Interpolant, *, t_start: float | None = None, t_end: float | None = None,
            reverse: bool = False, device: torch.device | str | None = None) -> Tensor:
    """Uniform in λ = log(signal/noise) (DPM-Solver "logSNR", DEIS ``ts_phase="log"``).

    Times come from :meth:`Interpolant.time_at_lam` (the schedule's closed-form ``snr_inverse`` when it has one,
    else bisection on λ(t)).

    Args:
        steps: Number of steps N.
        interpolant: A path with :meth:`Interpolant.semilinear` structure.
        t_start: First time (default 0, or 1e-3 where λ(0) = −∞: λ ≈ −6.9 on rectified flow, −6.5 on the trig and
            cosine-VP paths).
        t_end: Last time (default 1, or 1 − 1e-3 where λ(1) = +∞: λ ≈ 6.9 on rectified flow, 6.5 on trig).
        reverse: Encoding order.
        device: Device.

    Returns:
        ``(N+1,)`` float64 times.
    """
    fn = interpolant.lam
    ts, te = _auto_range(interpolant, t_start, t_end)
    lam0, lam1 = (float(fn(torch.tensor([v], dtype=_F64))) for v in (ts, te))
    lams = torch.linspace(lam0, lam1, _steps(steps) + 1, dtype=_F64)
    t = interpolant.time_at_lam(lams, t_lo=ts, t_hi=te)
    t[0], t[-1] = ts, te
    return _finish(_strictly_monotone(t, "log_snr", lam0, lam1).to(device), reverse)


def karras(steps: int, interpolant: Interpolant, *, rho: float = 7.0, t_start: float | None = None,
           t_end: float | None = None, reverse: bool = False, device: torch.device | str | None = None) -> Tensor:
    """Karras et al. (NeurIPS'22, eq. 5) grid in the noise-to-signal ratio σ̃ = noise/signal:
    ``σ̃_i = (σ̃_max^{1/ρ} + r(σ̃_min^{1/ρ} − σ̃_max^{1/ρ}))^ρ`` with ρ = 7 (the paper's default), mapped back to t.

    Args:
        steps: Number of steps N.
        interpolant: A path with semilinear structure (σ̃ = e^{−λ}).
        rho: The exponent ρ.
        t_start: First time (default 0 or 1e-3, see :func:`log_snr`).
        t_end: Last time.
        reverse: Encoding order.
        device: Device.

    Returns:
        ``(N+1,)`` float64 times (mapped back by :meth:`Interpolant.time_at_lam`).
    """
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    fn = interpolant.lam
    ts, te = _auto_range(interpolant, t_start, t_end)
    s_max, s_min = (math.exp(-float(fn(torch.tensor([v], dtype=_F64)))) for v in (ts, te))
    r = torch.linspace(0, 1, _steps(steps) + 1, dtype=_F64)
    sig = (s_max ** (1 / rho) + r * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    t = interpolant.time_at_lam(-torch.log(sig), t_lo=ts, t_hi=te)
    t[0], t[-1] = ts, te
    return _finish(_strictly_monotone(t, "karras", -math.log(s_max), -math.log(s_min)).to(device), reverse)


def _strictly_monotone(t: Tensor, name: str, lam0: float, lam1: float) -> Tensor:
    """Raise when distinct log-SNR targets map to equal float64 times (a λ range far wider than the path resolves)."""
    d = t[1:] - t[:-1]
    if not (bool((d > 0).all()) or bool((d < 0).all())):
        raise ValueError(
            f"the {name} grid collapses: λ from {lam0:.4g} to {lam1:.4g} puts several steps at the same float64 time; "
            "pass t_start/t_end where the log-SNR is moderate (e.g. |λ| < 10) or use fewer steps"
        )
    return t


def explicit(times: Sequence[float] | Tensor, *, device: torch.device | str | None = None) -> Tensor:
    """A user-given (e.g. searched) grid, validated: 1-D, in [0, 1], strictly monotone.

    Args:
        times: The times.
        device: Device.

    Returns:
        ``(N+1,)`` float64 times.
    """
    t = torch.as_tensor(times, dtype=_F64, device=device).flatten()
    if t.numel() < 2:
        raise ValueError("an explicit grid needs at least 2 times")
    if bool(((t < 0) | (t > 1)).any()):
        raise ValueError("explicit grid times must lie in [0, 1]")
    d = t[1:] - t[:-1]
    if not (bool((d > 0).all()) or bool((d < 0).all())):
        raise ValueError("explicit grid must be strictly monotone")
    return t


def _check_range(t_start: float, t_end: float) -> None:
    if not (0 <= t_start <= 1 and 0 <= t_end <= 1) or t_start == t_end:
        raise ValueError(f"need t_start, t_end in [0, 1] and distinct; got {t_start}, {t_end}")


def _dbim(steps: int, interpolant: Interpolant, *, tau_min: float | None = None, offset: float = 1e-3,
          device: torch.device | str | None = None) -> Tensor:
    """DBIM's bridge grid (:func:`genlab.samplers.dbim.dbim_grid`; imported lazily, it lives with DBIM)."""
    from genlab.samplers.dbim import dbim_grid

    return dbim_grid(steps, interpolant, tau_min=tau_min, offset=offset, device=device)


def _ddbm(steps: int, interpolant: Interpolant, *, rho: float = 7.0, tau_min: float | None = None,
          device: torch.device | str | None = None) -> Tensor:
    """DDBM's Karras bridge grid (:func:`genlab.samplers.dbim.ddbm_grid`)."""
    from genlab.samplers.dbim import ddbm_grid

    return ddbm_grid(steps, interpolant, rho=rho, tau_min=tau_min, device=device)


GRIDS = {"uniform": uniform, "power": power, "log_snr": log_snr, "karras": karras, "dbim": _dbim, "ddbm": _ddbm}


def make_grid(grid: str | Sequence[float] | Tensor, steps: int | None = None,
              interpolant: Interpolant | None = None, **kwargs) -> Tensor:
    """Build a grid by name (``uniform``, ``power``, ``log_snr``, ``karras``) or validate an explicit one.

    Args:
        grid: Name or explicit times.
        steps: Number of steps (for named grids).
        interpolant: Path (for ``log_snr`` and ``karras``).
        **kwargs: Grid options (``t_start``, ``t_end``, ``kappa``, ``rho``, ``reverse``, ``device``).

    Returns:
        ``(N+1,)`` float64 times.
    """
    if not isinstance(grid, str):
        return explicit(grid, device=kwargs.get("device"))
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; choose one of {sorted(GRIDS)} or pass explicit times")
    if steps is None:
        raise ValueError(f"grid {grid!r} needs steps=")
    if grid in ("log_snr", "karras", "dbim", "ddbm"):
        if interpolant is None:
            raise ValueError(f"grid {grid!r} needs the interpolant (its log-SNR)")
        return GRIDS[grid](steps, interpolant, **kwargs)
    return GRIDS[grid](steps, **kwargs)


#: How far inside (0, 1) a default grid end moves where the sampler's conversion is singular at the end itself.
END_OFFSET = 1e-3
_PROBE_MID = 0.5


def _converts(field: Any, kind: str, t: float) -> bool:
    """Whether ``field``'s output converts to ``kind`` at time ``t`` with finite weights (probed on a unit state)."""
    x = torch.ones(1, 1, dtype=_F64)
    cond = x if field.interpolant.conditional_source else None
    try:
        out = field.convert_output(x, x, torch.tensor([t], dtype=_F64), kind, cond)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return False
    return bool(torch.isfinite(out).all())


def open_ends(field: Any, consumes: Sequence[str], *, evaluates_end: bool = True) -> tuple[float, float]:
    """Default ends of a grid for a sampler that converts ``field``'s output to the kinds ``consumes``.

    An end is 0 (resp. 1) unless a conversion that works in the interior (t = 0.5) is singular at that end — e.g.
    ε → velocity on VP at t = 1 (α = 0), x1 → velocity on a DDBM bridge at both ends (γ = 0) — where it moves
    :data:`END_OFFSET` inside. Conversions that fail in the interior too are left to the sampler's own check (it
    refuses the path with its reason), so the ends never hide an incompatibility.

    Args:
        field: The :class:`~genlab.models.field.Field` to be sampled.
        consumes: Prediction kinds the sampler evaluates.
        evaluates_end: Whether the sampler evaluates the field at the last grid time (Heun, RK4, dopri5); samplers
            with one evaluation at the start of each step (Euler, DDIM, multistep tables) may end where the
            conversion is singular (DDIM onto t = 1 on VP).

    Returns:
        ``(t_start, t_end)``.
    """
    t_start, t_end = 0.0, 1.0
    for kind in consumes:
        if not _converts(field, kind, _PROBE_MID):
            continue
        if not _converts(field, kind, 0.0):
            t_start = END_OFFSET
        if evaluates_end and not _converts(field, kind, 1.0):
            t_end = 1.0 - END_OFFSET
    return t_start, t_end


def recommended_grid(name: str, steps: int, field: Any, *, consumes: Sequence[str] = (), evaluates_end: bool = True,
                     device: torch.device | str | None = None, **options: Any) -> Tensor:
    """A sampler's recommended grid on ``field``'s path: family ``name`` with ends from :func:`open_ends`.

    ``log_snr`` and ``karras`` also keep both ends where the log-SNR is finite (their own default); explicit
    ``t_start``/``t_end`` in ``options`` win over the computed ends.

    Args:
        name: Grid family (a key of :data:`GRIDS`).
        steps: Number of steps N.
        field: The field to be sampled.
        consumes: Prediction kinds the sampler evaluates (see :func:`open_ends`).
        evaluates_end: Whether the sampler evaluates at the last grid time (see :func:`open_ends`).
        device: Device of the grid.
        **options: Further grid options (``kappa``, ``rho``, ``t_start``, ``t_end``).

    Returns:
        ``(N+1,)`` float64 times.

    Raises:
        ValueError: For an unknown family or bad steps.
    """
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; choose one of {sorted(GRIDS)}")
    t_start, t_end = open_ends(field, consumes, evaluates_end=evaluates_end)
    interp = field.interpolant
    if name in ("log_snr", "karras"):
        options.setdefault("t_start", t_start if t_start > 0 else None)
        options.setdefault("t_end", t_end if t_end < 1 else None)
        return GRIDS[name](steps, interp, device=device, **options)
    options.setdefault("t_start", t_start)
    if name == "uniform" or t_end < 1:
        options.setdefault("t_end", t_end)
    return GRIDS[name](steps, device=device, **options)
