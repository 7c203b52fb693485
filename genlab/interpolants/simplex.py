"""Paths on the simplex Δ^K and their two-marginal schedules (Albergo, Boffi, Lindsey & Vanden-Eijnden, ICLR'24).

Reference: "Multimarginal generative modeling with stochastic interpolants", arXiv:2310.03695 (ref. notes
``reference/interpolants.md`` §4). A path ``t ↦ a(t) ∈ Δ^K`` from vertex e_i to vertex e_j carries the transport
velocity ``b = Σ_k ȧ_k g_k(a(t), x)`` of a multimarginal model (:mod:`genlab.interpolants.multimarginal`).

What this module provides:

* :func:`check_simplex` — validation of simplex points;
* :class:`SimplexPath` and the paths :class:`EdgePath`, :class:`PolylinePath`, :class:`GammaPath` (the γ-smoothed
  edge of ref. §4, the paper's "two-marginal with smoothing");
* :class:`SimplexSchedule` — a path seen as a two-marginal path, α = a_i, β = a_j, γ = a_0, exact while the path
  stays on the face spanned by {0, i, j}; off that face it reports ``describes_path = False`` and refuses every
  coefficient-based method of the interpolant in one place (:meth:`SimplexSchedule.require_coefficients`).

Reconstructed, not read in the paper: the path-optimisation parametrisation of ref. §4 [mem] is not implemented.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from genlab.interpolants.gammas import Gamma, GammaValues, ZeroGamma, make_gamma
from genlab.interpolants.schedules import Coeffs, Schedule

__all__ = [
    "EdgePath",
    "GammaPath",
    "PolylinePath",
    "SimplexPath",
    "SimplexSchedule",
    "check_simplex",
]


# ---------------------------------------------------------------------------------------------- validation helpers
def _check_K(K: object) -> int:
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise ValueError(f"K must be an int >= 1 (the simplex Δ^K joins K + 1 marginals); got {K!r}")
    return K


def _check_vertex(name: str, v: object, K: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= K:
        raise ValueError(f"{name} must be a vertex index in 0..K={K}; got {v!r}")
    return v


def _tol(dtype: torch.dtype) -> float:
    """Tolerance for simplex membership in ``dtype`` (64 ulps of 1)."""
    return 64 * torch.finfo(dtype).eps


def check_simplex(a: Tensor, K: int, *, name: str = "a", batch: int | None = None) -> Tensor:
    """Check that ``a`` holds points of Δ^K row-wise: shape ``(B, K + 1)``, entries ≥ 0, rows summing to 1.

    Args:
        a: Candidate simplex coordinates.
        K: Simplex dimension (K + 1 coordinates).
        name: Argument name for error messages.
        batch: Required batch size, if any.

    Returns:
        ``a`` unchanged.

    Raises:
        TypeError: ``a`` is not a floating-point tensor.
        ValueError: wrong shape, negative entries, or rows not summing to 1.
    """
    if not isinstance(a, Tensor) or not a.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape (B, K+1)=(B, {K + 1}); got {type(a).__name__}")
    if a.ndim != 2 or a.shape[1] != K + 1 or (batch is not None and a.shape[0] != batch):
        b = "B" if batch is None else str(batch)
        raise ValueError(
            f"{name} must have shape ({b}, K+1)=({b}, {K + 1}) (one simplex point per sample, K={K}); "
            f"got {tuple(a.shape)}"
        )
    tol = _tol(a.dtype)
    if bool((a < -tol).any()):
        raise ValueError(f"{name} has negative entries (min {float(a.min()):.3g}); simplex points need a_k >= 0")
    if not bool(torch.isfinite(a).all()):
        raise ValueError(f"{name} contains NaN/inf; simplex points must be finite")
    s = a.sum(1)
    if bool(((s - 1).abs() > tol * (K + 1)).any()):
        worst = float((s - 1).abs().max())
        raise ValueError(
            f"the rows of {name} must sum to 1 (points of the simplex Δ^K); largest deviation {worst:.3g}. "
            "Normalise with a / a.sum(1, keepdim=True)"
        )
    return a


def _as_path_time(t: Tensor | float | Sequence[float]) -> Tensor:
    if not isinstance(t, Tensor):
        t = torch.as_tensor(t, dtype=torch.float64)
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()) or bool(((t < 0) | (t > 1)).any()):
        raise ValueError(f"path time t must lie in [0, 1]; got values in [{float(t.min()):.4g}, {float(t.max()):.4g}]")
    return t


# ---------------------------------------------------------------------------------------------- simplex paths
class SimplexPath(ABC):
    """A path ``t ↦ a(t) ∈ Δ^K`` for ``t ∈ [0, 1]``, with its derivative ``ȧ(t)`` (Σ_k ȧ_k = 0).

    Calling the path returns ``(a, a_dot)`` with shape ``(*t.shape, K + 1)`` in t's floating dtype (float64 for a
    float or an integer tensor). A path used for transport starts and ends at vertices; :attr:`start` and
    :attr:`end` give them (``None`` when an end is not a vertex).

    Args:
        K: Simplex dimension.
    """

    def __init__(self, K: int) -> None:
        self.K = _check_K(K)

    @abstractmethod
    def evaluate(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(a(t), ȧ(t))`` for a validated floating tensor ``t`` (any shape)."""

    @property
    @abstractmethod
    def support(self) -> frozenset[int]:
        """Vertices whose weight is non-zero somewhere on the path."""

    def __call__(self, t: Tensor | float | Sequence[float]) -> tuple[Tensor, Tensor]:
        """Evaluate ``(a(t), ȧ(t))``.

        Args:
            t: Times in [0, 1] (float, sequence or tensor of any shape).

        Returns:
            ``(a, a_dot)``, each of shape ``(*t.shape, K + 1)``.
        """
        return self.evaluate(_as_path_time(t))

    def _vertex_at(self, t: float) -> int | None:
        a, _ = self(torch.tensor([t], dtype=torch.float64))
        a = a[0]
        k = int(a.argmax())
        off = torch.cat([a[:k], a[k + 1:]])
        if abs(float(a[k]) - 1) <= 1e-12 and bool((off.abs() <= 1e-12).all()):
            return k
        return None

    @property
    def start(self) -> int | None:
        """Vertex index of a(0), or ``None`` if a(0) is not a vertex."""
        return self._vertex_at(0.0)

    @property
    def end(self) -> int | None:
        """Vertex index of a(1), or ``None`` if a(1) is not a vertex."""
        return self._vertex_at(1.0)


def _unit(k: int, K: int, like: Tensor) -> Tensor:
    e = torch.zeros(K + 1, dtype=like.dtype, device=like.device)
    e[k] = 1
    return e


class EdgePath(SimplexPath):
    """The edge ``a(t) = (1 − t)·e_i + t·e_j`` (ȧ = e_j − e_i; transport velocity b = g_j − g_i).

    With ``i = 0`` this is a one-sided (rectified-flow-like) path from the Gaussian to ρ_j; between two data vertices
    it is the noise-free two-sided path x_t = (1 − t)x_i + t x_j.

    Args:
        i: Start vertex.
        j: End vertex (≠ i).
        K: Simplex dimension.
    """

    def __init__(self, i: int, j: int, K: int) -> None:
        super().__init__(K)
        self.i = _check_vertex("i", i, self.K)
        self.j = _check_vertex("j", j, self.K)
        if i == j:
            raise ValueError(f"EdgePath needs two distinct vertices; got i = j = {i}")

    def evaluate(self, t: Tensor) -> tuple[Tensor, Tensor]:
        ei, ej = _unit(self.i, self.K, t), _unit(self.j, self.K, t)
        tt = t.unsqueeze(-1)
        a = (1 - tt) * ei + tt * ej
        a_dot = (ej - ei).expand_as(a).clone()
        return a, a_dot

    @property
    def support(self) -> frozenset[int]:
        return frozenset({self.i, self.j})

    def __repr__(self) -> str:
        return f"EdgePath({self.i}, {self.j}, K={self.K})"


class PolylinePath(SimplexPath):
    """Piecewise-linear path through simplex points ``p_0, …, p_m``.

    Points are vertex indices (``int``), ``"barycentre"`` (all weights 1/(K+1)), or explicit weight vectors of length
    K + 1. ``timing="length"`` (default) gives every segment a time span proportional to its Euclidean length;
    ``timing="uniform"`` gives every segment the same span 1/m (:attr:`knots` holds the segment boundaries).

    ``easing`` sets the speed within a segment (the geometric path is the same polyline either way):

    * ``"linear"`` (default): a is affine in t on each segment, so with ``timing="length"`` the speed |ȧ| is
      constant — the cheapest time parametrisation of the polyline for the transport cost ∫E|b|²dt. ȧ jumps at
      the interior knots (the right segment's ȧ is returned there, the left one at t = 1), so the path is only
      piecewise C¹ and a fixed-step ODE solver drops to first order at each knot (the exact flow is still
      well defined).
    * ``"cosine"``: within each segment a moves by φ(w) = (1 − cos πw)/2 of the segment (w the local time), so
      ȧ = 0 at every knot and the path is C¹; ODE solvers keep their order, at the price of a transport cost
      π²/8 ≈ 1.23 times that of the constant-speed polyline.

    Example: ``PolylinePath([1, "barycentre", 2], K=2)`` goes from ρ_1 through the barycentre to ρ_2.

    Args:
        points: At least two points; consecutive points must differ.
        K: Simplex dimension.
        timing: ``"length"`` or ``"uniform"``.
        easing: ``"linear"`` or ``"cosine"``.
    """

    def __init__(self, points: Sequence[int | str | Sequence[float] | Tensor], K: int, *,
                 timing: str = "length", easing: str = "linear") -> None:
        super().__init__(K)
        if timing not in ("length", "uniform"):
            raise ValueError(f"timing must be 'length' or 'uniform'; got {timing!r}")
        if easing not in ("linear", "cosine"):
            raise ValueError(f"easing must be 'linear' or 'cosine'; got {easing!r}")
        self.easing = easing
        if isinstance(points, (str, Tensor)) or not isinstance(points, Sequence) or len(points) < 2:
            raise ValueError("points must be a list of at least two simplex points (vertex ints, 'barycentre', or "
                             "weight vectors of length K+1)")
        rows = [self._point(p, n) for n, p in enumerate(points)]
        pts = torch.stack(rows)
        seg = (pts[1:] - pts[:-1]).norm(dim=1)
        if bool((seg <= 1e-12).any()):
            n = int(torch.nonzero(seg <= 1e-12)[0])
            raise ValueError(f"points {n} and {n + 1} coincide; consecutive points of a polyline must differ")
        spans = seg / seg.sum() if timing == "length" else torch.full_like(seg, 1.0 / len(seg))
        knots = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(spans, 0)])
        knots[-1] = 1.0
        self.points, self.knots, self.timing = pts, knots, timing

    def _point(self, p: int | str | Sequence[float] | Tensor, n: int) -> Tensor:
        K = self.K
        if isinstance(p, str):
            if p not in ("barycentre", "barycenter"):
                raise ValueError(f"point {n}: unknown name {p!r}; use 'barycentre', a vertex int or a weight vector")
            return torch.full((K + 1,), 1.0 / (K + 1), dtype=torch.float64)
        if isinstance(p, int) and not isinstance(p, bool):
            return _unit(_check_vertex(f"point {n}", p, K), K, torch.empty(0, dtype=torch.float64))
        try:
            v = torch.as_tensor(p, dtype=torch.float64).detach().cpu()
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"point {n} must be a vertex int, 'barycentre' or a weight vector; got {p!r}") from None
        if v.ndim != 1 or v.shape[0] != K + 1:
            raise ValueError(f"point {n} must have K+1={K + 1} weights; got shape {tuple(v.shape)}")
        check_simplex(v[None], K, name=f"point {n}")
        return v.clamp_min(0) / v.clamp_min(0).sum()

    def evaluate(self, t: Tensor) -> tuple[Tensor, Tensor]:
        pts = self.points.to(device=t.device, dtype=t.dtype)
        knots = self.knots.to(device=t.device, dtype=t.dtype)
        m = pts.shape[0] - 1
        tf = t.reshape(-1)
        seg = (torch.searchsorted(knots, tf.contiguous(), right=True) - 1).clamp(0, m - 1)
        lo, hi = knots[seg], knots[seg + 1]
        w = ((tf - lo) / (hi - lo)).clamp(0, 1).unsqueeze(-1)
        if self.easing == "cosine":
            phi, d_phi = (1 - torch.cos(math.pi * w)) / 2, (math.pi / 2) * torch.sin(math.pi * w)
        else:
            phi, d_phi = w, torch.ones_like(w)
        p_lo, p_hi = pts[seg], pts[seg + 1]
        a = (1 - phi) * p_lo + phi * p_hi  # exact at both knots
        a_dot = d_phi * (p_hi - p_lo) / (hi - lo).unsqueeze(-1)
        shape = (*t.shape, self.K + 1)
        return a.reshape(shape), a_dot.reshape(shape)

    @property
    def support(self) -> frozenset[int]:
        return frozenset(int(k) for k in torch.nonzero((self.points > 0).any(0)).flatten())

    def __repr__(self) -> str:
        pts = [[round(float(v), 4) for v in p] for p in self.points]
        return f"PolylinePath({pts}, K={self.K}, timing={self.timing!r}, easing={self.easing!r})"


class GammaPath(SimplexPath):
    """Edge e_i → e_j smoothed through the Gaussian vertex: ``a(t) = γ(t)e_0 + (1−t)(1−γ(t))e_i + t(1−γ(t))e_j``.

    Ref. §4: this is the two-marginal stochastic interpolant with (α, β, γ) = ((1−t)(1−γ), t(1−γ), γ) — the
    paper's "two-marginal with smoothing" — learned by the multimarginal model, so the restricted interpolant
    supports the score and SDE samplers on it. Needs 0 ≤ γ ≤ 1.

    Deviation from the brief's suggestion of γ = ``brownian``: the default is ``bsquared`` (γ = a·t(1−t)), which is
    smooth. With γ = √(t(1−t)) the path itself is not C¹ at t ∈ {0, 1} (ȧ_0, ȧ_i are infinite there, and the
    transported marginal genuinely moves with infinite speed), so velocities at the two endpoints are infinite;
    it is accepted, ȧ is returned as ±inf there, and conversions at those times raise.

    Args:
        i: Start vertex (1..K).
        j: End vertex (1..K, ≠ i).
        K: Simplex dimension.
        gamma: A γ of the family (``bsquared``, ``brownian``, ``a-brownian``, ``sinesquared``) or a :class:`Gamma`.
        a: Scale of γ.
    """

    def __init__(self, i: int, j: int, K: int, *, gamma: str | Gamma = "bsquared", a: float = 1.0) -> None:
        super().__init__(K)
        self.i = _check_vertex("i", i, self.K)
        self.j = _check_vertex("j", j, self.K)
        if i == 0 or j == 0 or i == j:
            raise ValueError(
                f"GammaPath needs two distinct data vertices i, j in 1..K (vertex 0 carries γ); got i={i}, j={j}"
            )
        self.gamma_fn = make_gamma(gamma, a=a)
        if self.gamma_fn.is_zero:
            raise ValueError("GammaPath with gamma='zero' is EdgePath(i, j, K); use that")
        grid = torch.linspace(0, 1, 1001, dtype=torch.float64)
        if float(self.gamma_fn(grid).gamma.max()) > 1:
            raise ValueError(f"GammaPath needs gamma(t) <= 1 on [0, 1]; {self.gamma_fn!r} exceeds 1 (lower a)")

    def evaluate(self, t: Tensor) -> tuple[Tensor, Tensor]:
        gv: GammaValues = self.gamma_fn(t)
        zero = torch.zeros_like(t)
        g = torch.where((t == 0) | (t == 1), zero, gv.gamma)  # exact vertices (sin²(π) is 1.5e-32, not 0)
        dg = gv.d_gamma
        # t·γ̇ → 0 as t → 0 and (1−t)·γ̇ → 0 as t → 1 for every γ of the family (γ̇ = O(t^{-1/2}))
        t_dg = torch.where(t == 0, zero, t * dg)
        s_dg = torch.where(t == 1, zero, (1 - t) * dg)
        a = torch.zeros(*t.shape, self.K + 1, dtype=t.dtype, device=t.device)
        a_dot = torch.zeros_like(a)
        a[..., 0], a_dot[..., 0] = g, dg
        a[..., self.i], a_dot[..., self.i] = (1 - t) * (1 - g), -(1 - g) - s_dg
        a[..., self.j], a_dot[..., self.j] = t * (1 - g), (1 - g) - t_dg
        return a, a_dot

    @property
    def support(self) -> frozenset[int]:
        return frozenset({0, self.i, self.j})

    def __repr__(self) -> str:
        return f"GammaPath({self.i}, {self.j}, K={self.K}, gamma={self.gamma_fn!r})"


# ---------------------------------------------------------------------------------------------- restricted schedule
class _SimplexGamma(Gamma):
    """γ(t) = a_0(t): the Gaussian vertex's weight along a path (for start vertex ≠ 0)."""

    name = "simplex"

    def __init__(self, path: SimplexPath) -> None:
        self.path = path

    def __call__(self, t: Tensor) -> GammaValues:
        a, a_dot = self.path(t)
        return GammaValues(a[..., 0], a_dot[..., 0], a[..., 0] * a_dot[..., 0])

    def __repr__(self) -> str:
        return f"_SimplexGamma({self.path!r})"


class SimplexSchedule(Schedule):
    """Coefficients of a simplex path seen as a two-marginal path: α = a_i, β = a_j, γ = a_0.

    i = ``path.start``, j = ``path.end``. For ``i = 0`` the Gaussian vertex is the source (α = a_0, β = a_j, γ ≡ 0,
    a one-sided path). The description is exact only while the path stays on the face spanned by {0, i, j}
    ({0, j} when i = 0); otherwise :attr:`describes_path` is ``False`` and :meth:`coeffs` and
    :meth:`require_coefficients` raise, and with them every coefficient-based method of the interpolant
    (``semilinear``, ``implicit_step``, ``markov_omega``, ``sample``) — only ODE/SDE samplers, which use
    ``RestrictedMultimarginal.convert``, apply.

    Args:
        path: A path from vertex i to vertex j ≠ i.
    """

    def __init__(self, path: SimplexPath) -> None:
        if not isinstance(path, SimplexPath):
            raise TypeError(f"path must be a SimplexPath, got {type(path).__name__}")
        i, j = path.start, path.end
        if i is None or j is None or i == j:
            raise ValueError(
                f"{path!r} must start and end at two distinct vertices (got start={i}, end={j}) to transport one "
                "marginal to another"
            )
        self.path, self.i, self.j = path, i, j
        face = {0, j} if i == 0 else {0, i, j}
        self.on_face = j != 0 and path.support <= face
        self.gamma_fn = _SimplexGamma(path) if (i != 0 and 0 in path.support) else ZeroGamma()

    def _off_face_reason(self) -> str:
        if self.j == 0:
            return (f"{self.path!r} ends at the Gaussian vertex 0; genlab's (α, β, γ) schedules keep the Gaussian in "
                    "the source or noise slot")
        face = sorted({0, self.j} if self.i == 0 else {0, self.i, self.j})
        return (f"{self.path!r} leaves the face spanned by vertices {face} (it touches {sorted(self.path.support)}), "
                "so no (α, β, γ) schedule describes it")

    @property
    def describes_path(self) -> bool:
        """Whether (α, β, γ) describe the path: it stays on the face spanned by {0, i, j}."""
        return self.on_face

    def require_coefficients(self, what: str) -> None:
        """Refuse a coefficient-based method off the {0, i, j} face (see :meth:`require_face`)."""
        self.require_face(what)

    def require_face(self, what: str = "coeffs") -> None:
        """Raise a ``ValueError`` naming ``what`` unless the path stays on the {0, i, j} face."""
        if not self.on_face:
            raise ValueError(
                f"{what}: " + self._off_face_reason() + ". Only ODE/SDE samplers (which convert the 'g' heads "
                "through RestrictedMultimarginal.convert) apply on this path; implicit (DDIM/IADB/DBIM) and "
                "exponential-integrator (DEIS/DPM-Solver) samplers, two-marginal path sampling and conversions "
                "between ordinary kinds need a path on that face"
            )

    def coeffs(self, t: Tensor) -> Coeffs:
        self.require_face("SimplexSchedule.coeffs")
        a, a_dot = self.path(t)
        zero = torch.zeros_like(t)
        alpha, beta = a[..., self.i], a[..., self.j]
        d_alpha, d_beta = a_dot[..., self.i], a_dot[..., self.j]
        if self.i == 0:
            return Coeffs(alpha, beta, zero, d_alpha, d_beta, zero, zero)
        g, dg = a[..., 0], a_dot[..., 0]
        return Coeffs(alpha, beta, g, d_alpha, d_beta, dg, g * dg)

    def config(self) -> dict:
        return {"path": repr(self.path)}
