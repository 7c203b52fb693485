"""Implicit samplers: DDIM(η) and IADB, both one :class:`~genlab.samplers.steps.DDIMStep` per grid step.

The implicit step keeps the predicted ends ``(x̂0, x̂1)`` of one network evaluation and re-noises to the next time:
``x_t = Σ_{j≠noise} c_j(t) x̂_j + √(n_t² − ω²)·ê + ω ξ`` with the noise estimate ê recovered from ``x_s``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor

from genlab.models.field import Field
from genlab.samplers.base import CAPABILITIES, CountingField, Sampler, StepInfo, capabilities
from genlab.samplers.registry import register_sampler
from genlab.samplers.steps import DDIMStep, Step
from genlab.utils import RandomSource

__all__ = ["DDIM", "IADB", "require_capabilities"]


def require_capabilities(sampler: Sampler, field: Field, needed: set[str] | frozenset[str], why: str = "") -> None:
    """Raise the base class's ``ValueError`` for capabilities an option adds (e.g. ``"markov"`` when η > 0).

    Args:
        sampler: The sampler (for its name).
        field: The field to be sampled.
        needed: Extra capabilities.
        why: The option that needs them, for the message.
    """
    missing = sorted(set(needed) - capabilities(field.interpolant, field.kind))
    if missing:
        what = "; ".join(f"{m}: {CAPABILITIES[m]}" for m in missing)
        raise ValueError(f"sampler {sampler.name!r}{' ' + why if why else ''} cannot run on {field.interpolant!r} "
                         f"with a {field.kind!r} field: it needs {what}")


@register_sampler
class DDIM(Sampler):
    """DDIM(η) (Song, Meng & Ermon, ICLR'21, eq. 12) on any path with an implicit step.

    Each step evaluates the field once at ``(x_s, s)``, takes the predicted ends ``(x̂0, x̂1)`` (ε̂ and the data
    for a Gaussian source; the known x0 and the data for a bridge) and moves to t with
    :meth:`Interpolant.implicit_step`, ω = η·``markov_omega(s, t)``. η = 0 is the deterministic DDIM (the exact
    solution map of the PF-ODE when x̂1 is exact and constant — e.g. point-mass data); η = 1 is DDPM's ancestral
    step (the Markovian posterior q(x_t | x_s, x̂1)). On a bridge it is DBIM(η) without the booting noise
    (Zheng et al. ICLR'25): there, start at γ > 0 or use :class:`genlab.samplers.dbim.DBIM`. On rectified flow
    (η = 0) it equals Euler in t. No fresh noise is added on the last step. NFE = N.

    Args:
        eta: η ∈ [0, 1]; η > 0 needs a Markovian step (Gaussian source, DDBM bridge, Brownian bridge).
    """

    name: ClassVar[str] = "ddim"
    requires: ClassVar[frozenset[str]] = frozenset({"implicit"})
    #: May draw noise (when η > 0).
    stochastic: ClassVar[bool] = True

    def __init__(self, *, eta: float = 0.0) -> None:
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {eta}")
        self.eta = float(eta)

    def check(self, field: Field) -> None:
        super().check(field)
        if self.eta > 0:
            require_capabilities(self, field, {"markov"}, why=f"with eta={self.eta}")

    def step_map(self) -> Step:
        return DDIMStep(self.eta)

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
        if self.eta > 0 and not bool(grid[-1] > grid[0]):
            raise ValueError("DDIM with eta > 0 only generates (increasing grid); encode with eta=0")
        x = self._step_loop(field, x, grid, self.step_map(), cond=cond, generator=generator, callback=callback,
                            trajectory=trajectory)
        return x, {}


@register_sampler
class IADB(Sampler):
    """Iterative α-(de)blending (Heitz, Belcour & Chambon, SIGGRAPH'23).

    Alg. 4 is ``x ← x + (α_{k+1} − α_k)·D(x, α_k)`` with D ≈ E[x1 − x0 | x_α] on the blend x_α = (1−α)x0 + αx1;
    that is the deterministic deblending of Alg. 2, ``x_{α'} = (1 − α')x̄0 + α'x̄1`` with the posterior means of
    both ends, i.e. :meth:`Interpolant.implicit_step` with ω = 0. genlab runs that step on any path with an
    implicit step: on the linear path (:func:`genlab.interpolants.AlphaBlending`, rectified flow) it *is* Alg. 4
    (= Euler), on a noise-free two-sided path it blends the two predicted ends, and on a Gaussian-source path it
    coincides with DDIM(η = 0). NFE = N.
    """

    name: ClassVar[str] = "iadb"
    requires: ClassVar[frozenset[str]] = frozenset({"implicit"})

    def step_map(self) -> Step:
        return DDIMStep(0.0)

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
        x = self._step_loop(field, x, grid, self.step_map(), cond=cond, generator=generator, callback=callback,
                            trajectory=trajectory)
        return x, {}
