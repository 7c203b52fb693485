"""Fixed-step explicit Runge–Kutta samplers of the probability-flow ODE ``dx/dt = b(t, x)``.

They only need the velocity, so they run on every path (and in both directions: a decreasing grid encodes).
Euler and the classical RK4 are textbook; Heun follows EDM (Karras et al. NeurIPS'22, Alg. 1): with
``final_euler=True`` the trapezoidal correction is skipped on the final step, as EDM does when the grid ends where the
velocity cannot be evaluated (σ = 0; in genlab e.g. t = 1 on VP paths, where α̇ = −∞). By default every step is
corrected, so Heun and RK4 (a stage at c = 1) evaluate the field at the last grid time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor

from genlab.samplers.base import CountingField, Sampler, StepInfo
from genlab.samplers.registry import register_sampler
from genlab.samplers.steps import EulerStep, Step, euler_update, heun_update
from genlab.utils import RandomSource

__all__ = ["RK4", "ButcherTableau", "Euler", "Heun", "Midpoint", "RungeKutta"]


class ButcherTableau:
    """An explicit Runge–Kutta tableau ``(a, b, c)``.

    Args:
        a: Strictly lower-triangular stage coefficients (list of rows).
        b: Weights.
        c: Nodes.
    """

    def __init__(self, a: list[list[float]], b: list[float], c: list[float]) -> None:
        if not (len(a) == len(b) == len(c)):
            raise ValueError("a, b, c must have one entry per stage")
        self.a, self.b, self.c = a, b, c

    @property
    def stages(self) -> int:
        """Number of stages (network evaluations per step)."""
        return len(self.b)


class RungeKutta(Sampler):
    """Generic explicit Runge–Kutta on the velocity field.

    Args:
        tableau: The Butcher tableau.
    """

    name: ClassVar[str] = "rk"
    requires: ClassVar[frozenset[str]] = frozenset({"velocity"})

    def __init__(self, tableau: ButcherTableau) -> None:
        self.tableau = tableau

    def expected_nfe(self, steps: int) -> int | None:
        return self.tableau.stages * steps

    def _sample(
        self,
        field: CountingField,
        x: Tensor,
        grid: Tensor,
        *,
        cond: Any | None,
        generator: RandomSource,
        callback: Callable[[StepInfo], None] | None,
        trajectory: list[Tensor] | None,
    ) -> tuple[Tensor, dict[str, Any]]:
        tab = self.tableau
        for i in range(grid.numel() - 1):
            t, h = grid[i], grid[i + 1] - grid[i]
            ks: list[Tensor] = []
            for s in range(tab.stages):
                xs = x
                for j, a_sj in enumerate(tab.a[s][:s]):
                    if a_sj != 0.0:
                        xs = xs + (h * a_sj).to(x.dtype) * ks[j]
                ks.append(field.predict(xs, t + tab.c[s] * h, "velocity", cond))
            for s, b_s in enumerate(tab.b):
                if b_s != 0.0:
                    x = x + (h * b_s).to(x.dtype) * ks[s]
            x = self._report(i, grid, x, callback, trajectory)
        return x, {}


@register_sampler
class Euler(RungeKutta):
    """Forward Euler, ``x_{i+1} = x_i + (t_{i+1} − t_i)·b(t_i, x_i)`` (order 1; IADB's Alg. 4 on the linear path)."""

    name: ClassVar[str] = "euler"

    def __init__(self) -> None:
        super().__init__(ButcherTableau([[0.0]], [1.0], [0.0]))

    def step_map(self) -> Step:
        return EulerStep()

    def _sample(
        self,
        field: CountingField,
        x: Tensor,
        grid: Tensor,
        *,
        cond: Any | None,
        generator: RandomSource,
        callback: Callable[[StepInfo], None] | None,
        trajectory: list[Tensor] | None,
    ) -> tuple[Tensor, dict[str, Any]]:
        if getattr(self, "_transition", None) is not None:  # a guided run replaced the step
            x = self._step_loop(field, x, grid, self.step_map(), cond=cond, generator=generator, callback=callback,
                                trajectory=trajectory)
            return x, {}
        return super()._sample(field, x, grid, cond=cond, generator=generator, callback=callback,
                               trajectory=trajectory)


@register_sampler
class Midpoint(RungeKutta):
    """Explicit midpoint rule (order 2, 2 evaluations per step)."""

    name: ClassVar[str] = "midpoint"

    def __init__(self) -> None:
        super().__init__(ButcherTableau([[0.0, 0.0], [0.5, 0.0]], [0.0, 1.0], [0.0, 0.5]))


@register_sampler
class RK4(RungeKutta):
    """Classical 4th-order Runge–Kutta (4 evaluations per step)."""

    name: ClassVar[str] = "rk4"

    def __init__(self) -> None:
        super().__init__(ButcherTableau(
            [[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1.0, 0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6],
            [0, 0.5, 0.5, 1.0]))


@register_sampler
class Heun(Sampler):
    """Heun's 2nd-order method as in EDM (Karras et al. NeurIPS'22, Alg. 1).

    ``x̃ = x_i + h·d_i``, ``x_{i+1} = x_i + h·(d_i + b(t_{i+1}, x̃))/2``. With ``final_euler=True`` (EDM's choice
    when the last σ is 0) the last step is plain Euler, so a grid of N steps costs 2N − 1 evaluations; by default
    every step is corrected (2N evaluations) because genlab grids end at finite, non-singular times.

    Args:
        final_euler: Make the last step an Euler step.
    """

    name: ClassVar[str] = "heun"
    requires: ClassVar[frozenset[str]] = frozenset({"velocity"})

    def __init__(self, *, final_euler: bool = False) -> None:
        self.final_euler = bool(final_euler)

    def expected_nfe(self, steps: int) -> int | None:
        return 2 * steps - (1 if self.final_euler else 0)

    def _sample(
        self,
        field: CountingField,
        x: Tensor,
        grid: Tensor,
        *,
        cond: Any | None,
        generator: RandomSource,
        callback: Callable[[StepInfo], None] | None,
        trajectory: list[Tensor] | None,
    ) -> tuple[Tensor, dict[str, Any]]:
        n = grid.numel() - 1
        for i in range(n):
            t, t_next = grid[i], grid[i + 1]
            d = field.predict(x, t, "velocity", cond)
            if self.final_euler and i == n - 1:
                x = euler_update(x, t, t_next, d)
            else:
                x = heun_update(field, d, x, t, t_next, cond)
            x = self._report(i, grid, x, callback, trajectory)
        return x, {}
