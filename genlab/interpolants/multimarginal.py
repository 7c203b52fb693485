"""Multimarginal stochastic interpolants on the simplex (Albergo, Boffi, Lindsey & Vanden-Eijnden, ICLR'24).

Reference: "Multimarginal generative modeling with stochastic interpolants", arXiv:2310.03695 (ref. notes
``reference/interpolants.md`` §4). K + 1 marginals ρ_0, …, ρ_K are joined by the *barycentric interpolant*

    x(a) = Σ_k a_k x_k,     a ∈ Δ^K = {a_k ≥ 0, Σ_k a_k = 1},

with x_0 ~ N(0, I) independent of (x_1, …, x_K) (genlab fixes marginal 0 to be the Gaussian; it plays the role γ
plays in a two-marginal interpolant). At a vertex x(e_k) = x_k, so the law of x(e_k) is ρ_k. One network learns the
K + 1 conditional expectations

    g_k(a, x) = E[x_k | x(a) = x]       (paper's fields g_k; loss Σ_k E|ĝ_k − x_k|², i.e. the paper's
                                          L_k = E[|ĝ_k|² − 2 x_k·ĝ_k] up to an additive constant),

which satisfy the constraint Σ_k a_k g_k(a, x) = x, give the score s(a, x) = −g_0(a, x)/a_0 where a_0 > 0, and,
along any C¹ (here: piecewise C¹) path a: [0, 1] → Δ^K from e_i to e_j, the transport velocity

    b(t, x) = Σ_k ȧ_k(t) g_k(a(t), x)      (pushes ρ_i to ρ_j; Σ_k ȧ_k = 0, so a field common to all g_k cancels);

adding ε(t)·s dt + √(2ε) dW gives the forward SDE wherever a_0(t) > 0 (ref. §1.4, §4). An edge e_i → e_j gives
b = g_j − g_i, so one model transports between every pair of marginals ("all-to-all").

What this module provides:

* :class:`Multimarginal` — sampling of (a, x(a)), the regression loss, the constraint projection, score and
  velocity from the stacked heads ``g`` of shape ``(B, K + 1, ...)``.
* :meth:`Multimarginal.restrict` → :class:`RestrictedMultimarginal`, an :class:`~genlab.interpolants.Interpolant`
  whose field kind ``"g"`` (a multi-head kind of the vocabulary) converts to ``velocity``, ``score``, ``x0``,
  ``x1``, ``noise``, ``drift_fwd/bwd``, so every ODE/SDE sampler runs along the path unchanged. Its
  :class:`~genlab.interpolants.simplex.SimplexSchedule` gives α = a_i (start vertex), β = a_j (end vertex),
  γ = a_0 (Gaussian vertex) when the path stays on the face spanned by {0, i, j}; then the coefficient-based
  samplers (implicit steps, exponential integrators) apply too. Off that face the schedule refuses them, and
  :meth:`~genlab.interpolants.Interpolant.capabilities` (the base-class rule, "g" determining every slot) does not
  offer them.

The simplex paths (:class:`SimplexPath`, :class:`EdgePath`, :class:`PolylinePath`, :class:`GammaPath`) and
:class:`SimplexSchedule` live in :mod:`genlab.interpolants.simplex`. The network wrapper that evaluates a simplex
network ``net(x, a)`` along a path and the ``Field`` of kind ``"g"`` live in :mod:`genlab.models.multimarginal_field`
(``PathConditionedNet``, ``MultimarginalField``): ``genlab.interpolants`` imports nothing from ``genlab.models``.

Network layout (stacked heads): a network returns either ``(B, K + 1, *x.shape[1:])`` or, for networks with one
wide output such as :class:`~genlab.models.TimeMLP` with ``out_dim=(K + 1)·dim`` or a U-Net with ``(K + 1)·C``
output channels, ``(B, (K + 1)·x.shape[1], *x.shape[2:])`` with the heads stacked head-major along dim 1;
:meth:`Multimarginal.heads` reshapes the second form into the first.

What is reconstructed, not read in the paper: genlab could read only the paper's abstract and reviews and a
third-party implementation's README (ref. §0, §10), not its §2–3. Therefore

* the α-sampling density for training is genlab's choice: the uniform law on Δ^K (Dirichlet(1, …, 1)), which is
  the normalised Lebesgue measure of the ∫_{Δ^K} dα of the loss as the ref. notes write it, with an optional
  fraction ``edge_prob`` of draws placed uniformly on edges (the third-party code trains on edges and the
  interior; the paper's exact mixture was not verified);
* the loss is the squared error without the ½ of the two-marginal losses, averaged over data dimensions and summed
  over heads (each head's loss equals the paper's L_k up to the constant E|x_k|²);
* the path-optimisation parametrisation of the paper (a Fourier-type series for a(t), ref. §4 [mem]) could not be
  verified; :class:`~genlab.interpolants.FourierPath` (:mod:`genlab.interpolants.fourier_path`) is genlab's
  reconstruction (boundary-fixed sine series, normalised squares onto the simplex), optimised with frozen g_k by
  :func:`genlab.training.optimize_path`. Edges, polylines and the γ-smoothed edge of ref. §4 (``GammaPath``) are
  provided too.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from genlab.interpolants.interpolant import Interpolant
from genlab.interpolants.simplex import (
    EdgePath,
    GammaPath,
    PolylinePath,
    SimplexPath,
    SimplexSchedule,
    _check_K,
    _check_vertex,
    _tol,
    check_simplex,
)
from genlab.utils import append_dims, as_time, randn_per_sample, schedule_dtype

# The simplex paths live in genlab.interpolants.simplex; they are re-exported here for existing imports.
__all__ = [
    "EdgePath",
    "GammaPath",
    "Multimarginal",
    "MultimarginalSample",
    "PolylinePath",
    "RestrictedMultimarginal",
    "SimplexPath",
    "SimplexSchedule",
    "check_simplex",
]


# ---------------------------------------------------------------------------------------------- the multimarginal model
@dataclass
class MultimarginalSample:
    """A draw of the barycentric interpolant.

    Attributes:
        a: Simplex points, shape ``(B, K + 1)`` (schedule dtype, float64 where available).
        x: ``x(a) = Σ_k a_k x_k``, shape ``(B, ...)``.
        xs: The marginal samples stacked, shape ``(B, K + 1, ...)``; ``xs[:, 0]`` is the Gaussian.
        targets: Regression targets; ``targets["g"]`` = ``xs`` (the target of head k is x_k).
    """

    a: Tensor
    x: Tensor
    xs: Tensor
    targets: dict[str, Tensor] = field(default_factory=dict)


class Multimarginal:
    """Multimarginal stochastic interpolant with K + 1 marginals, marginal 0 being N(0, I).

    Albergo, Boffi, Lindsey & Vanden-Eijnden, ICLR'24 (arXiv:2310.03695); formulas in the module docstring.

    Args:
        K: Simplex dimension (K ≥ 1 data marginals besides the Gaussian).
        edge_prob: Default probability that :meth:`sample_simplex` places a draw on an edge (oversampling edges,
            where transport usually happens) instead of the uniform interior law.
        edges: Edges (pairs of vertices) used for that oversampling; all pairs by default.
    """

    def __init__(self, K: int, *, edge_prob: float = 0.0,
                 edges: Sequence[tuple[int, int]] | None = None) -> None:
        self.K = _check_K(K)
        self.edge_prob = self._check_edge_prob(edge_prob)
        self.edges = self._check_edges(edges)

    # ------------------------------------------------------------------ validation
    def _check_edge_prob(self, p: float) -> float:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"edge_prob must be a probability in [0, 1]; got {p!r}")
        return float(p)

    def _check_edges(self, edges: Sequence[tuple[int, int]] | None) -> tuple[tuple[int, int], ...]:
        if edges is None:
            return tuple(itertools.combinations(range(self.K + 1), 2))
        out = []
        for e in edges:
            if not isinstance(e, (tuple, list)) or len(e) != 2:
                raise ValueError(f"edges must be pairs of vertex indices; got {e!r}")
            i, j = (_check_vertex("edge vertex", v, self.K) for v in e)
            if i == j:
                raise ValueError(f"an edge needs two distinct vertices; got {e!r}")
            out.append((i, j))
        if not out:
            raise ValueError("edges must not be empty (pass None for all edges)")
        return tuple(out)

    def _stack(self, xs: Tensor | Sequence[Tensor | None], *, generator: torch.Generator | None) -> Tensor:
        K = self.K
        if isinstance(xs, Tensor):
            if xs.ndim < 3 or xs.shape[1] != K + 1:
                raise ValueError(
                    f"xs must stack the K+1={K + 1} marginal samples along dim 1, shape (B, {K + 1}, ...) with at "
                    f"least one data dim; got {tuple(xs.shape)}"
                )
            return xs
        if not isinstance(xs, Sequence) or len(xs) != K + 1:
            n = len(xs) if isinstance(xs, Sequence) else type(xs).__name__
            raise ValueError(f"xs must be a (B, K+1, ...) tensor or a sequence of K+1={K + 1} tensors; got {n}")
        ref = next((x for x in xs if x is not None), None)
        if ref is None:
            raise ValueError("xs needs at least one data tensor (only xs[0], the Gaussian, may be None)")
        if any(x is None for x in xs[1:]):
            raise ValueError("only xs[0] (the Gaussian marginal) may be None, to draw it; pass every data marginal")
        for k, x in enumerate(xs):
            if x is not None and (not isinstance(x, Tensor) or x.shape != ref.shape or x.ndim < 2):
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(
                    f"xs[{k}] must be a tensor of shape (B, ...) with at least one data dim like the others "
                    f"{tuple(ref.shape)}; got {got}"
                )
        x0 = xs[0] if xs[0] is not None else randn_per_sample(ref.shape, generator=generator, device=ref.device,
                                                                 dtype=ref.dtype)
        return torch.stack([x0, *xs[1:]], dim=1)

    def heads(self, g: Tensor, x: Tensor) -> Tensor:
        """The stacked heads ``(B, K + 1, *x.shape[1:])`` from either network layout (module docstring).

        Args:
            g: ``(B, K + 1, *x.shape[1:])`` or ``(B, (K + 1)·x.shape[1], *x.shape[2:])`` (head-major).
            x: The point the heads were evaluated at, ``(B, ...)``.

        Returns:
            ``g`` as ``(B, K + 1, *x.shape[1:])``.
        """
        if not isinstance(g, Tensor):
            raise TypeError(f"g must be a tensor; got {type(g).__name__}")
        if x.ndim < 2:
            raise ValueError(f"x must have shape (B, ...) with at least one data dim; got {tuple(x.shape)}")
        n = self.K + 1
        stacked = (x.shape[0], n, *x.shape[1:])
        flat = (x.shape[0], n * x.shape[1], *x.shape[2:])
        if tuple(g.shape) == stacked:
            return g
        if tuple(g.shape) == flat:
            return g.reshape(stacked)
        raise ValueError(
            f"g must hold the K+1={n} heads as {stacked} or head-major {flat} for x of shape {tuple(x.shape)}; "
            f"got {tuple(g.shape)}"
        )

    # ------------------------------------------------------------------ sampling
    def sample_simplex(
        self,
        batch: int,
        *,
        generator: torch.Generator | None = None,
        edge_prob: float | None = None,
        edges: Sequence[tuple[int, int]] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Draw simplex points: uniform on Δ^K (Dirichlet(1, …, 1)), or uniform on an edge w.p. ``edge_prob``.

        Dirichlet(1, …, 1) is drawn as normalised Exp(1) variables; each sample consumes the same number (K + 4)
        of per-sample standard normals (turned into uniforms by Φ), so a row does not depend on the batch size.

        Args:
            batch: Number of points B.
            generator: Random generator.
            edge_prob: Probability of an edge draw (the constructor's ``edge_prob`` if ``None``).
            edges: Edges to draw from (the constructor's if ``None``).
            device: Device (the generator's by default).
            dtype: Dtype (float64 where the device allows).

        Returns:
            ``(B, K + 1)`` simplex points.
        """
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 0:
            raise ValueError(f"batch must be an int >= 0; got {batch!r}")
        p = self.edge_prob if edge_prob is None else self._check_edge_prob(edge_prob)
        edge_list = self.edges if edges is None else self._check_edges(edges)
        if device is None:
            device = generator.device if generator is not None else None
        dtype = dtype or schedule_dtype(device)
        n = self.K + 1
        z = randn_per_sample((batch, n + 3), generator=generator, device=device, dtype=torch.float64)
        expo = -torch.special.log_ndtr(z[:, :n])  # Φ(z) ~ U(0,1) ⇒ −log Φ(z) ~ Exp(1)
        a = expo / expo.sum(1, keepdim=True)
        if p > 0:
            u = torch.special.ndtr(z[:, n:])  # (B, 3) uniforms: coin, edge index, position
            pick = u[:, 0] < p
            idx = (u[:, 1] * len(edge_list)).long().clamp(max=len(edge_list) - 1)
            pairs = torch.tensor(edge_list, device=a.device)[idx]  # (B, 2)
            pos = u[:, 2:3]
            on_edge = torch.zeros_like(a)
            on_edge.scatter_add_(1, pairs[:, :1], 1 - pos)
            on_edge.scatter_add_(1, pairs[:, 1:], pos)
            a = torch.where(pick[:, None], on_edge, a)
        return a.to(dtype)

    def interpolate(self, xs: Tensor, a: Tensor) -> Tensor:
        """``x(a) = Σ_k a_k x_k``.

        Args:
            xs: Stacked marginal samples ``(B, K + 1, ...)``.
            a: Simplex points ``(B, K + 1)``.

        Returns:
            ``(B, ...)`` in the dtype of ``xs``.
        """
        xs = self._stack(xs, generator=None)
        check_simplex(a, self.K, batch=xs.shape[0])
        w = append_dims(a.to(device=xs.device, dtype=xs.dtype), xs.ndim)
        return (w * xs).sum(1)

    def sample(
        self,
        xs: Tensor | Sequence[Tensor | None],
        a: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> MultimarginalSample:
        """Draw ``(a, x(a))`` and the targets of the K + 1 heads.

        Args:
            xs: ``(B, K + 1, ...)`` or a sequence of K + 1 ``(B, ...)`` tensors, one sample of each marginal (from any
                coupling; ``xs[0]`` must be N(0, I) independent of the rest for the score to hold). In a sequence,
                ``xs[0] = None`` draws the Gaussian.
            a: Simplex points ``(B, K + 1)``; drawn by :meth:`sample_simplex` if ``None``.
            generator: Random generator for the draws (a first, then the Gaussian).

        Returns:
            A :class:`MultimarginalSample`.
        """
        if a is None:
            ref = xs if isinstance(xs, Tensor) else next((x for x in xs if isinstance(x, Tensor)), None)
            if ref is None:
                raise ValueError("xs needs at least one data tensor")
            a = self.sample_simplex(ref.shape[0], generator=generator, device=ref.device)
        stacked = self._stack(xs, generator=generator)
        check_simplex(a, self.K, batch=stacked.shape[0])
        x = self.interpolate(stacked, a)
        return MultimarginalSample(a=a, x=x, xs=stacked, targets={"g": stacked})

    # ------------------------------------------------------------------ loss and identities
    def loss(self, g_pred: Tensor, sample: MultimarginalSample, *, weight: Tensor | None = None) -> Tensor:
        """``Σ_k E|ĝ_k(a, x(a)) − x_k|²`` (mean over data dims, sum over heads, mean over the batch).

        Each head's term equals the paper's L_k = E[|ĝ_k|² − 2 x_k·ĝ_k] plus the constant E|x_k|² (per data dim),
        so both have the same minimiser g_k = E[x_k | x(a)].

        Args:
            g_pred: Network output in either head layout.
            sample: The :class:`MultimarginalSample` the network was evaluated on.
            weight: Optional per-sample weights ``(B,)``.

        Returns:
            Scalar loss.
        """
        g = self.heads(g_pred, sample.x)
        err = (g - sample.targets["g"]) ** 2
        per_sample = err.flatten(2).mean(2).sum(1)
        if weight is not None:
            if weight.shape != per_sample.shape:
                raise ValueError(f"weight must have shape {tuple(per_sample.shape)}; got {tuple(weight.shape)}")
            per_sample = per_sample * weight
        return per_sample.mean()

    def residual(self, g: Tensor, a: Tensor, x: Tensor) -> Tensor:
        """Constraint residual ``x − Σ_k a_k g_k`` (zero for exact fields)."""
        g = self.heads(g, x)
        check_simplex(a, self.K, batch=x.shape[0])
        return x - (append_dims(a.to(g.dtype), g.ndim) * g).sum(1)

    def project(self, g: Tensor, a: Tensor, x: Tensor) -> Tensor:
        """Enforce ``Σ_k a_k g_k = x`` with the smallest change: ``g_k ← g_k + a_k r/|a|²``, r the residual.

        This is the minimum-norm correction (in Σ_k |δg_k|²) of the linear constraint; it is the identity when the
        constraint already holds.

        Args:
            g: Heads ``(B, K + 1, ...)`` (or the flat layout).
            a: Simplex points ``(B, K + 1)``.
            x: The points ``(B, ...)`` with x = x(a).

        Returns:
            Projected heads ``(B, K + 1, ...)``.
        """
        g = self.heads(g, x)
        r = self.residual(g, a, x)
        aa = a.to(g.dtype)
        w = append_dims(aa / (aa**2).sum(1, keepdim=True), g.ndim)
        return g + w * r.unsqueeze(1)

    def score(self, g: Tensor, a: Tensor, *, x: Tensor | None = None) -> Tensor:
        """Score ``∇ log ρ(a, x) = −g_0/a_0`` (x_0 Gaussian, needs a_0 > 0).

        Args:
            g: Heads ``(B, K + 1, ...)`` (the flat layout needs ``x``).
            a: Simplex points ``(B, K + 1)``.
            x: The point (only to read a flat head layout).

        Returns:
            ``(B, ...)``.
        """
        if x is not None:
            g = self.heads(g, x)
        check_simplex(a, self.K, batch=g.shape[0])
        if g.ndim < 3 or g.shape[1] != self.K + 1:
            raise ValueError(f"g must have shape (B, K+1={self.K + 1}, ...); got {tuple(g.shape)}")
        a0 = a[:, 0]
        if bool((a0 <= 0).any()):
            raise ValueError(
                "the score −g_0/a_0 needs a positive Gaussian weight a_0; some points have a_0 = 0 (edges between "
                "data vertices carry no Gaussian: use a path through the interior, e.g. GammaPath)"
            )
        return -g[:, 0] / append_dims(a0.to(g.dtype), g.ndim - 1)

    def velocity(self, g: Tensor, a_dot: Tensor, *, x: Tensor | None = None) -> Tensor:
        """Transport velocity ``b = Σ_k ȧ_k g_k`` along a path with tangent ``ȧ`` (Σ_k ȧ_k = 0).

        Args:
            g: Heads ``(B, K + 1, ...)`` (the flat layout needs ``x``).
            a_dot: Path derivative ``(B, K + 1)``.
            x: The point (only to read a flat head layout).

        Returns:
            ``(B, ...)``.
        """
        if x is not None:
            g = self.heads(g, x)
        if not isinstance(a_dot, Tensor) or a_dot.shape != (g.shape[0], self.K + 1) or g.shape[1] != self.K + 1:
            got = tuple(a_dot.shape) if isinstance(a_dot, Tensor) else type(a_dot).__name__
            raise ValueError(f"a_dot must have shape ({g.shape[0]}, {self.K + 1}) matching g {tuple(g.shape)}; got {got}")
        if not bool(torch.isfinite(a_dot).all()):
            raise ValueError("a_dot is not finite (a path with an unbounded derivative, e.g. GammaPath with "
                             "gamma='brownian' at t in {0, 1}); evaluate at interior times or use gamma='bsquared'")
        scale = a_dot.abs().sum(1).clamp_min(1.0)
        if bool((a_dot.sum(1).abs() > 1e3 * _tol(a_dot.dtype) * scale).any()):
            raise ValueError("a_dot must be tangent to the simplex (its entries must sum to 0)")
        return (append_dims(a_dot.to(g.dtype), g.ndim) * g).sum(1)

    def restrict(self, path: SimplexPath, *, project: bool = False) -> RestrictedMultimarginal:
        """The interpolant along ``path`` (usable by every ODE/SDE sampler; see :class:`RestrictedMultimarginal`).

        Args:
            path: A :class:`SimplexPath` on this Δ^K from one vertex to another.
            project: Project the heads onto Σ_k a_k g_k = x before every conversion.

        Returns:
            The :class:`RestrictedMultimarginal`.
        """
        return RestrictedMultimarginal(self, path, project=project)

    def __repr__(self) -> str:
        return f"Multimarginal(K={self.K}, edge_prob={self.edge_prob})"


# ---------------------------------------------------------------------------------------------- restricted interpolant
class RestrictedMultimarginal(Interpolant):
    """A multimarginal model along a simplex path, as an :class:`~genlab.interpolants.Interpolant` of kind ``"g"``.

    Conversions from the stacked heads ``g`` (``(B, K + 1, ...)`` or the flat layout), at a(t), ȧ(t) of the path
    from vertex i to vertex j:

    * ``velocity`` = Σ_k ȧ_k(t) g_k;  ``x0`` = g_i;  ``x1`` = g_j;  ``noise`` = g_0 (= E[x_0 | x]: ε for a path
      from the Gaussian, E[z | x_t] of the equivalent two-marginal SI otherwise);
    * ``score`` = −g_0/a_0(t) (raises where a_0(t) = 0);
    * ``drift_fwd`` / ``drift_bwd`` = velocity ± ε·score (:meth:`~genlab.interpolants.Interpolant.sde_drift`; the
      score is only needed, and only checked, where ε ≠ 0).

    Predictions of the ordinary kinds are converted by the base class through :class:`SimplexSchedule`. The source
    is ``"gaussian"`` when the path starts at vertex 0, else ``"data"``. Every coefficient-based method of the base
    class (``coeffs``, ``semilinear``, ``implicit_step``, ``markov_omega``, ``sample``, ``conversion_weights``)
    works on the {0, i, j} face and is refused off it by the schedule (:meth:`SimplexSchedule.require_coefficients`);
    :meth:`~genlab.interpolants.Interpolant.capabilities` of a ``"g"`` field follows from the same facts (velocity;
    score where the path visits the Gaussian; implicit/semilinear/markov only on the face). Training a
    multimarginal model uses :meth:`Multimarginal.sample`; :meth:`sample` draws the path as an ordinary two-marginal
    interpolant (x_i as ``x0``, x_j as ``x1``, x_0 as ``z``), e.g. to train a two-marginal field on the same path.

    Args:
        mm: The multimarginal model.
        path: Its path.
        project: Project the heads onto the constraint before converting.
    """

    def __init__(self, mm: Multimarginal, path: SimplexPath, *, project: bool = False) -> None:
        if not isinstance(mm, Multimarginal):
            raise TypeError(f"mm must be a Multimarginal, got {type(mm).__name__}")
        if not isinstance(path, SimplexPath):
            raise TypeError(f"path must be a SimplexPath, got {type(path).__name__}")
        if path.K != mm.K:
            raise ValueError(f"the path lives on Δ^{path.K} but the model has K={mm.K}; build the path with K={mm.K}")
        schedule = SimplexSchedule(path)
        super().__init__(schedule, source="gaussian" if schedule.i == 0 else "data",
                         name=f"Multimarginal(K={mm.K}) on {path!r}")
        self.mm, self.path, self.project = mm, path, bool(project)
        self.i, self.j = schedule.i, schedule.j

    def kinds(self) -> tuple[str, ...]:
        """``"g"`` plus the kinds it converts to (score/noise/SDE kinds when the path visits the Gaussian vertex)."""
        return ("g", *super().kinds())

    def field_kinds(self) -> tuple[str, ...]:
        """The one field kind of a multimarginal model: the stacked heads ``"g"``."""
        return ("g",)

    def prediction_shape(self, kind: str, x_t: Tensor) -> torch.Size:
        """``(B, K + 1, *x_t.shape[1:])`` for the heads ``"g"``, ``x_t.shape`` for every other kind."""
        if kind == "g":
            return torch.Size((x_t.shape[0], self.mm.K + 1, *x_t.shape[1:]))
        return x_t.shape

    def simplex(self, t: Tensor | float, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(a(t), ȧ(t))`` for the batch ``x``: shapes ``(B, K + 1)`` in the schedule dtype."""
        return self.path(as_time(t, x))

    def __repr__(self) -> str:
        return f"RestrictedMultimarginal(K={self.mm.K}, path={self.path!r}, project={self.project})"

    def convert(
        self,
        pred: Tensor | tuple[Tensor, ...],
        from_kind: str | tuple[str, ...],
        to_kind: str,
        x_t: Tensor,
        t: Tensor | float,
        x0: Tensor | None = None,
        *,
        eps: Tensor | float | None = None,
    ) -> Tensor:
        """Convert the heads ``g`` (or an ordinary prediction, via the base class) to ``to_kind``.

        Args:
            pred: The stacked heads (``from_kind="g"``), or ordinary prediction(s).
            from_kind: ``"g"`` or ordinary kind(s).
            to_kind: Requested kind (see :meth:`kinds`).
            x_t: Current state ``(B, ...)``.
            t: Time(s) in [0, 1].
            x0: Unused (no known source on simplex paths); accepted for signature compatibility.
            eps: Diffusion coefficient ε(t) ≥ 0 for ``drift_fwd``/``drift_bwd`` (float or ``(B,)``).

        Returns:
            The prediction of kind ``to_kind``, shape of ``x_t`` (``(B, K + 1, ...)`` for ``"g"``).
        """
        if isinstance(from_kind, tuple) and from_kind == ("g",):
            from_kind, pred = "g", pred[0] if isinstance(pred, (tuple, list)) else pred
        if from_kind != "g":
            if to_kind == "g":
                raise ValueError("the heads 'g' cannot be recovered from other kinds; convert from 'g' instead")
            return super().convert(pred, from_kind, to_kind, x_t, t, x0, eps=eps)
        if not isinstance(pred, Tensor):
            raise TypeError("a 'g' prediction is one tensor holding the K+1 stacked heads")
        g = self.mm.heads(pred, x_t)
        tt = as_time(t, x_t)
        if to_kind == "g":
            return g
        if to_kind not in self.kinds():
            raise ValueError(f"kind {to_kind!r} is not available on {self!r}; it supports {self.kinds()}")
        a, a_dot = self.path(tt)
        if self.project:
            g = self.mm.project(g, a, x_t)
        if to_kind == "x0":
            return g[:, self.i]
        if to_kind == "x1":
            return g[:, self.j]
        if to_kind == "noise":
            return g[:, 0]
        if to_kind == "score":
            self._need_gaussian(a, tt, torch.ones_like(tt, dtype=torch.bool))
            return self.mm.score(g, a)
        try:
            vel = self.mm.velocity(g, a_dot)
        except ValueError as err:
            raise ValueError(f"{err} (t in [{float(tt.min()):.4g}, {float(tt.max()):.4g}] on {self.path!r})") from None
        if to_kind == "velocity":
            return vel
        # drift_fwd / drift_bwd
        if eps is None:
            raise ValueError(f"kind {to_kind!r} needs eps (the diffusion coefficient ε(t) of the SDE)")
        e = torch.as_tensor(eps, dtype=tt.dtype, device=tt.device)
        e = e.expand_as(tt) if e.ndim == 0 else e
        if e.shape != tt.shape:
            raise ValueError(f"eps must be a float or a ({tt.shape[0]},) tensor; got shape {tuple(e.shape)}")
        if bool((e < 0).any()):
            raise ValueError("eps must be >= 0")
        need = e != 0
        if not bool(need.any()):
            return vel
        self._need_gaussian(a, tt, need)
        a_safe = torch.where(need[:, None], a, torch.full_like(a, 1.0 / (self.mm.K + 1)))
        score = self.mm.score(g, a_safe)
        return self.sde_drift(vel, score, e.to(x_t.dtype), forward=to_kind == "drift_fwd")

    def _need_gaussian(self, a: Tensor, tt: Tensor, need: Tensor) -> None:
        bad = need & (a[:, 0] <= 0)
        if bool(bad.any()):
            t_bad = float(tt[bad][0])
            raise ValueError(
                f"the score −g_0/a_0 is undefined at t={t_bad:.4g} on {self.path!r}: the Gaussian weight a_0(t) is 0 "
                "there; use eps = 0 at such times (e.g. an ε(t) vanishing at the ends) or a path through the interior"
            )

    def init_scale(self, t: Tensor | float, x: Tensor) -> Tensor:
        """Std a_0(t) of the Gaussian part of x(a(t)) for a path that starts at the Gaussian vertex."""
        if not self.gaussian_source:
            raise ValueError(f"{self.path!r} starts at data vertex {self.i}; start from samples of that marginal")
        a, _ = self.simplex(t, x)
        return a[:, 0].to(x.dtype)
