"""The reverse-time transitions a guidance method plugs its (possibly conditioned) prediction into.

All of them read one prediction ``(x̂1, ε̂)`` and move the state from ``t`` to ``t_next`` on any Gaussian-source
path (genlab time: 0 = noise → 1 = data):

* ``"ddim"`` (η ∈ [0, 1]): the generalised DDIM step ``x' = a'x̂1 + √(s'² − ω²)·ε̂ + ω·ξ`` with
  ``ω = η·ω_DDPM(t, t')`` (Song et al., ICLR'21, eq. 12; ``reference/inverse.md`` §0), computed by
  :meth:`genlab.interpolants.Interpolant.implicit_step`;
* ``"ddpm"``: the same with η = 1 (the ancestral / DDPM posterior step);
* ``"euler"``: one Euler step of the probability-flow ODE with velocity ``α̇·ε̂ + β̇·x̂1``.

When ``eps_hat`` is omitted the noise estimate is the one implied by the state, ``ε̂ = (x_t − a·x̂1)/s``
(this is how a displacement of ``x_t`` made by a guidance step survives the transition).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from genlab.interpolants.interpolant import Interpolant
from genlab.inverse.streams import SampleStreams, randn_like
from genlab.utils import append_dims, as_time

__all__ = ["DDIM", "DDPM", "TRANSITIONS", "EulerODE", "Transition", "make_transition"]


class Transition(ABC):
    """One reverse step driven by a prediction ``(x̂1, ε̂)``."""

    name: ClassVar[str] = "transition"
    #: Whether the step draws fresh noise.
    stochastic: ClassVar[bool] = False

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
        generator: torch.Generator | SampleStreams | None = None,
    ) -> Tensor:
        """Move ``x_t`` from ``t`` to ``t_next``.

        Args:
            interpolant: Gaussian-source path.
            x_t: State.
            t: Current time.
            t_next: Next time.
            x1_hat: Data prediction (possibly conditioned on y).
            eps_hat: Noise prediction; ``None`` uses the noise implied by ``x_t`` and ``x1_hat``.
            generator: Generator of the fresh noise (per-sample streams, a generator, or ``None``).

        Returns:
            The state at ``t_next``.
        """

    def omega(self, interpolant: Interpolant, t: float | Tensor, t_next: float | Tensor, x: Tensor) -> Tensor:
        """Std of the fresh noise of the step (``(B,)``; zeros for deterministic steps)."""
        return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

    def config(self) -> dict:
        """Resolved parameters."""
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"


class DDIM(Transition):
    """Generalised DDIM(η) step on any Gaussian-source path (Song, Meng & Ermon, ICLR'21, eq. 12).

    Args:
        eta: Stochasticity η ∈ [0, 1] (0: deterministic DDIM, 1: DDPM ancestral step).
    """

    name: ClassVar[str] = "ddim"

    def __init__(self, eta: float = 0.0) -> None:
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= float(eta) <= 1.0:
            raise ValueError(f"eta must be a float in [0, 1] (0 = DDIM, 1 = DDPM), got {eta!r}")
        self.eta = float(eta)

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
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
        generator: torch.Generator | SampleStreams | None = None,
    ) -> Tensor:
        state = x_t
        if eps_hat is not None:
            # the state whose implied noise is eps_hat: x = a·x̂1 + s·ε̂
            c = interpolant.schedule.coeffs(as_time(t, x_t))
            a, s = append_dims(c.beta.to(x_t.dtype), x_t.ndim), append_dims(c.alpha.to(x_t.dtype), x_t.ndim)
            state = a * x1_hat + s * eps_hat
        omega = self.omega(interpolant, t, t_next, x_t)
        xi = randn_like(x_t, generator) if self.eta > 0 else None
        zero_eps = torch.zeros_like(x1_hat)  # ignored for a Gaussian source (the noise comes from the state)
        return interpolant.implicit_step(state, t, t_next, zero_eps, x1_hat, omega=omega, xi=xi)

    def config(self) -> dict:
        return {"name": self.name, "eta": self.eta}


class DDPM(DDIM):
    """The ancestral DDPM step (Ho et al., NeurIPS'20, Alg. 2): DDIM with η = 1."""

    name: ClassVar[str] = "ddpm"

    def __init__(self, eta: float = 1.0) -> None:
        if eta != 1.0:
            raise ValueError(f"the 'ddpm' transition has eta = 1; got eta={eta!r} (use sampler='ddim' with eta)")
        super().__init__(1.0)


class EulerODE(Transition):
    """Euler step of the probability-flow ODE, ``x' = x + (t' − t)·(α̇ε̂ + β̇x̂1)`` (deterministic)."""

    name: ClassVar[str] = "euler"

    def step(
        self,
        interpolant: Interpolant,
        x_t: Tensor,
        t: float | Tensor,
        t_next: float | Tensor,
        x1_hat: Tensor,
        eps_hat: Tensor | None = None,
        *,
        generator: torch.Generator | SampleStreams | None = None,
    ) -> Tensor:
        tt = as_time(t, x_t)
        c = interpolant.schedule.coeffs(tt)
        nd = x_t.ndim
        a, s = append_dims(c.beta.to(x_t.dtype), nd), append_dims(c.alpha.to(x_t.dtype), nd)
        if eps_hat is None:
            eps_hat = (x_t - a * x1_hat) / s
        velocity = append_dims(c.d_alpha.to(x_t.dtype), nd) * eps_hat + append_dims(c.d_beta.to(x_t.dtype), nd) * x1_hat
        h = (as_time(t_next, x_t) - tt).to(x_t.dtype)
        return x_t + append_dims(h, nd) * velocity


TRANSITIONS: dict[str, type[Transition]] = {"ddim": DDIM, "ddpm": DDPM, "euler": EulerODE}


def make_transition(name: str, eta: float | None = None) -> Transition:
    """Build a transition by name.

    Args:
        name: ``"ddim"``, ``"ddpm"`` or ``"euler"``.
        eta: DDIM's η (``"ddim"`` only; ``"ddpm"`` fixes η = 1, ``"euler"`` is deterministic).

    Returns:
        The :class:`Transition`.
    """
    if name not in TRANSITIONS:
        raise ValueError(f"unknown sampler {name!r}; guided sampling supports {sorted(TRANSITIONS)}")
    if name == "ddim":
        return DDIM(0.0 if eta is None else eta)
    if name == "ddpm":
        if eta not in (None, 1, 1.0):
            raise ValueError(f"sampler 'ddpm' has eta = 1; got eta={eta!r} (use sampler='ddim' to choose eta)")
        return DDPM()
    if eta not in (None, 0, 0.0):
        raise ValueError(f"sampler 'euler' is deterministic; got eta={eta!r} (use sampler='ddim' for eta > 0)")
    return EulerODE()
