"""Two-dimensional toy distributions: moons, eight Gaussians, checkerboard, Swiss roll and pinwheel.

The shapes follow the FFJORD toy suite (Grathwohl et al., ICLR 2019, ``lib/toy_data.py``) that torchcfm and
Meta's flow_matching examples reuse. Each raw distribution is then mapped by a **fixed** affine map (it depends
on ``noise`` but never on the drawn samples) so that, in distribution,

.. math::

    \\mathbb{E}[x] = 0, \\qquad \\mathbb{E}\\,\\|x\\|^2 = 2,

i.e. zero mean and an average per-coordinate variance of one. The constants are closed forms computed in each
sampler's docstring; the tests check them by Monte Carlo. Deviation from FFJORD: FFJORD uses ad-hoc scales
(``*2``, ``/1.414``, ``/5``) that give standard deviations between 1.4 and 2.8; genlab standardises exactly.

Every sampler draws in float64 and casts to ``dtype`` at the end. Results are reproducible given a
``torch.Generator``; the noise is drawn on the generator's device and moved to ``device``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "TOY_NAMES",
    "checkerboard",
    "eight_gaussians",
    "moons",
    "pinwheel",
    "swiss_roll",
    "toy",
]


def _check_args(name: str, n: int, noise: float) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{name}: n must be a non-negative int (number of points); got {n!r}")
    if not math.isfinite(float(noise)) or float(noise) < 0:
        raise ValueError(f"{name}: noise must be a finite float >= 0; got {noise!r}")


def _devices(
    generator: torch.Generator | None, device: torch.device | str | None
) -> tuple[torch.device, torch.device]:
    """(device the random numbers are drawn on, device of the result)."""
    draw = (
        generator.device if generator is not None else torch.device(device if device is not None else "cpu")
    )
    out = torch.device(device) if device is not None else draw
    return draw, out


def _rand(n: int, k: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.rand(n, k, generator=generator, device=device, dtype=torch.float64)


def _randn(n: int, k: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.randn(n, k, generator=generator, device=device, dtype=torch.float64)


def _finish(
    x: Tensor, mean: tuple[float, float], second_moment: float, out: torch.device, dtype: torch.dtype
) -> Tensor:
    """Centre by ``mean`` and scale so that E||x||^2 = 2 given the raw centred second moment."""
    m = torch.tensor(mean, dtype=torch.float64, device=x.device)
    x = (x - m) * math.sqrt(2.0 / second_moment)
    return x.to(device=out, dtype=dtype)


def moons(
    n: int,
    *,
    noise: float = 0.1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Two interleaving half circles (scikit-learn's ``make_moons``, drawn with a uniform angle).

    Raw points: with ``t ~ U(0, π)``, the outer moon is ``(cos t, sin t)``, the inner one ``(1 − cos t,
    1/2 − sin t)``, each with probability 1/2, plus ``noise · N(0, I)``. Raw mean ``(1/2, 1/4)``; the centred
    second moment is ``3/4 + [1/2 − 4/π² + (4/π − 1/2)²/4] + 2·noise²`` (within-moon plus between-moon
    variance per axis).

    Args:
        n: Number of points.
        noise: Standard deviation of the isotropic Gaussian noise, in raw (unit-radius) units.
        generator: Optional random generator.
        dtype: Dtype of the result.
        device: Device of the result (default: the generator's device, else CPU).

    Returns:
        Tensor of shape ``(n, 2)`` with zero mean and ``E||x||² = 2`` in distribution.
    """
    _check_args("moons", n, noise)
    draw, out = _devices(generator, device)
    u = _rand(n, 2, generator, draw)
    z = _randn(n, 2, generator, draw)
    t = math.pi * u[:, 0]
    inner = u[:, 1] < 0.5
    x = torch.where(inner, 1.0 - torch.cos(t), torch.cos(t))
    y = torch.where(inner, 0.5 - torch.sin(t), torch.sin(t))
    pts = torch.stack([x, y], dim=1) + noise * z
    var_x = 0.75
    var_y = 0.5 - 4.0 / math.pi**2 + (4.0 / math.pi - 0.5) ** 2 / 4.0
    return _finish(pts, (0.5, 0.25), var_x + var_y + 2.0 * noise**2, out, dtype)


def eight_gaussians(
    n: int,
    *,
    noise: float = 0.125,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Mixture of eight equally weighted isotropic Gaussians on a circle (FFJORD ``8gaussians``).

    Raw points: centre ``(cos(πk/4), sin(πk/4))`` with ``k`` uniform in ``{0..7}``, plus ``noise · N(0, I)``.
    The default ``noise = 0.125`` is FFJORD's ratio (std 0.5 at radius 4). Raw mean 0 by symmetry; centred
    second moment ``1 + 2·noise²``.

    Args:
        n: Number of points.
        noise: Component standard deviation relative to the unit radius.
        generator: Optional random generator.
        dtype: Dtype of the result.
        device: Device of the result (default: the generator's device, else CPU).

    Returns:
        Tensor of shape ``(n, 2)`` with zero mean and ``E||x||² = 2`` in distribution.
    """
    _check_args("eight_gaussians", n, noise)
    draw, out = _devices(generator, device)
    k = torch.randint(0, 8, (n,), generator=generator, device=draw)
    z = _randn(n, 2, generator, draw)
    angle = k.to(torch.float64) * (math.pi / 4.0)
    pts = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1) + noise * z
    return _finish(pts, (0.0, 0.0), 1.0 + 2.0 * noise**2, out, dtype)


def checkerboard(
    n: int,
    *,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Uniform distribution on the 8 "black" unit squares of a 4×4 board on ``[-2, 2]²`` (FFJORD).

    Raw points: ``x₁ ~ U(−2, 2)``; ``x₂`` is uniform on the two squares of column ``⌊x₁⌋`` whose index
    ``⌊x₁⌋ + ⌊x₂⌋`` is even, plus ``noise · N(0, I)``. Both marginals are ``U(−2, 2)``, so the mean is 0 and
    the centred second moment is ``2·(4/3) + 2·noise²``.

    Args:
        n: Number of points.
        noise: Standard deviation of optional Gaussian blur, in raw (unit-square) units.
        generator: Optional random generator.
        dtype: Dtype of the result.
        device: Device of the result (default: the generator's device, else CPU).

    Returns:
        Tensor of shape ``(n, 2)`` with zero mean and ``E||x||² = 2`` (unit variance per axis).
    """
    _check_args("checkerboard", n, noise)
    draw, out = _devices(generator, device)
    u = _rand(n, 3, generator, draw)
    z = _randn(n, 2, generator, draw)
    x1 = 4.0 * u[:, 0] - 2.0
    row_pair = torch.where(u[:, 2] < 0.5, 0.0, -2.0)  # rows [0, 1) or [-2, -1), shifted by the column parity
    x2 = u[:, 1] + row_pair + torch.remainder(torch.floor(x1), 2.0)
    pts = torch.stack([x1, x2], dim=1) + noise * z
    return _finish(pts, (0.0, 0.0), 8.0 / 3.0 + 2.0 * noise**2, out, dtype)


#: Angle range of the Swiss roll, as in scikit-learn's ``make_swiss_roll``: ``t ∈ [3π/2, 9π/2]``.
_ROLL_A = 1.5 * math.pi
_ROLL_B = 4.5 * math.pi


def swiss_roll(
    n: int,
    *,
    noise: float = 0.5,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Two-dimensional Swiss roll (scikit-learn ``make_swiss_roll`` keeping the ``(x, z)`` coordinates).

    Raw points: ``t ~ U(3π/2, 9π/2)``, ``(t cos t, t sin t) + noise · N(0, I)``. Closed forms with
    ``a = 3π/2, b = 9π/2``: ``E[t cos t] = [t sin t + cos t]_a^b/(b − a) = 2``,
    ``E[t sin t] = [sin t − t cos t]_a^b/(b − a) = 2/(3π)``, ``E[t²] = (b³ − a³)/(3(b − a)) = 9.75 π²``.

    Args:
        n: Number of points.
        noise: Standard deviation of the Gaussian noise in raw units (the roll's radius runs 4.7–14.1).
        generator: Optional random generator.
        dtype: Dtype of the result.
        device: Device of the result (default: the generator's device, else CPU).

    Returns:
        Tensor of shape ``(n, 2)`` with zero mean and ``E||x||² = 2`` in distribution.
    """
    _check_args("swiss_roll", n, noise)
    draw, out = _devices(generator, device)
    u = _rand(n, 1, generator, draw)[:, 0]
    z = _randn(n, 2, generator, draw)
    t = _ROLL_A + (_ROLL_B - _ROLL_A) * u
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) + noise * z
    mean = (2.0, 2.0 / (3.0 * math.pi))
    second = (_ROLL_B**3 - _ROLL_A**3) / (3.0 * (_ROLL_B - _ROLL_A)) - mean[0] ** 2 - mean[1] ** 2
    return _finish(pts, mean, second + 2.0 * noise**2, out, dtype)


def pinwheel(
    n: int,
    *,
    noise: float = 0.3,
    tangential_std: float = 0.1,
    n_arms: int = 5,
    rate: float = 0.25,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Pinwheel with ``n_arms`` curved arms (FFJORD ``pinwheel``, after Johnson et al. 2016 SVAE).

    Raw points: ``f = (1 + noise·ξ₁, tangential_std·ξ₂)``, arm ``k`` uniform in ``{0..n_arms−1}``, angle
    ``φ = 2πk/n_arms + rate·exp(f₁)``, point ``R(φ)ᵀ f``. Rotations keep the norm, so the second moment is
    ``E||f||² = 1 + noise² + tangential_std²``; the mean is 0 because the arms are rotated copies by
    ``2π/n_arms`` (``n_arms ≥ 2``).

    Args:
        n: Number of points.
        noise: Radial standard deviation (FFJORD's ``radial_std``, default 0.3).
        tangential_std: Tangential standard deviation (FFJORD default 0.1).
        n_arms: Number of arms (FFJORD default 5).
        rate: How fast the arms curl (FFJORD default 0.25).
        generator: Optional random generator.
        dtype: Dtype of the result.
        device: Device of the result (default: the generator's device, else CPU).

    Returns:
        Tensor of shape ``(n, 2)`` with zero mean and ``E||x||² = 2`` in distribution.
    """
    _check_args("pinwheel", n, noise)
    if isinstance(n_arms, bool) or not isinstance(n_arms, int) or n_arms < 2:
        raise ValueError(f"pinwheel: n_arms must be an int >= 2; got {n_arms!r}")
    if not tangential_std >= 0:
        raise ValueError(f"pinwheel: tangential_std must be >= 0; got {tangential_std!r}")
    draw, out = _devices(generator, device)
    k = torch.randint(0, n_arms, (n,), generator=generator, device=draw)
    z = _randn(n, 2, generator, draw)
    f1 = 1.0 + noise * z[:, 0]
    f2 = tangential_std * z[:, 1]
    phi = k.to(torch.float64) * (2.0 * math.pi / n_arms) + rate * torch.exp(f1)
    c, s = torch.cos(phi), torch.sin(phi)
    # FFJORD: einsum("ti,tij->tj", f, [[c, -s], [s, c]]) = (f1 c + f2 s, -f1 s + f2 c).
    pts = torch.stack([f1 * c + f2 * s, -f1 * s + f2 * c], dim=1)
    return _finish(pts, (0.0, 0.0), 1.0 + noise**2 + tangential_std**2, out, dtype)


_TOYS: dict[str, Callable[..., Tensor]] = {
    "moons": moons,
    "eight_gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "swiss_roll": swiss_roll,
    "pinwheel": pinwheel,
}

#: Names accepted by :func:`toy`.
TOY_NAMES: tuple[str, ...] = tuple(_TOYS)


def toy(name: str, n: int, **kw: object) -> Tensor:
    """Draw ``n`` points from the toy distribution called ``name``.

    Args:
        name: One of :data:`TOY_NAMES` (``"8gaussians"`` is accepted as an alias of ``"eight_gaussians"``).
        n: Number of points.
        **kw: Keyword arguments of the sampler (``noise``, ``generator``, ``dtype``, ``device``, ...).

    Returns:
        Tensor of shape ``(n, 2)``.

    Raises:
        ValueError: If ``name`` is unknown; the message lists the valid names.
    """
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    if key == "8gaussians":
        key = "eight_gaussians"
    if key not in _TOYS:
        raise ValueError(f"unknown toy distribution {name!r}; choose one of {', '.join(TOY_NAMES)}")
    return _TOYS[key](n, **kw)
