"""Contracts of inverse-problem methods: :class:`Guidance` (diffusion-based) and :class:`IterativeSolver`.

A :class:`Guidance` runs inside any compatible registered sampler (:func:`genlab.inverse.solve`); it enters the
sampler's loop in one of three places (:attr:`Guidance.placement`):

* ``"field"`` — score mode: a :class:`~genlab.inverse.guided.GuidedField` whose prediction is the conditioned one
  (:meth:`Guidance.guide` returns x̂1|y); every sampler that runs on the prior's path drives it;
* ``"hook"`` — a correction added after each sampler step, computed from the evaluation at the step's start (DPS,
  ΠGDM): fixed-step samplers with one evaluation per step;
* ``"transition"`` — the method re-shapes the step itself (:meth:`Guidance.step` moves the state before the
  sampler's :class:`~genlab.samplers.steps.Step` or uses its noise level: STSL, Dreamguider, DDS): samplers whose
  step is one evaluation and one Step (``sampler.step_map()``).

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
from genlab.interpolants.schedules import Coeffs
from genlab.inverse.operators import Operator, conjugate_gradient
from genlab.inverse.priors import DiffusionPrior
from genlab.inverse.problem import InverseProblem
from genlab.models.field import Field
from genlab.samplers.base import CountingField, Prediction, Sampler
from genlab.samplers.registry import SAMPLERS, get_sampler
from genlab.samplers.steps import Step
from genlab.utils import RandomSource, append_dims

__all__ = [
    "PLACEMENTS",
    "SAMPLER_ALIASES",
    "CountedModel",
    "Guidance",
    "GuideOutput",
    "IterativeOutput",
    "IterativeSolver",
    "SolveContext",
    "check_choice",
    "check_positive",
    "condition_prediction",
    "per_sample_norm",
    "resolve_sampler",
    "safe_ratio",
    "solve_gram",
]

#: Where a guidance method enters a sampler's loop (see the module docstring).
PLACEMENTS: tuple[str, ...] = ("field", "hook", "transition")

#: Sampler names accepted by :func:`genlab.inverse.solve` that are not registry names: ``"ddpm"`` is the registered
#: ``"ddim"`` with η = 1 (DDPM's ancestral step, Ho et al. NeurIPS'20).
SAMPLER_ALIASES: dict[str, tuple[str, dict[str, float]]] = {"ddpm": ("ddim", {"eta": 1.0})}


def resolve_sampler(sampler: str | Sampler, eta: float | None = None) -> Sampler:
    """A registered sampler (or the ``"ddpm"`` alias) with the η a guided run asks for.

    Args:
        sampler: Registered name, ``"ddpm"`` (= ``"ddim"`` with η = 1) or a :class:`~genlab.samplers.Sampler`.
        eta: η for samplers that take one (``None``: the sampler's default).

    Returns:
        The sampler.

    Raises:
        ValueError: unknown name, or an η the sampler does not take.
    """
    if isinstance(sampler, Sampler):
        if eta is not None:
            raise ValueError(f"eta={eta!r} given beside a sampler instance; set eta on the instance instead")
        return sampler
    if not isinstance(sampler, str):
        raise TypeError(f"sampler must be a registered name or a genlab Sampler, got {type(sampler).__name__}")
    if sampler in SAMPLER_ALIASES:
        name, opts = SAMPLER_ALIASES[sampler]
        if eta is not None and float(eta) != opts["eta"]:
            raise ValueError(f"sampler {sampler!r} has eta = {opts['eta']:g}; got eta={eta!r} (use sampler='ddim' "
                             "to choose eta)")
        return get_sampler(name, **opts)
    if eta is None:
        return get_sampler(sampler)
    try:
        return get_sampler(sampler, eta=eta)
    except TypeError:
        raise ValueError(f"sampler {sampler!r} takes no eta (it is deterministic or has no η); got eta={eta!r} "
                         "(use sampler='ddim' to choose eta)") from None



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
        transition: The sampler's one-step transition (its :meth:`~genlab.samplers.Sampler.step_map`; ``None`` for
            samplers whose step is not one Step).
        grid: Time grid ``(N+1,)`` from noise (t ≈ 0) to data (t = 1).
        x_shape: Per-sample pixel shape.
        state_shape: Per-sample shape of the diffusion state (latent shape for latent priors).
        n_samples: Number of samples.
        generator: The run's per-sample :class:`~genlab.utils.NoiseStream` (or a generator / ``None``).
        diagnostics: Per-step lists filled by :meth:`log`.
        extras: Method scratch space (precomputations, DoG state, ...).
    """

    problem: InverseProblem
    prior: DiffusionPrior
    model: CountedModel
    transition: Step | None
    grid: Tensor
    x_shape: tuple[int, ...]
    state_shape: tuple[int, ...]
    n_samples: int
    generator: RandomSource
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

    def coeffs(self, t: float | Tensor, x: Tensor) -> Coeffs:
        """The path's coefficients at ``t`` in ``x``'s dtype (see :meth:`DiffusionPrior.coeffs`)."""
        return self.prior.coeffs(t, x)

    def is_last(self, t_next: float | Tensor) -> bool:
        """Whether ``t_next`` is the final grid time."""
        return abs(float(t_next) - float(self.grid[-1])) < 1e-12

    def log(self, **values: float | Tensor) -> None:
        """Append per-step diagnostics (tensors are averaged over the batch)."""
        for k, v in values.items():
            val = float(v.detach().float().mean()) if isinstance(v, Tensor) else float(v)
            self.diagnostics.setdefault(k, []).append(val)


def condition_prediction(x1_hat: Tensor, eps_hat: Tensor, g: Tensor, coeffs: Coeffs) -> tuple[Tensor, Tensor]:
    """Score-mode conditioning (``reference/inverse.md`` §0 with a = β, s = α): ``(x̂1 + (α²/β)·g, ε̂ − α·g)``.

    Both stay consistent with the state: ``β·x̂1|y + α·ε̂|y = β·x̂1 + α·ε̂``. Where ``β = 0`` (no signal) the
    guidance is dropped (see :func:`safe_ratio`).

    Args:
        x1_hat: Tweedie denoiser.
        eps_hat: Noise estimate.
        g: Likelihood score ``∇_{x_t} log p_t(y | x_t)``.
        coeffs: The path's coefficients at the current time (``(B,)``).

    Returns:
        ``(x1_hat | y, eps_hat | y)``.
    """
    beta, alpha = append_dims(coeffs.beta, x1_hat.ndim), append_dims(coeffs.alpha, x1_hat.ndim)
    return x1_hat + safe_ratio(alpha**2, beta) * g, eps_hat - alpha * g


def safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num/den`` where ``den ≠ 0`` and 0 where ``den = 0``.

    Used for factors like ``α²/β`` at a time with no signal (``β = 0``, e.g. t = 0 of rectified flow): there
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


@dataclass
class GuideOutput:
    """What a method makes of one evaluation (:meth:`Guidance.guide`).

    Attributes:
        x1: The data prediction handed to the sampler (x̂1|y in score mode, else x̂1), detached.
        correction: Added to the state after the sampler's step (``"hook"`` placement), detached; ``None``: nothing.
    """

    x1: Tensor
    correction: Tensor | None = None


class Guidance(ABC):
    """Base class of diffusion-based inverse-problem methods.

    Subclasses set the class attributes, list their hyper-parameters with paper defaults in :attr:`DEFAULTS`
    (an unknown option is an error naming the allowed ones), say where they enter a sampler
    (:attr:`placement`) and implement :meth:`guide` (``"field"``/``"hook"``) or :meth:`step` (``"transition"``).
    Which samplers a method runs with follows from its placement and the sampler's own contract
    (:meth:`sampler_missing`), never from a list of names.

    Args:
        **options: Hyper-parameters (keys of :attr:`DEFAULTS`).
    """

    #: Registry name.
    name: ClassVar[str] = "guidance"
    #: Default sampler (a registered name or ``"ddpm"``), number of steps and DDIM η.
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

    @property
    def placement(self) -> str:
        """Where the method enters the sampler's loop: ``"field"``, ``"hook"`` or ``"transition"``."""
        return "transition"

    # ------------------------------------------------------------------ compatibility
    def sampler_missing(self, sampler: Sampler, prior: DiffusionPrior) -> str | None:
        """Why ``sampler`` cannot carry this method on ``prior``'s path (``None`` when it can).

        Args:
            sampler: The sampler.
            prior: The (diffusion) prior.

        Returns:
            A short reason, or ``None``.
        """
        try:
            sampler.check(Field(_identity_net, prior.interpolant, "x1"))
        except (ValueError, TypeError) as err:
            return str(err)
        if self.placement == "hook" and (not sampler.reports_steps or sampler.expected_nfe(4) != 4):
            return (f"{self.name!r} corrects the state after each step with the evaluation at the step's start, so "
                    f"it needs a fixed-step sampler with one evaluation per step ({sampler.name!r} makes "
                    f"{sampler.expected_nfe(4)} evaluations for 4 steps)")
        if self.placement == "transition" and sampler.step_map() is None:
            return (f"{self.name!r} re-shapes the transition, so it needs a sampler whose step is one evaluation and "
                    f"one genlab.samplers.steps.Step ({sampler.name!r} is not)")
        return None

    def compatible_samplers(self, prior: DiffusionPrior) -> list[str]:
        """Registered sampler names that can carry this method on ``prior`` (default options, or η = 1)."""
        out = []
        for name in sorted(SAMPLERS):
            for opts in ({}, {"eta": 1.0}):
                try:
                    smp = get_sampler(name, **opts)
                except (TypeError, ValueError):
                    continue
                if self.sampler_missing(smp, prior) is None:
                    out.append(name)
                    break
        return out

    def missing(self, problem: InverseProblem, prior: Any, sampler: str | Sampler, eta: float | None) -> list[str]:
        """What this method needs and the (problem, prior, sampler) triple lacks; empty when compatible.

        Args:
            problem: The problem.
            prior: The prior.
            sampler: Sampler name (or ``"ddpm"``) or instance.
            eta: η requested (or ``None``).

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
        try:
            smp = resolve_sampler(sampler, eta)
        except (ValueError, TypeError) as err:
            return [*out, f"a known sampler: {err}"]
        if isinstance(prior, DiffusionPrior):
            why = self.sampler_missing(smp, prior)
            if why is not None:
                label = sampler if isinstance(sampler, str) else smp.name
                out.append(f"a compatible sampler: {why}; {self.name!r} runs with sampler in "
                           f"{self.compatible_samplers(prior)}, got {label!r}")
        return out

    # ------------------------------------------------------------------ the run
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

    def guide(self, pred: Prediction, t: float | Tensor, ctx: SolveContext) -> GuideOutput:
        """The method's use of one evaluation (``"field"``/``"hook"`` placements); default: no guidance."""
        return GuideOutput(x1=pred("x1").detach())

    def step(self, x_t: Tensor, t: float | Tensor, t_next: float | Tensor, pred: Prediction,
             ctx: SolveContext) -> Tensor:
        """The method's update from ``t`` to ``t_next`` given the prediction at ``(x_t, t)``.

        ``"transition"`` methods override it (the sampler hands them its :class:`~genlab.samplers.steps.Step` as
        ``ctx.transition``); for the other placements it is :meth:`guide` followed by ``ctx.transition`` and the
        correction, i.e. what a one-Step sampler does with the guided field and the post-step hook.
        """
        if ctx.transition is None:
            raise ValueError(f"{self.name!r}.step needs ctx.transition (a genlab.samplers.steps.Step)")
        out = self.guide(pred, t, ctx)
        x_next = ctx.transition.step(ctx.interpolant, x_t, t, t_next, out.x1, generator=ctx.generator)
        return x_next if out.correction is None else x_next + out.correction

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


def _identity_net(x: Tensor, t: Tensor) -> Tensor:
    """Placeholder network for capability checks (never evaluated)."""
    return x


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

    def missing(self, problem: InverseProblem, prior: Any, sampler: str | Sampler | None,
                eta: float | None) -> list[str]:
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
