"""BDIA: bi-directional integration approximation with exact inversion (Zhang, Lewis & Kleijn, ECCV'24,
arXiv:2307.10829; reference code guoqiang-zhang-x/BDIA ``BDIAddim.py``, ``bdia_edict_functions.py``).

With a one-step map Φ(x; t → u) and a backward map Φ_b (both built from evaluations that depend on (x_i, t_i) only),
BDIA replaces the one-step update by (``reference/samplers.md`` §4, genlab indexing, grid t_0 → t_N)

    x_1     = Φ(x_0; t_0 → t_1)                                                  (plain step)
    x_{i+1} = γ·x_{i−1} − γ·Φ_b(x_i; t_i → t_{i−1}) + Φ(x_i; t_i → t_{i+1}),   i ≥ 1,

which is the paper's x_{i+1} = γx_{i−1} + (1−γ)x_i − γΔ_b(x_i) + Δ_f(x_i) with Δ = Φ − x. γ = 0 is the plain method
(DDIM by default); γ = 1 is time-symmetric (second order); 0 < γ < 1 interpolates. Because both maps depend only on
x_i, the update solves exactly for x_{i−1}:

    x_{i−1} = (x_{i+1} − Φ(x_i; t_i → t_{i+1}))/γ + Φ_b(x_i; t_i → t_{i−1}),

so from the last pair (x_{N−1}, x_N) the whole trajectory, down to (x_0, x_1), is recovered to floating-point
precision (:meth:`BDIA.invert`); :func:`bdia_edit` uses this to encode and edit a real sample.

The default map is the DDIM transfer ``𝒟(z; t → u) = implicit_step(z, t, u, x̂0(z, t), x̂1(z, t))`` (one evaluation
at (x_i, t_i) serves both directions), so BDIA-DDIM runs on every path where the implicit step does: Gaussian-source
diffusion and flow paths, rectified flow (where DDIM is Euler) and bridges (DBIM η = 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from genlab.models.field import Field
from genlab.samplers.base import (
    CAPABILITIES,
    CountingField,
    Prediction,
    Sampler,
    SampleResult,
    StepInfo,
    capabilities,
)
from genlab.samplers.registry import register_sampler
from genlab.samplers.steps import DDIMStep, euler_update, heun_update
from genlab.utils import check_finite

__all__ = [
    "BDIA",
    "TRANSFERS",
    "BDIALatent",
    "DDIMTransfer",
    "EditResult",
    "EulerTransfer",
    "HeunTransfer",
    "TransferMap",
    "bdia_edit",
]


# ---------------------------------------------------------------------------------------------- one-step maps
# The transfer maps are the step engine's maps (genlab.samplers.steps) in BDIA's (field, pred, x, t, u, cond) form.
_DDIM0 = DDIMStep(0.0)

@runtime_checkable
class TransferMap(Protocol):
    """A one-step map Φ(x; t → u) that uses the evaluation at (x, t) and, optionally, more evaluations.

    Attributes:
        requires: Capabilities (keys of ``genlab.samplers.CAPABILITIES``) the path must offer.
        extra_evals: Evaluations it makes beyond the shared one at (x, t) (``None`` if unknown).
    """

    requires: frozenset[str]
    extra_evals: int | None

    def __call__(self, field: CountingField, pred: Prediction, x: Tensor, t: Tensor, u: Tensor,
                 cond: Any | None) -> Tensor:
        """Return Φ(x; t → u); ``pred`` is the field evaluated at (x, t)."""


class DDIMTransfer:
    """DDIM transfer 𝒟(x; t → u) = :meth:`Interpolant.implicit_step` with the predicted ends at (x, t), ω = 0."""

    requires: frozenset[str] = frozenset({"implicit"})
    extra_evals: int | None = 0

    def __call__(self, field: CountingField, pred: Prediction, x: Tensor, t: Tensor, u: Tensor,
                 cond: Any | None) -> Tensor:
        x0_hat, x1_hat = pred.endpoints()
        return _DDIM0.step(field.interpolant, x, t, u, x1_hat, x0_hat=x0_hat)

    def __repr__(self) -> str:
        return "DDIMTransfer()"


class EulerTransfer:
    """Euler step on the PF-ODE velocity, x + (u − t)·b(x, t) (no extra evaluation)."""

    requires: frozenset[str] = frozenset({"velocity"})
    extra_evals: int | None = 0

    def __call__(self, field: CountingField, pred: Prediction, x: Tensor, t: Tensor, u: Tensor,
                 cond: Any | None) -> Tensor:
        return euler_update(x, t, u, pred("velocity"))

    def __repr__(self) -> str:
        return "EulerTransfer()"


class HeunTransfer:
    """Heun step on the velocity (EDM, Karras et al. NeurIPS'22, Alg. 1): one extra evaluation at the predictor."""

    requires: frozenset[str] = frozenset({"velocity"})
    extra_evals: int | None = 1

    def __call__(self, field: CountingField, pred: Prediction, x: Tensor, t: Tensor, u: Tensor,
                 cond: Any | None) -> Tensor:
        return heun_update(field, pred("velocity"), x, t, u, cond)

    def __repr__(self) -> str:
        return "HeunTransfer()"


#: Built-in maps by name.
TRANSFERS: dict[str, Callable[[], Any]] = {"ddim": DDIMTransfer, "euler": EulerTransfer, "heun": HeunTransfer}


def _as_transfer(spec: str | Any, arg: str) -> Any:
    if isinstance(spec, str):
        if spec not in TRANSFERS:
            raise ValueError(f"unknown {arg} map {spec!r}; choose one of {sorted(TRANSFERS)} or pass a callable "
                             "(field, pred, x, t, u, cond) -> Tensor")
        return TRANSFERS[spec]()
    if not callable(spec):
        raise TypeError(f"{arg} must be a map name or a callable (field, pred, x, t, u, cond) -> Tensor, got "
                        f"{type(spec).__name__}")
    return spec


# ---------------------------------------------------------------------------------------------- results
@dataclass
class BDIALatent:
    """The first two states of a BDIA trajectory, from which sampling can be replayed exactly.

    Attributes:
        x_init: State at ``grid[0]``.
        x_next: State at ``grid[1]``.
        cond: Conditioning used with them.
    """

    x_init: Tensor
    x_next: Tensor
    cond: Any | None = None


@dataclass
class EditResult:
    """Output of :func:`bdia_edit`.

    Attributes:
        x: The regenerated sample at ``grid[-1]`` (equals the input ``y`` up to rounding when nothing is edited).
        latent: The exact encoding of ``y``: the first pair of the BDIA trajectory that ends at ``y``.
        edited: The latent actually regenerated from (after ``edit_fn``).
        nfe: Network evaluations (encoding + regeneration).
        grid: The grid used.
    """

    x: Tensor
    latent: BDIALatent
    edited: BDIALatent
    nfe: int
    grid: Tensor


# ---------------------------------------------------------------------------------------------- sampler
@register_sampler
class BDIA(Sampler):
    """BDIA (Zhang, Lewis & Kleijn ECCV'24; the update rule of the reference README and ``BDIAddim.py``) with exact
    inversion.

    Paper-faithful default: BDIA-DDIM with γ = 0.5 (the README's setting for about 10 steps; use γ = 1.0 for about
    40). Deviation: the reference can add η-noise in the first (plain DDIM) step; genlab's BDIA is deterministic.

    Args:
        gamma: γ ∈ [0, 1]. 0 gives the plain method (DDIM), 1 the symmetric second-order scheme. Inversion needs γ > 0.
        forward: One-step map Φ used towards the next time: ``"ddim"`` (default), ``"euler"``, ``"heun"`` or a callable
            ``(field, pred, x, t, u, cond) -> Tensor`` (see :class:`TransferMap`).
        backward: Map Φ_b towards the previous time (default: the same as ``forward``). EDM-style BDIA uses
            ``forward="heun", backward="euler"`` (Φ_b reuses the evaluation at x_i).
    """

    name: ClassVar[str] = "bdia"
    requires: ClassVar[frozenset[str]] = frozenset({"implicit"})

    def __init__(self, *, gamma: float = 0.5, forward: str | Any = "ddim", backward: str | Any | None = None) -> None:
        gamma = float(gamma)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
        self.gamma = gamma
        self.forward = _as_transfer(forward, "forward")
        self.backward = self.forward if backward is None else _as_transfer(backward, "backward")

    # ------------------------------------------------------------------ contract
    def _needs(self) -> frozenset[str]:
        return frozenset(getattr(self.forward, "requires", frozenset())) | frozenset(
            getattr(self.backward, "requires", frozenset()))

    def check(self, field: Field) -> None:
        """Raise a ``ValueError`` when ``field``'s path lacks what the chosen maps need."""
        if not isinstance(field, Field):
            raise TypeError(f"field must be a genlab Field, got {type(field).__name__}; wrap your network with "
                            "genlab.Field(net, interpolant, kind)")
        missing = sorted(self._needs() - capabilities(field.interpolant, field.kind))
        if missing:
            what = "; ".join(f"{m}: {CAPABILITIES[m]}" for m in missing)
            raise ValueError(f"sampler 'bdia' (forward={self.forward!r}, backward={self.backward!r}) cannot run on "
                             f"{field.interpolant!r} with a {field.kind!r} field: it needs {what}")

    def expected_nfe(self, steps: int) -> int | None:
        fe = getattr(self.forward, "extra_evals", None)
        be = getattr(self.backward, "extra_evals", None)
        if fe is None or be is None:
            return None
        return steps + steps * fe + (steps - 1) * be

    # ------------------------------------------------------------------ core
    def _maps(self, field: CountingField, x: Tensor, grid: Tensor, i: int, cond: Any | None,
              backward: bool) -> tuple[Tensor, Tensor | None, Prediction]:
        """Φ(x_i; t_i → t_{i+1}) and, when asked, Φ_b(x_i; t_i → t_{i−1}), from one shared evaluation."""
        pred = field.evaluate(x, grid[i], cond)
        fwd = self.forward(field, pred, x, grid[i], grid[i + 1], cond)
        bwd = self.backward(field, pred, x, grid[i], grid[i - 1], cond) if backward else None
        return fwd, bwd, pred

    def _run(self, field: CountingField, x_prev: Tensor | None, x: Tensor, grid: Tensor, start: int,
             cond: Any | None, callback: Callable[[StepInfo], None] | None,
             trajectory: list[Tensor] | None) -> tuple[Tensor, Tensor]:
        """Steps ``start .. N−1`` from state ``x`` at ``grid[start]`` (and ``x_prev`` at ``grid[start−1]``)."""
        n = grid.numel() - 1
        for i in range(start, n):
            if i == 0:
                fwd, _, _ = self._maps(field, x, grid, i, cond, backward=False)
                x_new = fwd
            else:
                fwd, bwd, _ = self._maps(field, x, grid, i, cond, backward=True)
                x_new = fwd + self.gamma * (x_prev - bwd)
            x_prev, x = x, x_new
            x = self._report(i, grid, x, callback, trajectory)
        return x_prev, x

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
        x_prev, x = self._run(field, None, x, grid, 0, cond, callback, trajectory)
        return x, {"last_pair": (x_prev, x)}

    # ------------------------------------------------------------------ replay and inversion
    def _prepare(self, field: Field, pair: tuple[Tensor, Tensor], grid: Tensor, cond: Any | None,
                 what: str) -> tuple[Tensor, Tensor, Tensor]:
        self.check(field)
        grid = self.check_grid(grid)
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(p, Tensor) for p in pair)):
            raise TypeError(f"{what} must be a pair of tensors (two consecutive states), got {type(pair).__name__}")
        a, b = pair
        if a.shape != b.shape or a.dtype != b.dtype or not a.is_floating_point():
            raise ValueError(f"the two states of {what} must be floating-point tensors of one shape and dtype, got "
                             f"{tuple(a.shape)}/{a.dtype} and {tuple(b.shape)}/{b.dtype}")
        check_finite(a, name=f"{what}[0]")
        check_finite(b, name=f"{what}[1]")
        if field.interpolant.conditional_source:
            x0 = field.known_source(cond)
            if x0.shape != a.shape:
                raise ValueError(f"the known source x0 (cond) has shape {tuple(x0.shape)}, the states "
                                 f"{tuple(a.shape)}")
        grid = grid.to(device=a.device, dtype=torch.float64 if a.device.type != "mps" else torch.float32)
        return a, b, grid

    def sample_from_pair(
        self,
        field: Field,
        first_pair: tuple[Tensor, Tensor],
        grid: Tensor,
        *,
        cond: Any | None = None,
        callback: Callable[[StepInfo], None] | None = None,
        return_trajectory: bool = False,
    ) -> SampleResult:
        """Replay BDIA from the first pair ``(x_0, x_1)`` (e.g. from :meth:`invert`), without the plain first step.

        Args:
            field: The field.
            first_pair: States at ``grid[0]`` and ``grid[1]``.
            grid: The sampling grid ``(N+1,)``.
            cond: Conditioning.
            callback: Called after each step.
            return_trajectory: Keep every state.

        Returns:
            :class:`SampleResult` with ``x`` at ``grid[-1]`` and ``aux["last_pair"]``.
        """
        x_0, x_1, grid = self._prepare(field, first_pair, grid, cond, "first_pair")
        counted = CountingField(field)
        trajectory = [x_0, x_1] if return_trajectory else None
        with torch.no_grad():
            x_prev, x = self._run(counted, x_0, x_1, grid, 1, cond, callback, trajectory)
        return SampleResult(x=x, nfe=counted.nfe, grid=grid, trajectory=trajectory, aux={"last_pair": (x_prev, x)})

    def invert(
        self,
        field: Field,
        last_pair: tuple[Tensor, Tensor],
        grid: Tensor,
        *,
        cond: Any | None = None,
        return_trajectory: bool = False,
    ) -> SampleResult:
        """Recover the trajectory backwards from its last pair (exact up to rounding; 1 evaluation per step).

        ``x_{i−1} = (x_{i+1} − Φ(x_i; t_i → t_{i+1}))/γ + Φ_b(x_i; t_i → t_{i−1})`` for i = N−1, …, 1.

        Args:
            field: The field used for sampling.
            last_pair: ``(x_{N−1}, x_N)``, e.g. ``result.aux["last_pair"]``.
            grid: The sampling grid ``(N+1,)`` (same direction as when sampling).
            cond: Conditioning.
            return_trajectory: Keep the recovered states (from x_N down to x_0).

        Returns:
            :class:`SampleResult` with ``x = x_0`` (the state at ``grid[0]``) and ``aux["first_pair"] = (x_0, x_1)``.

        Raises:
            ValueError: if γ = 0 (the plain method is not invertible this way).
        """
        if self.gamma == 0.0:
            raise ValueError("BDIA inversion divides by gamma: gamma=0 (plain DDIM) has no exact inverse; sample with "
                             "gamma > 0 (e.g. 0.5 or 1.0)")
        x_prev, x_last, grid = self._prepare(field, last_pair, grid, cond, "last_pair")
        counted = CountingField(field)
        n = grid.numel() - 1
        trajectory = [x_last, x_prev] if return_trajectory else None
        x_next, x = x_last, x_prev  # x_{i+1}, x_i with i = N−1
        with torch.no_grad():
            for i in range(n - 1, 0, -1):
                fwd, bwd, _ = self._maps(counted, x, grid, i, cond, backward=True)
                x_before = (x_next - fwd) / self.gamma + bwd
                x_next, x = x, x_before
                if trajectory is not None:
                    trajectory.append(x)
        return SampleResult(x=x, nfe=counted.nfe, grid=grid, trajectory=trajectory, aux={"first_pair": (x, x_next)})


def bdia_edit(
    field: Field,
    y: Tensor,
    grid: Tensor,
    edit_fn: Callable[[BDIALatent], BDIALatent] | None = None,
    *,
    gamma: float = 0.5,
    forward: str | Any = "ddim",
    backward: str | Any | None = None,
    cond: Any | None = None,
) -> EditResult:
    """Encode a real sample exactly with BDIA, optionally edit its latent, and regenerate (BDIA's editing
    use; reference ``bdia_edict_functions.py``).

    Encoding (``bdia_edict_functions.py``): set x_N = y, take one approximate inversion step
    x_{N−1} = Φ(y; t_N → t_{N−1}) (a DDIM inversion step by default), then invert BDIA exactly down to (x_0, x_1).
    Regenerating from (x_0, x_1) with :meth:`BDIA.sample_from_pair` replays the same trajectory, so with no edit the
    result reproduces ``y`` to floating-point precision; an edit of x_0/x_1 or of the condition changes it.

    Args:
        field: The field.
        y: The real sample, a state at ``grid[-1]``.
        grid: Sampling grid ``(N+1,)`` with N ≥ 1.
        edit_fn: Maps the encoded :class:`BDIALatent` to the latent to regenerate from (may change ``cond``).
        gamma: BDIA γ (> 0).
        forward: Forward map (see :class:`BDIA`).
        backward: Backward map.
        cond: Conditioning of the encoding.

    Returns:
        :class:`EditResult`.
    """
    sampler = BDIA(gamma=gamma, forward=forward, backward=backward)
    if sampler.gamma == 0.0:
        raise ValueError("bdia_edit needs gamma > 0 (the inversion divides by gamma)")
    sampler.check(field)
    grid = sampler.check_grid(grid)
    if not isinstance(y, Tensor) or not y.is_floating_point():
        raise TypeError("y must be a floating-point tensor (a sample at grid[-1])")
    check_finite(y, name="y")
    grid = grid.to(device=y.device, dtype=torch.float64 if y.device.type != "mps" else torch.float32)
    n = grid.numel() - 1
    counted = CountingField(field)
    with torch.no_grad():
        pred = counted.evaluate(y, grid[n], cond)
        x_before = sampler.backward(counted, pred, y, grid[n], grid[n - 1], cond)
    enc = sampler.invert(field, (x_before, y), grid, cond=cond)
    x_init, x_next = enc.aux["first_pair"]
    latent = BDIALatent(x_init=x_init, x_next=x_next, cond=cond)
    edited = latent if edit_fn is None else edit_fn(BDIALatent(x_init.clone(), x_next.clone(), cond))
    if not isinstance(edited, BDIALatent):
        raise TypeError(f"edit_fn must return a BDIALatent, got {type(edited).__name__}")
    out = sampler.sample_from_pair(field, (edited.x_init, edited.x_next), grid, cond=edited.cond)
    return EditResult(x=out.x, latent=latent, edited=edited, nfe=counted.nfe + enc.nfe + out.nfe, grid=grid)
