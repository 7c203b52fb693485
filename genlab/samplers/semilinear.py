"""Shared pieces of the exponential-integrator samplers (DPM-Solver++, DEIS): the semilinear coefficients on a grid,
the inverse of the half log-SNR λ(t) and diffusers' multistep order schedule.

genlab writes a Gaussian-source path as ``x_t = α(t)·ε + β(t)·x1`` and a bridge as ``x_t = α x0 + β x1 + γ z``;
:meth:`Interpolant.semilinear` returns them as ``noise`` (α, resp. γ), ``data`` (β), ``known`` (None, resp. α) and
``λ = log(data/noise)`` (:meth:`Interpolant.lam`, inverted by :meth:`Interpolant.time_at_lam`). In the notation of DPM-Solver/DEIS (``reference/samplers.md`` §0) the signal "α" is genlab's
β, the noise "σ" is genlab's α (γ on a bridge), and DEIS's ρ = σ/α is ``noise/data`` = e^{−λ}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.interpolants.interpolant import Interpolant

__all__ = [
    "SemilinearGrid",
    "check_lower_order_final",
    "multistep_orders",
    "semilinear_grid",
    "time_of_lam",
]


@dataclass
class SemilinearGrid:
    """Semilinear coefficients at every grid time (float64, shape ``(N+1,)``, on the CPU).

    Attributes:
        t: The grid.
        noise: Coefficient of the Gaussian slot (genlab α, γ on a bridge; "σ" of DPM-Solver/DEIS).
        data: Coefficient of the data slot (genlab β; "α" of DPM-Solver/DEIS).
        known: Coefficient of the known source on a bridge, else ``None``.
        lam: λ = log(data/noise).
    """

    t: Tensor
    noise: Tensor
    data: Tensor
    known: Tensor | None
    lam: Tensor

    @property
    def rho(self) -> Tensor:
        """DEIS's ρ = noise/data = e^{−λ} (``inf`` where the data coefficient vanishes)."""
        return self.noise / self.data

    def check_steps_from(self, name: str) -> None:
        """Raise unless every time a step starts from (all but the last) has a positive noise coefficient.

        Args:
            name: Sampler name for the message.
        """
        bad = [i for i in range(self.t.numel() - 1)
               if not float(self.noise[i]) > 0 or math.isnan(float(self.lam[i]))]
        if bad:
            i = bad[0]
            raise ValueError(
                f"sampler {name!r} cannot step from t={float(self.t[i]):.6g} (grid[{i}]): the noise coefficient is "
                f"{float(self.noise[i]):.3g} there, so the exponential integrator is undefined; start the grid "
                "strictly inside (0, 1) where the path has noise (e.g. genlab.samplers.grids.log_snr picks such ends), "
                "and only end it at the data end"
            )
        if bool(torch.isnan(self.lam).any()):
            raise ValueError(f"sampler {name!r}: log-SNR is NaN on the grid (0/0 coefficients); keep the grid inside (0, 1)")


def semilinear_grid(interpolant: Interpolant, grid: Tensor) -> SemilinearGrid:
    """The semilinear coefficients of ``interpolant`` at every time of ``grid`` (float64, CPU).

    Args:
        interpolant: A path with semilinear structure (Gaussian source, or bridge with known source).
        grid: ``(N+1,)`` times.

    Returns:
        :class:`SemilinearGrid`.
    """
    t = grid.detach().to(device="cpu", dtype=torch.float64)
    s = interpolant.semilinear(t, t)
    known = None if s.known is None else s.known.to(torch.float64)
    return SemilinearGrid(t=t, noise=s.noise.to(torch.float64), data=s.data.to(torch.float64), known=known,
                          lam=s.lam.to(torch.float64))


def time_of_lam(interpolant: Interpolant, lam: Tensor, t_a: Tensor, t_b: Tensor) -> Tensor:
    """Times between ``t_a`` and ``t_b`` (elementwise) with λ(t) = ``lam``: :meth:`Interpolant.time_at_lam`.

    Kept as a thin alias for callers of the former bisection; the inverse lives on the interpolant.

    Args:
        interpolant: The path.
        lam: Target λ values, any shape.
        t_a: One end of each bracket (same shape as ``lam``).
        t_b: The other end.

    Returns:
        Times (float64, CPU), shape of ``lam``.
    """
    cpu = torch.device("cpu")
    return interpolant.time_at_lam(lam.detach().to(cpu, torch.float64), t_lo=t_a.detach().to(cpu, torch.float64),
                                   t_hi=t_b.detach().to(cpu, torch.float64))


def check_lower_order_final(lower_order_final: bool | None) -> bool | None:
    """Validate the ``lower_order_final`` option of the diffusers-style multistep samplers.

    Args:
        lower_order_final: ``None`` (lower only on short grids), ``True`` or ``False``.

    Returns:
        The value unchanged.

    Raises:
        TypeError: For anything but ``None`` or a bool.
    """
    if lower_order_final is not None and not isinstance(lower_order_final, bool):
        raise TypeError(f"lower_order_final must be None, True or False, got {lower_order_final!r}")
    return lower_order_final


def multistep_orders(order: int, steps: int, lower_order_final: bool | None) -> list[int]:
    """Order used at each step of a multistep sampler, as diffusers' multistep schedulers schedule it.

    Warm-up: step i uses at most i + 1 nodes. With ``lower_order_final`` the last step is first order and the one
    before at most second order; ``None`` turns that on only for grids of fewer than 15 steps (diffusers'
    ``lower_order_final=True``).

    Args:
        order: Maximal number of nodes.
        steps: Number of steps N of the grid.
        lower_order_final: See above.

    Returns:
        One order per step.
    """
    lof = (steps < 15) if lower_order_final is None else lower_order_final
    orders = []
    for i in range(steps):
        k = min(order, i + 1)
        if lof and i == steps - 1:
            k = 1
        elif lof and i == steps - 2:
            k = min(k, 2)
        orders.append(k)
    return orders
