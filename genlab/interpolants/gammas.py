"""The noise coefficient family γ(t) of stochastic interpolants.

Albergo, Boffi & Vanden-Eijnden, "Stochastic Interpolants: A Unifying Framework for Flows and Diffusions"
(arXiv:2303.08797), §3 and their reference code (``interflow/fabrics.py::make_gamma``). Every γ vanishes at
t ∈ {0, 1}; ``gamma_dgamma`` = γγ̇ is returned in closed form because it stays finite at the ends even where
γ̇ does not (γ = √(t(1−t)) has γ̇ → ±∞ there).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "GAMMAS",
    "BSquaredGamma",
    "BrownianGamma",
    "Gamma",
    "GammaValues",
    "SineSquaredGamma",
    "ZeroGamma",
    "make_gamma",
]


@dataclass
class GammaValues:
    """γ(t), its derivative γ̇(t) and the product γγ̇(t) (finite at the endpoints)."""

    gamma: Tensor
    d_gamma: Tensor
    gamma_dgamma: Tensor


class Gamma(ABC):
    """A noise coefficient γ: [0, 1] → [0, ∞) with γ(0) = γ(1) = 0."""

    name: str = "gamma"

    @abstractmethod
    def __call__(self, t: Tensor) -> GammaValues:
        """Evaluate γ, γ̇ and γγ̇ at ``t`` (a float64 tensor)."""

    @property
    def is_zero(self) -> bool:
        """Whether γ ≡ 0 (a deterministic, one-sided or noise-free two-sided path)."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ZeroGamma(Gamma):
    """γ ≡ 0: no latent noise (one-sided paths, rectified flow between two data sets)."""

    name = "zero"

    def __call__(self, t: Tensor) -> GammaValues:
        zero = torch.zeros_like(t)
        return GammaValues(zero, zero, zero)

    @property
    def is_zero(self) -> bool:
        return True


class BrownianGamma(Gamma):
    """γ(t) = √(a·t(1−t)) (``brownian`` for a = 1, ``a-brownian`` otherwise); γγ̇ = a(1−2t)/2.

    With ``a = σ²`` and the linear α, β this is the Brownian bridge of a Wiener process with variance σ² per unit
    time, the reference process of Schrödinger bridges (SB-CFM, DSBM, Light SB).

    Args:
        a: Scale ``a > 0`` of the variance.
    """

    name = "brownian"

    def __init__(self, a: float = 1.0) -> None:
        if not a > 0:
            raise ValueError(f"BrownianGamma: a must be > 0, got {a}")
        self.a = float(a)

    def __call__(self, t: Tensor) -> GammaValues:
        v = self.a * t * (1 - t)
        gamma = torch.sqrt(v.clamp_min(0))
        gdg = self.a * (1 - 2 * t) / 2
        with torch.no_grad():
            interior = gamma > 0
        d_gamma = torch.where(interior, gdg / gamma.clamp_min(torch.finfo(t.dtype).tiny), torch.sign(gdg) * math.inf)
        return GammaValues(gamma, d_gamma, gdg)

    def __repr__(self) -> str:
        return f"BrownianGamma(a={self.a})"


class BSquaredGamma(Gamma):
    """γ(t) = a·t(1−t) (``bsquared``): smooth at the ends, γ̇ = a(1−2t)."""

    name = "bsquared"

    def __init__(self, a: float = 1.0) -> None:
        if not a > 0:
            raise ValueError(f"BSquaredGamma: a must be > 0, got {a}")
        self.a = float(a)

    def __call__(self, t: Tensor) -> GammaValues:
        gamma = self.a * t * (1 - t)
        d_gamma = self.a * (1 - 2 * t)
        return GammaValues(gamma, d_gamma, gamma * d_gamma)

    def __repr__(self) -> str:
        return f"BSquaredGamma(a={self.a})"


class SineSquaredGamma(Gamma):
    """γ(t) = a·sin²(πt) (``sinesquared``), used by the encoder–decoder path; γ̇ = aπ sin(2πt)."""

    name = "sinesquared"

    def __init__(self, a: float = 1.0) -> None:
        if not a > 0:
            raise ValueError(f"SineSquaredGamma: a must be > 0, got {a}")
        self.a = float(a)

    def __call__(self, t: Tensor) -> GammaValues:
        # sin(π) ≈ 1.2e-16 in floating point: make the boundary values (and γ̇ there) exactly zero
        end = (t == 0) | (t == 1)
        gamma = torch.where(end, torch.zeros_like(t), self.a * torch.sin(math.pi * t) ** 2)
        d_gamma = torch.where(end, torch.zeros_like(t), self.a * math.pi * torch.sin(2 * math.pi * t))
        return GammaValues(gamma, d_gamma, gamma * d_gamma)

    def __repr__(self) -> str:
        return f"SineSquaredGamma(a={self.a})"


GAMMAS: dict[str, type[Gamma]] = {
    "zero": ZeroGamma,
    "brownian": BrownianGamma,
    "a-brownian": BrownianGamma,
    "bsquared": BSquaredGamma,
    "sinesquared": SineSquaredGamma,
}


def make_gamma(gamma: str | Gamma, *, a: float = 1.0) -> Gamma:
    """Build a γ from its name (``brownian``, ``a-brownian``, ``bsquared``, ``sinesquared``, ``zero``).

    Args:
        gamma: A name or an existing :class:`Gamma`.
        a: Scale parameter (ignored for ``zero``; ``brownian`` uses a = 1 unless given).

    Returns:
        The :class:`Gamma` instance.
    """
    if isinstance(gamma, Gamma):
        return gamma
    if not isinstance(gamma, str) or gamma not in GAMMAS:
        raise ValueError(f"unknown gamma {gamma!r}; choose one of {sorted(GAMMAS)} or pass a Gamma instance")
    cls = GAMMAS[gamma]
    return cls() if cls is ZeroGamma else cls(a)
