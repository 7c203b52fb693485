"""The one-step maps every sampler loop and every guidance method share (the step engine's transition protocol).

A :class:`Step` moves a state from ``t`` to ``t_next`` given one prediction of the predicted ends ``(x̂0, x̂1)``
(genlab time: 0 = source/noise, 1 = data):

* :class:`DDIMStep` (η ∈ [0, 1]): the generalised DDIM step ``x' = Σ c_j(t') x̂_j + √(n'² − ω²)·ê + ω·ξ`` with
  ``ω = η·markov_omega(t, t')`` (Song, Meng & Ermon, ICLR'21, eq. 12; ``reference/inverse.md`` §0), which is one
  call to :meth:`genlab.interpolants.Interpolant.implicit_step`; η = 1 is DDPM's ancestral step (Ho et al.,
  NeurIPS'20, Alg. 2) — :class:`DDPMStep` — and η = 0 on a noise-free path is IADB (Heitz et al. SIGGRAPH'23);
* :class:`EulerStep`: one Euler step of the probability-flow ODE, ``x' = x + (t' − t)·b``;
* :func:`heun_update`: EDM's second-order Heun correction (Karras et al. NeurIPS'22, Alg. 1).

The registered samplers :class:`~genlab.samplers.DDIM`, :class:`~genlab.samplers.IADB`,
:class:`~genlab.samplers.Euler`/:class:`~genlab.samplers.Heun` and BDIA's transfer maps call these, and guided
sampling (:func:`genlab.inverse.solve`) hands the sampler's own step to the methods that re-shape a transition
(STSL, Dreamguider, DDS), so each map exists once.

When ``eps_hat`` is omitted the noise estimate of a Gaussian-source path is the one implied by the state,
``ε̂ = (x_t − β·x̂1)/α`` (this is how a displacement of ``x_t`` made by a guidance step survives the transition).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.interpolants.interpolant import Interpolant
from genlab.utils import RandomSource, append_dims, as_time, randn_like_per_sample

__all__ = ["STEPS", "DDIMStep", "DDPMStep", "EulerStep", "Step", "euler_update", "heun_update", "make_step"]


def euler_update(x: Tensor, t: Tensor | float, t_next: Tensor | float, velocity: Tensor) -> Tensor:
    """``x + (t_next − t)·velocity`` (forward Euler on the PF-ODE); times are 0-d, ``(B,)`` tensors or floats."""
    if isinstance(t, Tensor) and isinstance(t_next, Tensor):
        h = (t_next - t).to(x.dtype)
    else:
        h = torch.tensor(float(t_next) - float(t), dtype=x.dtype, device=x.device)
    if h.ndim == 1:
        h = append_dims(h, x.ndim)
    return x + h * velocity


def heun_update(field: Any, velocity: Tensor, x: Tensor, t: Tensor, t_next: Tensor, cond: Any | None) -> Tensor:
    """EDM's Heun step (Karras et al. NeurIPS'22, Alg. 1, lines 5–8): ``x + h·(d + b(t', x + h·d))/2``.

    Args:
        field: A counting field (``field.predict(x, t, "velocity", cond)`` is one more evaluation).
        velocity: ``d = b(t, x)``, the velocity of the evaluation at ``(x, t)``.
        x: State.
        t: Current time.
        t_next: Next time.
        cond: Conditioning.

    Returns:
        The state at ``t_next``.
    """
    x_pred = euler_update(x, t, t_next, velocity)
    d2 = field.predict(x_pred, t_next, "velocity", cond)
    return euler_update(x, t, t_next, (velocity + d2) / 2)


class Step(ABC):
    """One transition ``t → t_next`` driven by a prediction of the ends ``(x̂0, x̂1)``.

    Attributes:
        name: Registry name.
        requires: Capabilities (keys of ``genlab.samplers.CAPABILITIES``) the path must offer.
    """

    name: ClassVar[str] = "step"
    requires: ClassVar[frozenset[str]] = frozenset()

    @property
    def stochastic(self) -> bool:
        """Whether the step draws fresh noise."""
        return False

    def omega(self, interpolant: Interpolant, t: float | Tensor, t_next: float | Tensor, x: Tensor) -> Tensor:
        """Std of the fresh noise of the step, shape ``(B,)`` (zeros for deterministic steps)."""
        return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

    @abstractmethod
    def step(
        self,
        interpolant: Interpolant,
        x_t: Tensor,
        t: float | Tensor,
        t_next: float | Tensor,
        x1_hat: Tensor,
        eps_hat: Tensor | None = None,
        *,
        x0_hat: Tensor | None = None,
        generator: RandomSource = None,
        fresh_noise: bool = True,
    ) -> Tensor:
        """Move ``x_t`` from ``t`` to ``t_next``.

        Args:
            interpolant: The path.
            x_t: State.
            t: Current time.
            t_next: Next time.
            x1_hat: Data prediction (possibly conditioned on a measurement).
            eps_hat: Noise prediction of a Gaussian source; ``None`` uses the noise implied by ``x_t``.
            x0_hat: Source prediction of a path with a data source (the known x0 of a bridge).
            generator: Source of the fresh noise (a :class:`~genlab.utils.NoiseStream`, a generator or ``None``).
            fresh_noise: ``False`` skips the fresh noise (samplers do so on their last step).

        Returns:
            The state at ``t_next``.
        """

    def config(self) -> dict[str, Any]:
        """Resolved parameters."""
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"


def _state_from_eps(interpolant: Interpolant, x_t: Tensor, t: float | Tensor, x1_hat: Tensor,
                    eps_hat: Tensor) -> Tensor:
    """The Gaussian-source state whose implied noise is ``eps_hat``: ``β·x̂1 + α·ε̂``."""
    c = interpolant.schedule.coeffs(as_time(t, x_t))
    beta, alpha = append_dims(c.beta.to(x_t.dtype), x_t.ndim), append_dims(c.alpha.to(x_t.dtype), x_t.ndim)
    return beta * x1_hat + alpha * eps_hat


class DDIMStep(Step):
    """Generalised DDIM(η) step on any path with an implicit step (Song, Meng & Ermon, ICLR'21, eq. 12).

    Args:
        eta: Stochasticity η ∈ [0, 1] (0: deterministic DDIM, 1: DDPM's ancestral step).
    """

    name: ClassVar[str] = "ddim"
    requires: ClassVar[frozenset[str]] = frozenset({"implicit"})

    def __init__(self, eta: float = 0.0) -> None:
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= float(eta) <= 1.0:
            raise ValueError(f"eta must be a float in [0, 1] (0 = DDIM, 1 = DDPM), got {eta!r}")
        self.eta = float(eta)

    @property
    def stochastic(self) -> bool:
        return self.eta > 0

    def omega(self, interpolant: Interpolant, t: float | Tensor, t_next: float | Tensor, x: Tensor) -> Tensor:
        if self.eta == 0:
            return super().omega(interpolant, t, t_next, x)
        return self.eta * interpolant.markov_omega(t, t_next, x)

    def step(
        self,
        interpolant: Interpolant,
        x_t: Tensor,
        t: float | Tensor,
        t_next: float | Tensor,
        x1_hat: Tensor,
        eps_hat: Tensor | None = None,
        *,
        x0_hat: Tensor | None = None,
        generator: RandomSource = None,
        fresh_noise: bool = True,
    ) -> Tensor:
        state = x_t if eps_hat is None else _state_from_eps(interpolant, x_t, t, x1_hat, eps_hat)
        omega: Tensor | float = 0.0
        xi = None
        if self.eta > 0 and fresh_noise:
            omega = self.omega(interpolant, t, t_next, x_t)
            xi = randn_like_per_sample(x_t, generator=generator)
        # a Gaussian source's noise estimate is re-derived from the state inside implicit_step (x0_hat unused)
        return interpolant.implicit_step(state, t, t_next, x0_hat, x1_hat, omega=omega, xi=xi)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "eta": self.eta}


class DDPMStep(DDIMStep):
    """The ancestral DDPM step (Ho et al., NeurIPS'20, Alg. 2): :class:`DDIMStep` with η = 1."""

    name: ClassVar[str] = "ddpm"

    def __init__(self, eta: float = 1.0) -> None:
        if eta != 1.0:
            raise ValueError(f"the 'ddpm' step has eta = 1; got eta={eta!r} (use sampler='ddim' with eta)")
        super().__init__(1.0)


class EulerStep(Step):
    """Euler step of the probability-flow ODE, ``x' = x + (t' − t)·(α̇ε̂ + β̇x̂1)`` on a Gaussian-source path."""

    name: ClassVar[str] = "euler"
    requires: ClassVar[frozenset[str]] = frozenset({"velocity"})

    def step(
        self,
        interpolant: Interpolant,
        x_t: Tensor,
        t: float | Tensor,
        t_next: float | Tensor,
        x1_hat: Tensor,
        eps_hat: Tensor | None = None,
        *,
        x0_hat: Tensor | None = None,
        generator: RandomSource = None,
        fresh_noise: bool = True,
    ) -> Tensor:
        if not interpolant.gaussian_source:
            raise ValueError("EulerStep from predicted ends needs a Gaussian-source path; on other paths use the "
                             "registered 'euler' sampler (it reads the field's velocity)")
        tt = as_time(t, x_t)
        c = interpolant.schedule.coeffs(tt)
        nd = x_t.ndim
        beta, alpha = append_dims(c.beta.to(x_t.dtype), nd), append_dims(c.alpha.to(x_t.dtype), nd)
        if eps_hat is None:
            eps_hat = (x_t - beta * x1_hat) / alpha
        velocity = append_dims(c.d_alpha.to(x_t.dtype), nd) * eps_hat + append_dims(c.d_beta.to(x_t.dtype), nd) * x1_hat
        return euler_update(x_t, tt, as_time(t_next, x_t), velocity)


#: Steps by name (``"ddpm"`` is ``"ddim"`` with η = 1).
STEPS: dict[str, type[Step]] = {"ddim": DDIMStep, "ddpm": DDPMStep, "euler": EulerStep}


def make_step(name: str, eta: float | None = None) -> Step:
    """A step by name.

    Args:
        name: ``"ddim"``, ``"ddpm"`` or ``"euler"``.
        eta: DDIM's η (``"ddim"`` only; ``"ddpm"`` fixes η = 1, ``"euler"`` is deterministic).

    Returns:
        The :class:`Step`.
    """
    if name not in STEPS:
        raise ValueError(f"unknown step {name!r}; the step engine supports {sorted(STEPS)}")
    if name == "ddim":
        return DDIMStep(0.0 if eta is None else eta)
    if name == "ddpm":
        if eta not in (None, 1, 1.0):
            raise ValueError(f"sampler 'ddpm' has eta = 1; got eta={eta!r} (use sampler='ddim' to choose eta)")
        return DDPMStep()
    if eta not in (None, 0, 0.0):
        raise ValueError(f"sampler 'euler' is deterministic; got eta={eta!r} (use sampler='ddim' for eta > 0)")
    return EulerStep()
