"""Adaptive-step ODE solvers (torchdiffeq) on the probability-flow ODE ``dx/dt = b(t, x)``.

The reference solution of every sampler test: ``reference/samplers.md`` §2 ("dopri5 reference": float64 and
``rtol = atol = 1e-10``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.samplers.base import CountingField, Sampler, StepInfo
from genlab.samplers.registry import register_sampler

__all__ = ["ADAPTIVE_METHODS", "Dopri5"]

#: torchdiffeq methods :class:`Dopri5` accepts (all embedded adaptive Runge–Kutta pairs).
ADAPTIVE_METHODS: tuple[str, ...] = ("dopri5", "dopri8", "bosh3", "adaptive_heun")


def _torchdiffeq():
    try:
        import torchdiffeq
    except ImportError as err:  # pragma: no cover - a core dependency
        raise ImportError("the adaptive samplers need torchdiffeq: pip install torchdiffeq") from err
    return torchdiffeq


@register_sampler
class Dopri5(Sampler):
    """Adaptive Dormand–Prince RK5(4) (Dormand & Prince 1980) through ``torchdiffeq.odeint``.

    Integrates the velocity from ``grid[0]`` to ``grid[-1]`` (increasing: generate; decreasing: encode). Only the
    ends of the grid set the interval; with ``return_trajectory=True`` (or a callback) the solver also steps onto
    every grid point and reports the states there. The step sizes are chosen by the solver, so the number of evaluations is counted, not predicted
    (:meth:`expected_nfe` is ``None``); step-size selection costs about two extra evaluations.

    The defaults ``rtol = atol = 1e-5`` suit float32 sampling; for reference solutions use float64 and
    ``rtol = atol = 1e-10`` (``reference/samplers.md`` §2). torchdiffeq's error norm is taken over the whole batch,
    so the accepted steps (and results, within tolerance) depend on the batch.

    Args:
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        method: ``"dopri5"`` (default), ``"dopri8"``, ``"bosh3"`` or ``"adaptive_heun"``.
        max_num_steps: Upper bound on accepted+rejected steps (a clear error instead of a hang on stiff problems).
    """

    name: ClassVar[str] = "dopri5"
    requires: ClassVar[frozenset[str]] = frozenset({"velocity"})

    def __init__(self, *, rtol: float = 1e-5, atol: float = 1e-5, method: str = "dopri5",
                 max_num_steps: int = 100_000) -> None:
        if method not in ADAPTIVE_METHODS:
            raise ValueError(f"method must be one of {ADAPTIVE_METHODS}, got {method!r}")
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"rtol and atol must be > 0, got rtol={rtol}, atol={atol}")
        if not (isinstance(max_num_steps, int) and max_num_steps > 0):
            raise ValueError(f"max_num_steps must be a positive integer, got {max_num_steps!r}")
        self.rtol, self.atol, self.method, self.max_num_steps = float(rtol), float(atol), method, max_num_steps

    def expected_nfe(self, steps: int) -> int | None:
        return None

    def _sample(
        self,
        field: CountingField,
        x: Tensor,
        grid: Tensor,
        *,
        cond: Any | None,
        generator: torch.Generator | None,
        callback: Callable[[StepInfo], None] | None,
        trajectory: list[Tensor] | None,
    ) -> tuple[Tensor, dict[str, Any]]:
        tdq = _torchdiffeq()
        lo, hi = float(grid.min()), float(grid.max())
        t_eval = grid if (trajectory is not None or callback is not None) else grid[[0, -1]]

        def func(t: Tensor, y: Tensor) -> Tensor:
            # torchdiffeq evaluates in the state's dtype; keep stage times inside the grid's interval
            tt = min(max(float(t), lo), hi)
            return field.predict(y, tt, "velocity", cond)

        t_solver = t_eval.to(x.dtype)
        # step exactly onto every output time (no dense-output interpolation error, no overshoot past the end)
        options = {"step_t": t_solver[1:], "max_num_steps": self.max_num_steps}
        try:
            states = tdq.odeint(func, x, t_solver, rtol=self.rtol, atol=self.atol, method=self.method,
                                options=options)
        except AssertionError as err:  # torchdiffeq signals max_num_steps / underflow with assertions
            raise ValueError(f"{self.method} failed: {err}; loosen rtol/atol or raise max_num_steps") from None
        if t_eval.numel() == grid.numel():
            for i in range(grid.numel() - 1):
                self._report(i, grid, states[i + 1], callback, trajectory)
        return states[-1], {"grid": t_eval}
