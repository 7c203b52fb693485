"""The sampler contract: one signature for every sampler, NFE counted by wrapping the field.

``sampler.sample(field, x_init, grid, *, cond=None, generator=None, callback=None, return_trajectory=False,
grad=False, hook=None, transition=None)`` returns a :class:`SampleResult`. Samplers never build their own grid (they
receive one from :mod:`genlab.samplers.grids`), declare what structure they need in :attr:`Sampler.requires`, and
check it before the first model call.

The step engine: every loop reports each step through :meth:`Sampler._report`, which applies an optional post-step
``hook`` (guidance corrections such as DPS's, :mod:`genlab.inverse`); samplers whose step is one evaluation and one
:class:`~genlab.samplers.steps.Step` (DDIM, IADB, Euler) expose it as :meth:`Sampler.step_map` and accept a
``transition`` that replaces it (guidance methods that re-shape the transition: STSL, Dreamguider, DDS).
``grad=True`` lets gradients flow through the run (otherwise it runs under ``torch.no_grad``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.interpolants.interpolant import CAPABILITIES, Interpolant
from genlab.models.field import Field
from genlab.samplers.steps import Step
from genlab.utils import NoiseStream, RandomSource, check_finite

__all__ = [
    "CAPABILITIES",
    "CountingField",
    "Prediction",
    "SampleResult",
    "Sampler",
    "StepHook",
    "StepInfo",
    "Transition",
    "capabilities",
]

def capabilities(interpolant: Interpolant, field_kind: str | None = None) -> set[str]:
    """The structures ``interpolant`` offers a field of ``field_kind`` (keys of :data:`CAPABILITIES`).

    A thin call to :meth:`genlab.interpolants.Interpolant.capabilities`, the one place the rule lives.

    Args:
        interpolant: The path.
        field_kind: Kind of the field that will be sampled (a two-sided path with an unknown source offers only
            what that one field determines).

    Returns:
        A set of capability names (empty when no field of that kind lives on the path).
    """
    return set(interpolant.capabilities(field_kind) or ())


@dataclass
class StepInfo:
    """What a sampler reports to ``callback`` after each step.

    Attributes:
        i: Step index.
        t: Time at the start of the step.
        t_next: Time at its end.
        x: State at ``t_next``.
        x1_hat: Latest data prediction, when the sampler has one.
    """

    i: int
    t: float
    t_next: float
    x: Tensor
    x1_hat: Tensor | None = None


#: A post-step hook: called with the :class:`StepInfo` of each step, returns the corrected state (or ``None``).
StepHook = Callable[[StepInfo], "Tensor | None"]

#: A replacement transition ``(x, t, t_next, pred, noise) -> x_next`` for samplers with a :meth:`Sampler.step_map`.
Transition = Callable[[Tensor, Tensor, Tensor, "Prediction", "NoiseStream"], Tensor]


@dataclass
class SampleResult:
    """Output of every sampler.

    Attributes:
        x: Final state.
        nfe: Number of network evaluations, counted by wrapping the field.
        grid: The time grid used (``(N+1,)``; adaptive solvers report the times they stopped at).
        trajectory: States at every grid point (including ``x_init``) when requested.
        aux: Sampler-specific extras (e.g. ``{"last_pair": ...}`` for BDIA, ``{"eps_boot": ...}`` for DBIM).
    """

    x: Tensor
    nfe: int
    grid: Tensor
    trajectory: list[Tensor] | None = None
    aux: dict[str, Any] = field(default_factory=dict)


class Prediction:
    """One network evaluation, convertible to any kind without another call.

    Args:
        field: The field that produced it.
        raw: The raw output (of ``field.kind``).
        x_t: Input state.
        t: Input time.
        cond: Conditioning used.
    """

    def __init__(self, field: Field, raw: Tensor, x_t: Tensor, t: Tensor | float, cond: Any | None) -> None:
        self.field, self.raw, self.x_t, self.t, self.cond = field, raw, x_t, t, cond
        self._cache: dict[tuple[str, Any], Tensor] = {}

    def __call__(self, kind: str, *, eps: Tensor | float | None = None) -> Tensor:
        """The prediction converted to ``kind``."""
        key = (kind, None if eps is None else float(eps) if not isinstance(eps, Tensor) else id(eps))
        if key not in self._cache:
            self._cache[key] = self.field.convert_output(self.raw, self.x_t, self.t, kind, self.cond, eps=eps)
        return self._cache[key]

    def endpoints(self) -> tuple[Tensor, Tensor]:
        """``(x̂0, x̂1)``: the source estimate (ε for a Gaussian source; the known x0 for bridges) and data."""
        x1_hat = self("x1")
        known = self.field.known_source(self.cond)
        if known is not None:
            return known, x1_hat
        return self("x0"), x1_hat


class CountingField:
    """Wraps a :class:`Field`, counts its evaluations and checks their outputs for NaN/inf.

    Args:
        field: The field.
    """

    def __init__(self, field: Field) -> None:
        self.field = field
        self.nfe = 0

    @property
    def interpolant(self) -> Interpolant:
        """The field's interpolant."""
        return self.field.interpolant

    def evaluate(self, x_t: Tensor, t: Tensor | float, cond: Any | None = None) -> Prediction:
        """One network call at ``(x_t, t)``.

        Args:
            x_t: State.
            t: Time (float, 0-d or ``(B,)``).
            cond: Conditioning.

        Returns:
            A :class:`Prediction` convertible to any kind.
        """
        raw = self.field(x_t, t, cond)
        self.nfe += 1
        tv = float(t) if not isinstance(t, Tensor) or t.numel() == 1 else float(t.flatten()[0])
        check_finite(raw, name=f"model output at t={tv:.4g} (evaluation {self.nfe})")
        return Prediction(self.field, raw, x_t, t, cond)

    def predict(self, x_t: Tensor, t: Tensor | float, kind: str, cond: Any | None = None, *,
                eps: Tensor | float | None = None) -> Tensor:
        """One network call converted to ``kind``."""
        return self.evaluate(x_t, t, cond)(kind, eps=eps)


class Sampler(ABC):
    """Base class of every sampler.

    Subclasses set :attr:`name` and :attr:`requires`, implement :meth:`_sample` and, for fixed-step methods,
    :meth:`expected_nfe`.
    """

    #: Registry name.
    name: ClassVar[str] = "sampler"
    #: Capabilities (keys of :data:`CAPABILITIES`) the path must offer.
    requires: ClassVar[frozenset[str]] = frozenset({"velocity"})
    #: Whether :meth:`sample` draws noise (then ``generator`` matters).
    stochastic: ClassVar[bool] = False
    #: Grid family :func:`genlab.sample` uses when no grid is given (a key of ``genlab.samplers.grids.GRIDS``).
    default_grid: ClassVar[str] = "uniform"
    #: Prediction kinds the sampler evaluates; ``None`` derives them from :attr:`requires` (``velocity`` for ODE/SDE
    #: samplers, ``x1`` for implicit and exponential-integrator ones). The recommended grid keeps its ends where
    #: these conversions are finite (:func:`genlab.samplers.grids.open_ends`).
    consumes: ClassVar[tuple[str, ...] | None] = None

    def default_steps(self, field: Field) -> int:
        """Grid steps :func:`genlab.sample` uses when none are given (10; a searched preset overrides it)."""
        return 10

    def expected_nfe(self, steps: int) -> int | None:
        """Documented number of network evaluations for a grid of ``steps`` steps (``None`` if adaptive)."""
        return steps

    def consumed_kinds(self) -> tuple[str, ...]:
        """The prediction kinds this sampler evaluates (:attr:`consumes`, or derived from :attr:`requires`)."""
        if self.consumes is not None:
            return tuple(self.consumes)
        if "velocity" in self.requires or not self.requires:
            return ("velocity",)
        return ("x1",)

    def recommended_grid(self, field: Field, steps: int, *, device: torch.device | str | None = None,
                         **options: Any) -> Tensor:
        """The grid :func:`genlab.sample` uses when none is given: :attr:`default_grid` with ends where this
        sampler's conversions of ``field``'s output are finite (:func:`genlab.samplers.grids.recommended_grid`).

        Args:
            field: The field to be sampled.
            steps: Number of steps N.
            device: Device of the grid.
            **options: Grid options (``t_start``, ``t_end``, ``kappa``, ``rho``); explicit ends win.

        Returns:
            ``(N+1,)`` float64 times.
        """
        from genlab.samplers.grids import recommended_grid

        # one evaluation per step (at its start) never evaluates the last grid time
        evaluates_end = self.expected_nfe(steps) != steps
        return recommended_grid(self.default_grid, steps, field, consumes=self.consumed_kinds(),
                                evaluates_end=evaluates_end, device=device, **options)

    def step_map(self) -> Step | None:
        """The sampler's one-step transition when each step is one evaluation and one :class:`Step` (else ``None``)."""
        return None

    @property
    def reports_steps(self) -> bool:
        """Whether the loop reports every grid step, so post-step hooks can run (adaptive loops do not; a loop that
        skips :meth:`_report` is caught by :meth:`sample` after the run)."""
        return self.expected_nfe(4) is not None

    def check(self, field: Field) -> None:
        """Raise a ``ValueError`` naming what is missing when ``field``'s path lacks a required structure."""
        if not isinstance(field, Field):
            raise TypeError(f"field must be a genlab Field, got {type(field).__name__}; wrap your network with "
                            "genlab.Field(net, interpolant, kind)")
        caps = capabilities(field.interpolant, field.kind)
        missing = sorted(self.requires - caps)
        if missing:
            what = "; ".join(f"{m}: {CAPABILITIES[m]}" for m in missing)
            raise ValueError(f"sampler {self.name!r} cannot run on {field.interpolant!r} with a {field.kind!r} "
                             f"field: it needs {what}")

    @staticmethod
    def check_grid(grid: Tensor) -> Tensor:
        """Validate a time grid: 1-D, at least 2 points, in [0, 1], strictly monotone."""
        if not isinstance(grid, Tensor):
            grid = torch.as_tensor(grid, dtype=torch.float64)
        if grid.ndim != 1 or grid.numel() < 2:
            raise ValueError(f"grid must be a 1-D tensor of at least 2 times, got shape {tuple(grid.shape)}")
        if bool(((grid < 0) | (grid > 1)).any()):
            raise ValueError("grid times must lie in [0, 1] (genlab time: 0 = source/noise, 1 = data)")
        diffs = grid[1:] - grid[:-1]
        if not (bool((diffs > 0).all()) or bool((diffs < 0).all())):
            raise ValueError("grid must be strictly increasing (generation) or strictly decreasing (encoding)")
        return grid

    def sample(
        self,
        field: Field,
        x_init: Tensor,
        grid: Tensor,
        *,
        cond: Any | None = None,
        generator: RandomSource = None,
        callback: Callable[[StepInfo], None] | None = None,
        return_trajectory: bool = False,
        grad: bool = False,
        hook: StepHook | None = None,
        transition: Transition | None = None,
    ) -> SampleResult:
        """Integrate from ``x_init`` at ``grid[0]`` along ``grid``.

        Args:
            field: The field to sample.
            x_init: Initial state at ``grid[0]``.
            grid: Times ``(N+1,)`` from :mod:`genlab.samplers.grids`; increasing to generate, decreasing to encode.
            cond: Conditioning (for bridges: the known source x0).
            generator: Random generator for stochastic samplers (noise drawn per sample), or a
                :class:`~genlab.utils.NoiseStream` to continue (sample ``i`` then depends only on the seed and ``i``).
            callback: Called with a :class:`StepInfo` after each step.
            return_trajectory: Keep the state at every grid point.
            grad: Let gradients flow through the run (default: ``torch.no_grad``).
            hook: Post-step hook ``StepInfo -> Tensor | None``: the returned state replaces the step's result.
            transition: Replacement of the sampler's :meth:`step_map`, ``(x, t, t_next, pred, noise) -> x_next``.

        Returns:
            :class:`SampleResult`.
        """
        if hook is not None and not self.reports_steps:
            raise ValueError(f"sampler {self.name!r} does not report each grid step, so a post-step hook cannot run "
                             "with it; use a fixed-step sampler")
        if transition is not None and self.step_map() is None:
            raise ValueError(f"sampler {self.name!r} has no replaceable one-step transition (its steps are not one "
                             "evaluation and one Step); use 'ddim' or 'euler'")
        self.check(field)
        grid = self.check_grid(grid).to(device=x_init.device,
                                        dtype=torch.float64 if x_init.device.type != "mps" else torch.float32)
        if not isinstance(x_init, Tensor) or not x_init.is_floating_point():
            raise TypeError("x_init must be a floating-point tensor")
        check_finite(x_init, name="x_init")
        if field.interpolant.conditional_source:
            x0 = field.known_source(cond)
            if x0.shape != x_init.shape:
                raise ValueError(f"the known source x0 (cond) has shape {tuple(x0.shape)}, x_init "
                                 f"{tuple(x_init.shape)}")
        counted = CountingField(field)
        trajectory: list[Tensor] | None = [x_init] if return_trajectory else None
        calls = [0]
        if hook is not None:
            user_hook = hook

            def hook(info: StepInfo) -> Tensor | None:
                calls[0] += 1
                return user_hook(info)

        self._hook, self._transition = hook, transition
        try:
            with torch.set_grad_enabled(grad):
                x, aux = self._sample(counted, x_init, grid, cond=cond, generator=generator, callback=callback,
                                      trajectory=trajectory)
        finally:
            self._hook, self._transition = None, None
        if hook is not None and calls[0] != grid.numel() - 1:
            raise RuntimeError(f"sampler {self.name!r} reported {calls[0]} of {grid.numel() - 1} steps through "
                               "Sampler._report, so the post-step hook did not run at every step; its loop must "
                               "report each step (x = self._report(...))")
        return SampleResult(x=x, nfe=counted.nfe, grid=aux.pop("grid", grid), trajectory=trajectory, aux=aux)

    @abstractmethod
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
        """Run the method; append each new state to ``trajectory`` when it is a list. Returns ``(x, aux)``."""

    def _step_loop(
        self,
        field: CountingField,
        x: Tensor,
        grid: Tensor,
        step: Step,
        *,
        cond: Any | None,
        generator: RandomSource,
        callback: Callable[[StepInfo], None] | None,
        trajectory: list[Tensor] | None,
    ) -> Tensor:
        """The loop of a sampler whose step is one evaluation and one :class:`Step` (or the run's ``transition``).

        Fresh noise comes from one per-sample :class:`~genlab.utils.NoiseStream`; the sampler's own step adds none
        on the last grid step.
        """
        interp = field.interpolant
        n = grid.numel() - 1
        advance = getattr(self, "_transition", None)
        noise = NoiseStream(x, generator) if (step.stochastic or advance is not None) else None
        for i in range(n):
            s, t = grid[i], grid[i + 1]
            pred = field.evaluate(x, s, cond)
            x1_hat = None
            if advance is not None:
                x = advance(x, s, t, pred, noise)
            else:
                # a Gaussian source's noise estimate is re-derived from x_s inside the step: skip converting it
                x0_hat, x1_hat = (None, pred("x1")) if interp.gaussian_source else pred.endpoints()
                x = step.step(interp, x, s, t, x1_hat, x0_hat=x0_hat, generator=noise, fresh_noise=i < n - 1)
            x = self._report(i, grid, x, callback, trajectory, x1_hat=x1_hat)
        return x

    def _report(
        self,
        i: int,
        grid: Tensor,
        x: Tensor,
        callback: Callable[[StepInfo], None] | None,
        trajectory: list[Tensor] | None,
        x1_hat: Tensor | None = None,
    ) -> Tensor:
        """Record step ``i`` (from ``grid[i]`` to ``grid[i+1]``) after applying the run's post-step hook.

        Returns:
            The (possibly corrected) state. The correction is also written into ``x`` in place when ``x`` is not part
            of an autograd graph, so a loop that ignores the return value still continues from it.
        """
        hook = getattr(self, "_hook", None)
        if hook is not None:
            new = hook(StepInfo(i=i, t=float(grid[i]), t_next=float(grid[i + 1]), x=x, x1_hat=x1_hat))
            if new is not None:
                if x.requires_grad:
                    x = new
                else:
                    x.copy_(new)
        if trajectory is not None:
            trajectory.append(x)
        if callback is not None:
            callback(StepInfo(i=i, t=float(grid[i]), t_next=float(grid[i + 1]), x=x, x1_hat=x1_hat))
        return x

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
