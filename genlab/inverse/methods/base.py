"""Contracts of inverse-problem methods: :class:`Guidance` (diffusion-based) and :class:`IterativeSolver`.

A :class:`Guidance` plugs into the guided sampling loop of :func:`genlab.inverse.solve`::

    x = guidance.init_state(ctx)
    for t, t_next in grid:
        pred = guidance.predict(x, t, ctx)          # one network evaluation (differentiable if the method needs it)
        x = guidance.step(x, t, t_next, pred, ctx)  # the method's update, ending in a ctx.transition step
    samples = guidance.finalize(x, ctx)

Network evaluations go through :class:`CountedModel`, which counts NFE with
:class:`genlab.samplers.base.CountingField` and counts every backward pass that reaches a network output
(``n_vjp``) with an autograd tap, so the reported costs are measured, never computed by formula.

Score-mode guidance (``reference/inverse.md`` §0): a method that supplies ``g ≈ ∇_{x_t} log p_t(y | x_t)``
conditions the prediction exactly, ``x̂1|y = x̂1 + (s²/a)·g`` and ``ε̂|y = ε̂ − s·g``, and any transition
(DDIM/DDPM/Euler) can then run on it.

:class:`IterativeSolver` is the seam for methods that are not diffusion samplers (PnP-HVAE, PnP-ADMM): they get
the problem and the prior and return samples with their own cost accounting.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.interpolants.interpolant import Interpolant
from genlab.inverse.methods.transitions import Transition
from genlab.inverse.operators import Operator, conjugate_gradient
from genlab.inverse.priors import DiffusionPrior, NoiseLevel
from genlab.inverse.problem import InverseProblem
from genlab.inverse.streams import SampleStreams
from genlab.samplers.base import CountingField, Prediction
from genlab.utils import append_dims

__all__ = [
    "CountedModel",
    "Guidance",
    "IterativeOutput",
    "IterativeSolver",
    "SolveContext",
    "check_choice",
    "check_positive",
    "condition_prediction",
    "per_sample_norm",
    "safe_ratio",
    "solve_gram",
]


class _VJPTap(torch.autograd.Function):
    """Identity on a network output whose backward increments a counter (one per backward pass reaching it)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, counter: CountedModel) -> Tensor:
        ctx.counter = counter
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        ctx.counter.n_vjp += 1
        return grad, None


class CountedModel:
    """The prior's field with measured costs: NFE (forward evaluations), ``n_vjp`` (backward passes through a
    network output) and ``n_jvp`` (forward-over-reverse products, e.g. exact Hutchinson probes).

    Args:
        prior: The prior whose field is evaluated.
    """

    def __init__(self, prior: DiffusionPrior) -> None:
        self.prior = prior
        self.counting = CountingField(prior.field)
        self.n_vjp = 0
        self.n_jvp = 0

    @property
    def nfe(self) -> int:
        """Network evaluations so far."""
        return self.counting.nfe

    def evaluate(self, x: Tensor, t: float | Tensor, *, grad: bool = False) -> Prediction:
        """One network evaluation at ``(x, t)``.

        Args:
            x: State (make it ``requires_grad`` before the call to differentiate through the network).
            t: Time.
            grad: Build the autograd graph (otherwise the call runs under ``torch.no_grad``).

        Returns:
            A :class:`~genlab.samplers.Prediction`; ``pred("x1")`` is x̂1, ``pred("x0")`` is ε̂.
        """
        if not grad:
            with torch.no_grad():
                return self.counting.evaluate(x, t)
        with torch.enable_grad():
            p = self.counting.evaluate(x, t)
            raw = _VJPTap.apply(p.raw, self) if p.raw.requires_grad else p.raw
        return Prediction(p.field, raw, x, t, None)


@dataclass
class SolveContext:
    """What a method sees while it runs.

    Attributes:
        problem: The problem, with ``y`` expanded to the batch of samples.
        prior: The prior.
        model: Counted access to the prior's field.
        transition: The reverse step selected by ``sampler``/``eta``.
        grid: Time grid ``(N+1,)`` from noise (t ≈ 0) to data (t = 1).
        x_shape: Per-sample pixel shape.
        state_shape: Per-sample shape of the diffusion state (latent shape for latent priors).
        n_samples: Number of samples.
        generator: Per-sample random streams (or a generator / ``None``).
        diagnostics: Per-step lists filled by :meth:`log`.
        extras: Method scratch space (precomputations, DoG state, ...).
    """

    problem: InverseProblem
    prior: DiffusionPrior
    model: CountedModel
    transition: Transition
    grid: Tensor
    x_shape: tuple[int, ...]
    state_shape: tuple[int, ...]
    n_samples: int
    generator: torch.Generator | SampleStreams | None
    diagnostics: dict[str, list[float]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def interpolant(self) -> Interpolant:
        """The prior's path."""
        return self.prior.interpolant

    @property
    def y(self) -> Tensor:
        """Measurements ``(n_samples, *y_shape)``."""
        return self.problem.y

    @property
    def op(self) -> Operator:
        """The forward operator."""
        return self.problem.op

    def noise_level(self, t: float | Tensor, x: Tensor) -> NoiseLevel:
        """``(a, s)`` at ``t`` (see :meth:`DiffusionPrior.noise_level`)."""
        return self.prior.noise_level(t, x)

    def is_last(self, t_next: float | Tensor) -> bool:
        """Whether ``t_next`` is the final grid time."""
        return abs(float(t_next) - float(self.grid[-1])) < 1e-12

    def log(self, **values: float | Tensor) -> None:
        """Append per-step diagnostics (tensors are averaged over the batch)."""
        for k, v in values.items():
            val = float(v.detach().float().mean()) if isinstance(v, Tensor) else float(v)
            self.diagnostics.setdefault(k, []).append(val)


def condition_prediction(x1_hat: Tensor, eps_hat: Tensor, g: Tensor, level: NoiseLevel) -> tuple[Tensor, Tensor]:
    """Score-mode conditioning (``reference/inverse.md`` §0): ``(x̂1 + (s²/a)·g, ε̂ − s·g)``.

    Both stay consistent with the state: ``a·x̂1|y + s·ε̂|y = a·x̂1 + s·ε̂``. Where ``a = 0`` (no signal) the
    guidance is dropped (see :func:`safe_ratio`).

    Args:
        x1_hat: Tweedie denoiser.
        eps_hat: Noise estimate.
        g: Likelihood score ``∇_{x_t} log p_t(y | x_t)``.
        level: ``(a, s)`` at the current time.

    Returns:
        ``(x1_hat | y, eps_hat | y)``.
    """
    a, s = level.view(x1_hat.ndim)
    return x1_hat + safe_ratio(s**2, a) * g, eps_hat - s * g


def safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num/den`` where ``den ≠ 0`` and 0 where ``den = 0``.

    Used for factors like ``s²/a`` at a time with no signal (``a = 0``, e.g. t = 0 of rectified flow): there
    ``x_t`` carries no information about the data, the likelihood score is 0 and the guidance term is dropped.
    """
    ok = den != 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def solve_gram(
    op: Operator,
    v: Tensor,
    r2: Tensor,
    sigma2: float,
    x_shape: tuple[int, ...],
    *,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> Tensor:
    """``(r²·AAᵀ + σ²I)⁺ v`` in y-space (ΠGDM's data-space solve; pseudo-inverse where it is singular).

    Closed form through the operator's SVD when it has one (``U diag(1/(r²s² + σ²)) Uᵀ v`` plus ``v/σ²`` on the
    orthogonal complement of ``range(U)``), otherwise conjugate gradient on the symmetric positive
    semi-definite system.

    Args:
        op: Linear operator.
        v: y-space vectors ``(B, *y_shape)``.
        r2: Per-sample ``r²`` ``(B,)``.
        sigma2: ``σ²`` (0 allowed: then the pseudo-inverse of ``r²AAᵀ``).
        x_shape: Per-sample x shape (for the SVD).
        tol: CG relative tolerance.
        max_iter: CG iteration cap.

    Returns:
        ``(B, *y_shape)``.
    """
    if op.has_svd:
        svd = op.svd(x_shape)
        s2 = svd.s.to(v).pow(2)[None]
        c = svd.Ut(v)
        denom = append_dims(r2, 2) * s2 + sigma2
        inv = torch.where(denom > 0, 1.0 / torch.where(denom > 0, denom, torch.ones_like(denom)),
                          torch.zeros_like(denom))
        out = svd.U(inv * c)
        if sigma2 > 0:
            out = out + (v - svd.U(c)) / sigma2
        return out
    r2b = append_dims(r2, v.ndim)
    return conjugate_gradient(lambda u: r2b * op.A(op.At(u)) + sigma2 * u, v, tol=tol, max_iter=max_iter).x


class Guidance(ABC):
    """Base class of diffusion-based inverse-problem methods.

    Subclasses set the class attributes, list their hyper-parameters with paper defaults in :attr:`DEFAULTS`
    (an unknown option is an error naming the allowed ones) and implement :meth:`step`.

    Args:
        **options: Hyper-parameters (keys of :attr:`DEFAULTS`).
    """

    #: Registry name.
    name: ClassVar[str] = "guidance"
    #: Samplers (transition names) the method supports.
    samplers: ClassVar[tuple[str, ...]] = ("ddim", "ddpm", "euler")
    #: Default sampler, number of steps and DDIM η.
    default_sampler: ClassVar[str] = "ddpm"
    default_steps: ClassVar[int] = 100
    default_eta: ClassVar[float | None] = None
    #: Prior spaces the method runs in.
    spaces: ClassVar[tuple[str, ...]] = ("pixel",)
    #: Whether the operator must be linear.
    needs_linear: ClassVar[bool] = False
    #: Whether the method differentiates through the network.
    uses_network_gradient: ClassVar[bool] = True
    #: Hyper-parameters and their paper defaults.
    DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.DEFAULTS))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for method {self.name!r}; allowed: {sorted(self.DEFAULTS)}"
            )
        self.options: dict[str, Any] = {**self.DEFAULTS, **options}
        self.validate()

    def validate(self) -> None:
        """Check the option values (subclasses raise ``ValueError`` naming the option)."""

    # ------------------------------------------------------------------ compatibility
    def missing(self, problem: InverseProblem, prior: Any, sampler: str, eta: float | None) -> list[str]:
        """What this method needs and the (problem, prior, sampler) triple lacks; empty when compatible.

        Args:
            problem: The problem.
            prior: The prior.
            sampler: Sampler name.
            eta: DDIM η requested (or ``None``).

        Returns:
            Human-readable descriptions of each missing piece.
        """
        out: list[str] = []
        if not isinstance(prior, DiffusionPrior):
            out.append(f"a diffusion prior (genlab.inverse.DiffusionPrior or LatentPrior); got {type(prior).__name__}")
        elif prior.space not in self.spaces:
            if "latent" in self.spaces and "pixel" not in self.spaces:
                out.append("a latent prior (genlab.inverse.LatentPrior: a Field on latents + an autoencoder with "
                           "differentiable encode/decode); got a pixel-space DiffusionPrior")
            else:
                out.append(f"a pixel-space prior (DiffusionPrior); got a {type(prior).__name__} in {prior.space} "
                           "space")
        if self.needs_linear and not problem.is_linear:
            out.append(f"a linear operator (it uses Aᵀ and linear solves); {problem.op.name} is non-linear")
        if sampler not in self.samplers:
            out.append(f"a supported sampler: {self.name!r} runs with sampler in {list(self.samplers)}, got "
                       f"{sampler!r}")
        return out

    # ------------------------------------------------------------------ the loop
    def setup(self, ctx: SolveContext) -> None:
        """Precompute what the method needs (SVDs, Aᵀy, ...); default: nothing."""

    def init_state(self, ctx: SolveContext) -> Tensor:
        """Initial state at ``grid[0]``: the prior's noise ``s(t0)·ε`` (:meth:`DiffusionPrior.initial_state`)."""
        y = ctx.y
        return ctx.prior.initial_state(ctx.n_samples, ctx.state_shape, float(ctx.grid[0]), generator=ctx.generator,
                                       device=y.device, dtype=y.dtype)

    def predict(self, x_t: Tensor, t: float | Tensor, ctx: SolveContext) -> Prediction:
        """One network evaluation; differentiable w.r.t. ``x_t`` when the method uses network gradients.

        When differentiable, ``pred.x_t`` is a fresh leaf that requires grad (use it as the differentiation
        variable).
        """
        if self.uses_network_gradient:
            x = x_t.detach().requires_grad_(True)
            return ctx.model.evaluate(x, t, grad=True)
        return ctx.model.evaluate(x_t, t, grad=False)

    @abstractmethod
    def step(self, x_t: Tensor, t: float | Tensor, t_next: float | Tensor, pred: Prediction,
             ctx: SolveContext) -> Tensor:
        """The method's update from ``t`` to ``t_next`` given the prediction at ``(x_t, t)``."""

    def finalize(self, x: Tensor, ctx: SolveContext) -> Tensor:
        """Samples in pixel space (decodes latents)."""
        with torch.no_grad():
            return ctx.prior.decode(x) if ctx.prior.is_latent else x

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def decoded_prediction(x1_hat: Tensor, ctx: SolveContext) -> Tensor:
        """x̂1 in pixel space (through the decoder for latent priors)."""
        return ctx.prior.decode(x1_hat) if ctx.prior.is_latent else x1_hat

    def config(self) -> dict[str, Any]:
        """Resolved hyper-parameters (JSON-friendly)."""
        return {k: (v if isinstance(v, (int, float, str, bool, type(None), list, tuple, dict)) else repr(v))
                for k, v in self.options.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"


@dataclass
class IterativeOutput:
    """What an :class:`IterativeSolver` returns.

    Attributes:
        samples: ``(n, *x_shape)`` pixel-space samples.
        nfe: Network evaluations (encoder + decoder passes count one each).
        n_vjp: Backward passes through networks.
        diagnostics: Per-iteration values.
        latents: Final latents, if any.
    """

    samples: Tensor
    nfe: int
    n_vjp: int = 0
    diagnostics: dict[str, list[float]] = field(default_factory=dict)
    latents: Any | None = None


class IterativeSolver(ABC):
    """Base class of non-diffusion solvers (alternating / plug-and-play schemes such as PnP-HVAE).

    Args:
        **options: Hyper-parameters (keys of :attr:`DEFAULTS`).
    """

    name: ClassVar[str] = "iterative"
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    #: Prior classes the solver accepts.
    prior_types: ClassVar[tuple[type, ...]] = ()

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.DEFAULTS))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for method {self.name!r}; allowed: {sorted(self.DEFAULTS)}")
        self.options: dict[str, Any] = {**self.DEFAULTS, **options}

    def missing(self, problem: InverseProblem, prior: Any, sampler: str | None, eta: float | None) -> list[str]:
        """What the solver needs and the inputs lack (empty when compatible)."""
        out = []
        if self.prior_types and not isinstance(prior, self.prior_types):
            names = " or ".join(c.__name__ for c in self.prior_types)
            out.append(f"a {names} prior; got {type(prior).__name__}")
        if sampler is not None:
            out.append(f"no sampler ({self.name!r} is an iterative solver, not a diffusion sampler); got {sampler!r}")
        return out

    @abstractmethod
    def run(self, problem: InverseProblem, prior: Any, *, n_samples: int,
            generator: torch.Generator | None) -> IterativeOutput:
        """Solve the problem (``problem.y`` already expanded to ``n_samples``)."""

    def config(self) -> dict[str, Any]:
        """Resolved hyper-parameters."""
        return dict(self.options)


def per_sample_norm(v: Tensor) -> Tensor:
    """``‖v_b‖₂`` per sample, shape ``(B,)``."""
    return v.flatten(1).norm(dim=1)


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Validate a positive (or non-negative) float option and return it."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value < 0 if allow_zero else value <= 0):
        raise ValueError(f"{name} must be a finite float {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Validate a string option."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
