"""DPM-Solver-v3 (Zheng, Lu, Bao & Zhu, NeurIPS'23, arXiv:2310.13268): an ODE solver with empirical model statistics.

Written in DPM-Solver notation for a Gaussian-source path (genlab's data coefficient is the signal "α", its noise
coefficient the "σ", λ = log(α/σ); :mod:`genlab.samplers.semilinear`). With y = x/α the probability-flow ODE is
dy/dλ = −σε̂/α. DPM-Solver-v3 splits the noise prediction with three **empirical model statistics (EMS)** l_λ, s_λ,
b_λ ∈ R^D (one value per data dimension):

* ``l`` — the linear part of σε̂ in x: l = argmin_l E‖∇_x(σε̂ − l⊙x)‖²_F, i.e. the diagonal of E[∇_x σε̂] (paper eq. 9;
  estimated here with a Rademacher probe v, E[v⊙(J v)], and a central finite-difference J v, which is exact for a
  diagonal Jacobian). The rest is f = (σε̂ − l⊙x)/α, so dy/dλ = −l⊙y − f.
* ``s, b`` — the best linear prediction of f's λ-derivative along the ODE, f' ≈ s⊙f + b (per-dimension least
  squares over the trajectories, paper eq. 10; f' by central differences along each trajectory).

With L = ∫l, S = ∫s, B = ∫e^{−S}b the function g_λ = e^{S_s−S_λ}f_λ − e^{S_s}(B_λ − B_s) has g' ≈ 0, and the exact
solution from λ_s to λ_t is (paper eq. 12; ``I = ∫e^{L+S}``, ``C = ∫e^{L+S}B``)

    y_t = e^{L_s−L_t}·y_s − e^{−L_t−S_s}(I_t − I_s)·g_s − e^{−L_t}(C_t − C_s − B_s(I_t − I_s))
          − Σ_{n≥1} e^{L_s−L_t}·∫_{λ_s}^{λ_t} e^{(L+S)_λ−(L+S)_s}(λ−λ_s)^n/n! dλ · g^{(n)},

with g^{(n)} from the past g's: the Taylor system through the last n + 1 nodes (multistep predictor), or Newton's
divided differences ("pseudo-order", g^{(i)} ≈ i!·g[λ_0, …, λ_i]). The **corrector** recomputes the step with the new
evaluation at λ_t as one more node (pseudo-order, order p + 1, no extra evaluation) and keeps σε̂ − l⊙x of that
evaluation fixed while the state moves (Alg. 1/2 of the paper, as in the authors' ``dpm_solver_v3.py``). Defaults
follow the authors' CIFAR-10 script (``codebases/score_sde/sample.sh``): order 3, corrector on and not pseudo;
pseudo-order predictor and no lower-order final steps at N ≤ 5, the plain predictor with ``lower_order_final`` above
(their script also turns the corrector off at 9–10 steps; that tuning is not copied).

Reduction checks (tests/samplers/test_dpm_solver_v3.py): with the statistics of an exact Gaussian model (l = σ²/v,
s = 0, b = f', v = α²s² + σ²) g is constant, so one first-order step is the closed-form flow map up to the quadrature
of the integrals; with l = 1, s = b = 0 ("degenerated") the solver is the data-form multistep DPM-Solver++ (Taylor
form, ``solver_type="heun"``).

What is reconstructed / differs: the statistics are computed here from the field itself (``n_samples`` trajectories
of DPM-Solver++(2M) on a λ-uniform grid of ``stat_steps`` steps; the paper uses 1k–4k samples and 1200+ steps on
large models), and they are interpolated linearly in λ (the authors snap the sampling times to the statistics grid).
The integrals are trapezoid sums on the statistics grid refined ``refine`` times (error O((Δλ/refine)²)). Gaussian-
source paths only (no bridges); grids must increase (generation) and keep λ finite.

Cache: statistics are kept per network module in memory (keyed by path, kind, sample shape, λ range and settings) and,
with ``statistics_path=``, in a file (written atomically, reused when its settings match).
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from genlab.interpolants.interpolant import Interpolant
from genlab.models.field import Field
from genlab.samplers.base import CountingField, Sampler, StepInfo
from genlab.samplers.grids import _auto_range
from genlab.samplers.multistep import data_form_table
from genlab.samplers.registry import register_sampler
from genlab.samplers.semilinear import semilinear_grid
from genlab.utils import atomic_write

__all__ = ["EMS", "DPMSolverV3", "clear_statistics_cache", "compute_statistics", "gaussian_statistics"]

_F64 = torch.float64


@dataclass
class EMS:
    """Empirical model statistics on a λ-uniform grid (float64, CPU).

    Attributes:
        lam: ``(K+1,)`` increasing λ (noise → data).
        l: ``(K+1, *shape)`` linear coefficient.
        s: ``(K+1, *shape)`` slope of f' on f.
        b: ``(K+1, *shape)`` intercept of f' on f.
        meta: Settings they were computed with (path, kind, samples, seed, …).
    """

    lam: Tensor
    l: Tensor
    s: Tensor
    b: Tensor
    meta: dict[str, Any] = dc_field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lam = torch.as_tensor(self.lam, dtype=_F64).flatten()
        for name in ("l", "s", "b"):
            v = torch.as_tensor(getattr(self, name), dtype=_F64)
            if v.shape[0] != self.lam.numel():
                raise ValueError(f"EMS.{name} needs one row per λ node ({self.lam.numel()}), got {tuple(v.shape)}")
            setattr(self, name, v)
        if self.lam.numel() < 2 or not bool((self.lam[1:] > self.lam[:-1]).all()):
            raise ValueError("EMS.lam must be an increasing grid of at least 2 λ values")

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-sample shape the statistics describe."""
        return tuple(self.l.shape[1:])

    def degenerated(self) -> EMS:
        """l = 1, s = b = 0: the solver becomes data-form DPM-Solver++ (the authors' ``degenerated=True``)."""
        return EMS(self.lam, torch.ones_like(self.l), torch.zeros_like(self.s), torch.zeros_like(self.b),
                   {**self.meta, "degenerated": True})

    def to_dict(self) -> dict[str, Any]:
        """Tensors and settings, for ``torch.save`` (loadable with ``weights_only=True``)."""
        return {"lam": self.lam, "l": self.l, "s": self.s, "b": self.b, "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EMS:
        """Inverse of :meth:`to_dict`."""
        missing = {"lam", "l", "s", "b"} - set(data)
        if missing:
            raise ValueError(f"EMS file lacks {sorted(missing)}")
        return cls(data["lam"], data["l"], data["s"], data["b"], dict(data.get("meta", {})))


# ---------------------------------------------------------------------------------------------- statistics
def _lam_range(interpolant: Interpolant, t_start: float, t_end: float) -> tuple[float, float]:
    lam = interpolant.lam(torch.tensor([t_start, t_end], dtype=_F64))
    lo, hi = float(lam[0]), float(lam[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or not hi > lo:
        raise ValueError(f"DPM-Solver-v3 needs a finite, increasing log-SNR range; got λ from {lo} to {hi} on "
                         f"t ∈ [{t_start}, {t_end}] (use t strictly inside (0, 1), noise end first)")
    return lo, hi


def compute_statistics(field: Field | CountingField, shape: tuple[int, ...], *, t_start: float, t_end: float,
                       stat_steps: int = 100, n_samples: int = 256, seed: int = 0,
                       dtype: torch.dtype = _F64, device: torch.device | str | None = None) -> EMS:
    """Estimate l, s, b of ``field`` along its own probability-flow trajectories (see the module docstring).

    ``n_samples`` noises (seeded, independent of any user batch) are carried by DPM-Solver++(2M) over a λ-uniform
    grid of ``stat_steps`` steps from ``t_start`` to ``t_end``; at every node the field is evaluated once for the
    trajectory and twice for the finite-difference Jacobian probe (3·(K+1) batched evaluations in all).

    Args:
        field: The field (or a counting wrapper, whose NFE then includes these evaluations).
        shape: Per-sample shape.
        t_start: Noise-side time.
        t_end: Data-side time.
        stat_steps: Steps K of the statistics grid.
        n_samples: Trajectories.
        seed: Seed of their noise and of the Rademacher probes.
        dtype: Dtype of the states fed to the field.
        device: Device of the states.

    Returns:
        :class:`EMS`.
    """
    if isinstance(stat_steps, bool) or not isinstance(stat_steps, int) or stat_steps < 4:
        raise ValueError(f"stat_steps must be an integer >= 4, got {stat_steps!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    counted = field if isinstance(field, CountingField) else CountingField(field)
    interp = counted.interpolant
    if not interp.gaussian_source:
        raise ValueError("DPM-Solver-v3 statistics need a Gaussian-source path")
    lo, hi = _lam_range(interp, t_start, t_end)
    lams = torch.linspace(lo, hi, stat_steps + 1, dtype=_F64)
    times = interp.time_at_lam(lams, t_lo=min(t_start, t_end), t_hi=max(t_start, t_end))
    times[0], times[-1] = t_start, t_end
    tab = semilinear_grid(interp, times)
    table = data_form_table(tab, [1] + [2] * (stat_steps - 1), solver_type="midpoint")
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.randn((n_samples, *shape), generator=gen, dtype=_F64)
    probe = (torch.randint(0, 2, (stat_steps + 1, n_samples, *shape), generator=gen) * 2 - 1).to(_F64)
    dev = torch.device("cpu") if device is None else torch.device(device)
    x = (z * float(tab.noise[0])).to(device=dev, dtype=dtype)
    delta = 6e-6 if dtype == torch.float64 else 5e-3  # ≈ eps^(1/3): central-difference optimum
    ls, fs, hist = [], [], []
    for j in range(stat_steps + 1):
        t = times[j].to(dev)
        pred = counted.evaluate(x, t)
        eps = pred("noise").to(_F64).cpu()
        x1 = pred("x1")
        v = probe[j].to(device=dev, dtype=dtype)
        plus = counted.evaluate(x + delta * v, t)("noise").to(_F64).cpu()
        minus = counted.evaluate(x - delta * v, t)("noise").to(_F64).cpu()
        jv = (plus - minus) / (2 * delta)
        sig, alp = float(tab.noise[j]), float(tab.data[j])
        l_j = sig * (probe[j] * jv).mean(0)  # diag E[∇_x σε̂] (Hutchinson with a Rademacher probe)
        ls.append(l_j)
        fs.append((sig * eps - l_j * x.to(_F64).cpu()) / alp)
        if j < stat_steps:
            hist = [x1, *hist[:1]]
            row = table.weights[j]
            new = x * table.ratio[j]
            for w, p in zip(row, hist):
                new = new + w * p
            x = new
    l = torch.stack(ls)
    f = torch.stack(fs)  # (K+1, n, *shape)
    dl = lams[1] - lams[0]
    fp = torch.empty_like(f)
    fp[1:-1] = (f[2:] - f[:-2]) / (2 * dl)
    fp[0] = (-3 * f[0] + 4 * f[1] - f[2]) / (2 * dl)
    fp[-1] = (3 * f[-1] - 4 * f[-2] + f[-3]) / (2 * dl)
    fm, fpm = f.mean(1), fp.mean(1)
    cov = ((f - fm[:, None]) * (fp - fpm[:, None])).mean(1)
    var = ((f - fm[:, None]) ** 2).mean(1)
    scale = (f**2).mean(1)
    ok = var > 1e-8 * (scale + 1e-300)  # a deterministic f (e.g. a Gaussian model) has no slope: s = 0, b = f'
    s = torch.where(ok, cov / torch.where(ok, var, torch.ones_like(var)), torch.zeros_like(var))
    b = fpm - s * fm
    meta = {"path": repr(interp), "kind": getattr(counted.field, "kind", None), "shape": list(shape),
            "t_start": float(t_start), "t_end": float(t_end), "stat_steps": stat_steps, "n_samples": n_samples,
            "seed": int(seed)}
    return EMS(lams, l, s, b, meta)


def gaussian_statistics(interpolant: Interpolant, mean: Tensor, std: Tensor, *, t_start: float, t_end: float,
                        stat_steps: int = 100) -> EMS:
    """The exact statistics of the Gaussian model x1 ~ N(mean, diag std²) (the reduction test's oracle).

    σε̂ = (σ²/v)(x − α·mean) with v = α²std² + σ², so l = σ²/v, f = −σ²·mean/v is deterministic (s = 0) and
    b = f' = −mean·d(σ²/v)/dλ = 2·mean·e^{2λ}std²·(σ²/v)² (σ²/v = 1/(1 + e^{2λ}std²)).

    Args:
        interpolant: A Gaussian-source path.
        mean: Data mean (per-sample shape).
        std: Data standard deviation (same shape).
        t_start: Noise-side time.
        t_end: Data-side time.
        stat_steps: Steps of the λ grid.

    Returns:
        :class:`EMS`.
    """
    lo, hi = _lam_range(interpolant, t_start, t_end)
    lams = torch.linspace(lo, hi, stat_steps + 1, dtype=_F64)
    m, sd = torch.as_tensor(mean, dtype=_F64), torch.as_tensor(std, dtype=_F64)
    e2 = torch.exp(2 * lams).reshape(-1, *([1] * m.ndim))
    r = 1.0 / (1.0 + e2 * sd**2)  # σ²/v
    l = r.expand(-1, *m.shape).clone()
    b = m * 2 * e2 * sd**2 * r**2  # −mean·d(σ²/v)/dλ, d(σ²/v)/dλ = −2e^{2λ}std²(σ²/v)²
    return EMS(lams, l, torch.zeros_like(l), b.expand_as(l).clone(), {"gaussian": True})


#: Per-network statistics cache: module → {settings key → EMS}.
_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple, EMS]] = weakref.WeakKeyDictionary()


def clear_statistics_cache() -> None:
    """Forget every cached :class:`EMS` (in memory; files are kept)."""
    _CACHE.clear()


# ---------------------------------------------------------------------------------------------- the solver
class _Integrals:
    """Cumulative L, S, I, B, C (paper eq. 12) on the statistics grid refined and merged with the sampling λ's."""

    def __init__(self, ems: EMS, sample_lams: list[float], refine: int) -> None:
        base = ems.lam
        fine = torch.linspace(0, 1, refine + 1, dtype=_F64)[:-1]
        nodes = (base[:-1, None] + (base[1:] - base[:-1])[:, None] * fine).flatten()
        lam = torch.unique(torch.cat([nodes, base[-1:], torch.tensor(sample_lams, dtype=_F64)]))
        self.lam = lam
        self.l, self.s, self.b = (self._interp(base, v, lam) for v in (ems.l, ems.s, ems.b))
        self.L = self._cum(self.l)
        self.S = self._cum(self.s)
        self.I = self._cum(torch.exp(self.L + self.S))
        self.B = self._cum(torch.exp(-self.S) * self.b)
        self.C = self._cum(torch.exp(self.L + self.S) * self.B)
        self._coef: dict[tuple[int, int, int], Tensor] = {}

    @staticmethod
    def _interp(xp: Tensor, fp: Tensor, x: Tensor) -> Tensor:
        idx = torch.clamp(torch.searchsorted(xp, x, right=True) - 1, 0, xp.numel() - 2)
        w = ((x - xp[idx]) / (xp[idx + 1] - xp[idx])).reshape(-1, *([1] * (fp.ndim - 1)))
        return fp[idx] * (1 - w) + fp[idx + 1] * w

    def _cum(self, v: Tensor) -> Tensor:
        dx = (self.lam[1:] - self.lam[:-1]).reshape(-1, *([1] * (v.ndim - 1)))
        out = torch.cumsum(0.5 * dx * (v[1:] + v[:-1]), 0)
        return torch.cat([torch.zeros_like(v[:1]), out])

    def index(self, lam: float) -> int:
        i = int(torch.argmin((self.lam - lam).abs()))
        if abs(float(self.lam[i]) - lam) > 1e-12 * max(1.0, abs(lam)):
            raise RuntimeError("sampling λ missing from the merged grid")
        return i

    def high_order(self, i_s: int, i_t: int, n: int) -> Tensor:
        """∫_{λ_s}^{λ_t} e^{(L+S)−(L+S)_s}(λ−λ_s)^n/n! dλ (trapezoid on the merged grid)."""
        key = (i_s, i_t, n)
        if key not in self._coef:
            sl = slice(i_s, i_t + 1)
            a = self.L[sl] + self.S[sl] - self.L[i_s] - self.S[i_s]
            x = self.lam[sl]
            w = ((x - x[0]) ** n / math.factorial(n)).reshape(-1, *([1] * (a.ndim - 1)))
            vals = torch.exp(a) * w
            dx = (x[1:] - x[:-1]).reshape(-1, *([1] * (a.ndim - 1)))
            self._coef[key] = (0.5 * dx * (vals[1:] + vals[:-1])).sum(0)
        return self._coef[key]


def _derivatives(lams: list[float], gs: list[Tensor], pseudo: bool) -> list[Tensor]:
    """g^{(1)}, …, g^{(n)} at lams[0] from n + 1 nodes: Taylor system, or divided differences (pseudo-order)."""
    n = len(lams) - 1
    if pseudo:
        table = [list(gs)]
        for i in range(1, n + 1):
            prev = table[-1]
            table.append([(prev[j] - prev[j + 1]) / (lams[j] - lams[i + j]) for j in range(n - i + 1)])
        return [table[i][0] * math.factorial(i) for i in range(1, n + 1)]
    mat = torch.tensor([[(lams[j] - lams[0]) ** i for i in range(1, n + 1)] for j in range(1, n + 1)], dtype=_F64)
    inv = torch.linalg.inv(mat)  # scalar weights: g^(i)/i! = Σ_j inv[i, j]·(g_j − g_0)
    out = []
    for i in range(n):
        acc = torch.zeros_like(gs[0])
        for j in range(n):
            acc = acc + float(inv[i, j]) * (gs[j + 1] - gs[0])
        out.append(acc * math.factorial(i + 1))
    return out


@register_sampler
class DPMSolverV3(Sampler):
    """DPM-Solver-v3 (Zheng et al. NeurIPS'23): multistep predictor + pseudo-order corrector with empirical model
    statistics, one evaluation per step after the statistics (see the module docstring).

    The statistics are computed from the field on first use (``3·(stat_steps + 1)`` batched evaluations of
    ``n_samples`` states, counted in that call's NFE and reported in ``aux["statistics_nfe"]``) and cached per
    network; pass ``statistics=`` to use given ones (e.g. :func:`gaussian_statistics`).

    Args:
        order: Predictor order (1 to 3; the authors' default 3).
        predictor_pseudo: Pseudo-order (divided differences) for the predictor; ``None`` (default): at N ≤ 5 steps.
        corrector: Use the corrector (default ``True``).
        corrector_pseudo: ``True``: pseudo-order corrector of order p + 1; ``False`` (default, the authors' CIFAR-10
            setting): corrector of order p (so none after a first-order step).
        lower_order_final: At most N − k + 1 nodes on step k (1-based); ``None`` (default): only above 5 steps.
        statistics: Precomputed :class:`EMS` (skips the estimation).
        statistics_path: File to load the statistics from (if it holds matching ones) or save them to.
        stat_steps: Steps of the statistics λ grid.
        n_samples: Trajectories for the statistics.
        seed: Seed of the statistics' noise.
        refine: Refinement of the statistics grid for the quadrature.
    """

    name: ClassVar[str] = "dpm_solver_v3"
    requires: ClassVar[frozenset[str]] = frozenset({"semilinear", "gaussian_source"})
    consumes: ClassVar[tuple[str, ...] | None] = ("noise",)
    default_grid: ClassVar[str] = "log_snr"

    def __init__(self, *, order: int = 3, predictor_pseudo: bool | None = None, corrector: bool = True,
                 corrector_pseudo: bool = False, lower_order_final: bool | None = None, statistics: EMS | None = None,
                 statistics_path: str | Path | None = None, stat_steps: int = 100, n_samples: int = 128,
                 seed: int = 0, refine: int = 8) -> None:
        if isinstance(order, bool) or order not in (1, 2, 3):
            raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
        for name, val in (("predictor_pseudo", predictor_pseudo), ("corrector", corrector),
                          ("corrector_pseudo", corrector_pseudo), ("lower_order_final", lower_order_final)):
            if not isinstance(val, bool) and not (val is None and name in ("predictor_pseudo", "lower_order_final")):
                raise TypeError(f"{name} must be True or False{' or None (auto)' if 'pseudo' in name or 'final' in name else ''}, "
                                f"got {val!r}")
        if statistics is not None and not isinstance(statistics, EMS):
            raise TypeError(f"statistics must be an EMS (see compute_statistics), got {type(statistics).__name__}")
        if isinstance(stat_steps, bool) or not isinstance(stat_steps, int) or stat_steps < 4:
            raise ValueError(f"stat_steps must be an integer >= 4, got {stat_steps!r}")
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
            raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
        if isinstance(refine, bool) or not isinstance(refine, int) or refine < 1:
            raise ValueError(f"refine must be a positive integer, got {refine!r}")
        self.order, self.predictor_pseudo, self.corrector = int(order), predictor_pseudo, corrector
        self.corrector_pseudo, self.lower_order_final = corrector_pseudo, lower_order_final
        self.statistics = statistics
        self.statistics_path = None if statistics_path is None else Path(statistics_path)
        self.stat_steps, self.n_samples, self.seed, self.refine = stat_steps, n_samples, int(seed), refine

    def expected_nfe(self, steps: int) -> int | None:
        # with given statistics one evaluation per step; otherwise the first call also estimates them (cached)
        return steps if self.statistics is not None else None

    @property
    def reports_steps(self) -> bool:
        return True

    # ------------------------------------------------------------------ statistics
    def _statistics(self, field: CountingField, x: Tensor, lam_lo: float, lam_hi: float) -> EMS:
        interp = field.interpolant
        if self.statistics is not None:
            ems = self.statistics
        else:
            # the recommended grid's range (so every grid inside it shares one set), widened to this grid's
            d_lo, d_hi = _auto_range(interp, None, None)
            lam_d = interp.lam(torch.tensor([d_lo, d_hi], dtype=_F64))
            t_lo = d_lo if float(lam_d[0]) <= lam_lo else float(interp.time_at_lam(torch.tensor([lam_lo], dtype=_F64)))
            t_hi = d_hi if float(lam_d[1]) >= lam_hi else float(interp.time_at_lam(torch.tensor([lam_hi], dtype=_F64)))
            shape = tuple(x.shape[1:])
            key = (repr(interp), field.field.kind, shape, round(t_lo, 12), round(t_hi, 12), self.stat_steps,
                   self.n_samples, self.seed, x.dtype)
            net = field.field.net
            per_net = _CACHE.setdefault(net, {})
            ems = per_net.get(key)
            if ems is None and self.statistics_path is not None and self.statistics_path.exists():
                loaded = EMS.from_dict(torch.load(self.statistics_path, weights_only=True))
                m = loaded.meta
                if (m.get("path"), tuple(m.get("shape", ())), m.get("stat_steps"), m.get("n_samples"),
                        m.get("seed")) == (repr(interp), shape, self.stat_steps, self.n_samples, self.seed) and \
                        float(loaded.lam[0]) <= lam_lo + 1e-9 and float(loaded.lam[-1]) >= lam_hi - 1e-9:
                    ems = loaded
            if ems is None:
                ems = compute_statistics(field, shape, t_start=t_lo, t_end=t_hi, stat_steps=self.stat_steps,
                                         n_samples=self.n_samples, seed=self.seed, dtype=x.dtype, device=x.device)
                if self.statistics_path is not None:
                    with atomic_write(self.statistics_path) as fh:
                        torch.save(ems.to_dict(), fh)
            per_net[key] = ems
        if ems.shape != tuple(x.shape[1:]):
            raise ValueError(f"the statistics describe samples of shape {ems.shape}, x_init has {tuple(x.shape[1:])}")
        if float(ems.lam[0]) > lam_lo + 1e-9 or float(ems.lam[-1]) < lam_hi - 1e-9:
            raise ValueError(f"the grid spans λ ∈ [{lam_lo:.4g}, {lam_hi:.4g}] but the statistics only "
                             f"[{float(ems.lam[0]):.4g}, {float(ems.lam[-1]):.4g}]; compute them over the grid's range")
        return ems

    def resolved(self, n: int) -> tuple[bool, bool]:
        """``(predictor_pseudo, lower_order_final)`` for a grid of ``n`` steps (``None`` = the authors' choice:
        pseudo-order predictor and no lower-order final steps at N ≤ 5, the opposite above)."""
        pp = (n <= 5) if self.predictor_pseudo is None else self.predictor_pseudo
        lof = (n > 5) if self.lower_order_final is None else self.lower_order_final
        return pp, lof

    def _orders(self, n: int) -> list[int]:
        lof = self.resolved(n)[1]
        orders = []
        for step in range(1, n + 1):
            p = min(step, self.order)
            if lof:
                p = min(p, n + 1 - step)
            orders.append(p)
        return orders

    # ------------------------------------------------------------------ the loop
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
        interp = field.interpolant
        tab = semilinear_grid(interp, grid)
        tab.check_steps_from(self.name)
        lam = [float(v) for v in tab.lam]
        if not all(math.isfinite(v) for v in lam):
            raise ValueError(f"sampler {self.name!r} needs a finite log-SNR at every grid time (got λ from {lam[0]} "
                             f"to {lam[-1]}); end the grid strictly inside (0, 1), e.g. grids.log_snr's default ends")
        if not all(b > a for a, b in itertools.pairwise(lam)):
            raise ValueError(f"sampler {self.name!r} integrates from noise to data: the grid's log-SNR must increase")
        nfe0 = field.nfe
        ems = self._statistics(field, x, lam[0], lam[-1])
        stats_nfe = field.nfe - nfe0
        q = _Integrals(ems, lam, self.refine)
        idx = [q.index(v) for v in lam]
        dt = x.dtype
        dev = x.device
        sig = [float(v) for v in tab.noise]
        alp = [float(v) for v in tab.data]

        def at(tensor: Tensor, i: int) -> Tensor:
            return tensor[i].to(device=dev, dtype=dt)

        def g_of(f_i: Tensor, i_anchor: int, i_node: int) -> Tensor:
            return torch.exp(at(q.S, i_anchor) - at(q.S, i_node)) * f_i - torch.exp(at(q.S, i_anchor)) * (
                at(q.B, i_node) - at(q.B, i_anchor))

        def update(nodes: list[int], xs: list[Tensor], fs: list[Tensor], k_t: int, order: int, pseudo: bool) -> Tensor:
            """State at grid index ``k_t`` from the anchor nodes[0] with g at nodes[0 … order−1]."""
            k_s = nodes[0]
            i_s, i_t = idx[k_s], idx[k_t]
            gs = [g_of(fs[j], i_s, idx[k]) for j, k in enumerate(nodes[:order])]
            y_s = xs[0] / alp[k_s]
            e_l = torch.exp(at(q.L, i_s) - at(q.L, i_t))
            y_t = (e_l * y_s
                   - torch.exp(-at(q.L, i_t) - at(q.S, i_s)) * (at(q.I, i_t) - at(q.I, i_s)) * gs[0]
                   - torch.exp(-at(q.L, i_t)) * (at(q.C, i_t) - at(q.C, i_s) - at(q.B, i_s) * (at(q.I, i_t)
                                                                                            - at(q.I, i_s))))
            if order > 1:
                derivs = _derivatives([lam[k] for k in nodes[:order]], gs, pseudo)
                for n, gd in enumerate(derivs, start=1):
                    y_t = y_t - e_l * q.high_order(i_s, i_t, n).to(device=dev, dtype=dt) * gd
            return alp[k_t] * y_t

        n_steps = grid.numel() - 1
        orders = self._orders(n_steps)
        p_pseudo = self.resolved(n_steps)[0]
        xs_hist: list[Tensor] = []  # states at the grid nodes (newest last)
        f_hist: list[Tensor] = []
        p_prev = 0
        for k in range(n_steps):
            pred = field.evaluate(x, grid[k], cond)
            eps = pred("noise")
            l_k = at(q.l, idx[k])
            f_k = (sig[k] * eps - l_k * x) / alp[k]
            xs_hist.append(x)
            f_hist.append(f_k)
            c_order = p_prev + (1 if self.corrector_pseudo else 0)
            if self.corrector and k > 0 and c_order > 1:
                nodes = [k - 1, k] + [k - 1 - j for j in range(1, c_order - 1)]
                xs = [xs_hist[i] for i in nodes]
                fs = [f_hist[i] for i in nodes]
                x = update(nodes, xs, fs, k, c_order, self.corrector_pseudo)
                xs_hist[-1] = x  # f_k (i.e. σε̂ − l·x of this evaluation) is kept while the state moves
            p = orders[k]
            nodes = [k - j for j in range(p)]
            x = update(nodes, [xs_hist[i] for i in nodes], [f_hist[i] for i in nodes], k + 1, p, p_pseudo)
            p_prev = p
            x = self._report(k, grid, x, callback, trajectory, x1_hat=pred("x1"))
        return x, {"statistics_nfe": stats_nfe, "orders": orders}
