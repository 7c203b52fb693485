"""A simplex path with free Fourier coefficients, for transport-cost minimisation over a frozen multimarginal model.

Albergo, Boffi, Lindsey & Vanden-Eijnden (ICLR'24, arXiv:2310.03695) decouple the path a(t) on the simplex from the
learned fields g_k, so after training a(t) can be chosen to lower the transport cost

    C[a] = ∫_0^1 E | Σ_k ȧ_k(t) g_k(a(t), x(a(t))) |² dt

with the g_k frozen. The paper parametrises a(t) with a Fourier (sine) series whose modes vanish at t = 0 and t = 1,
so the path keeps its end vertices, and maps the result back onto the simplex. The form used here:

    â_k(t) = (1 − t)·δ_{k,i} + t·δ_{k,j} + Σ_{n=1}^{N} c_{k,n} sin(π n t),
    a_k(t) = â_k(t)² / Σ_l â_l(t)²                                            (k = 0, …, K).

Reconstructed, said plainly: genlab could not read the paper's section on path optimisation (reference notes
``reference/interpolants.md`` §4, §10 mark it [mem]); the sine series with fixed end points follows the notes, the
normalised-squares map onto the simplex is genlab's choice (it keeps a_k ≥ 0 and Σ_k a_k = 1 for any coefficients,
is smooth wherever â ≠ 0, and gives a(0) = e_i, a(1) = e_j exactly). With all coefficients zero the path is the
edge e_i → e_j reparametrised as a_j = t²/((1 − t)² + t²), not the linear edge :class:`EdgePath`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.interpolants.simplex import SimplexPath, _check_vertex

__all__ = ["FourierPath"]


class FourierPath(SimplexPath):
    """Path e_i → e_j on Δ^K with a boundary-fixed sine series per vertex, mapped onto Δ^K by normalised squares.

    Formula in the module docstring. The coefficients are a plain tensor ``coeffs`` of shape ``(K + 1, N)``; pass
    one with ``requires_grad=True`` (or call :meth:`parameters`) to optimise the path by gradient descent: every
    output of :meth:`evaluate` is differentiable in it.

    Args:
        i: Start vertex.
        j: End vertex (≠ i).
        K: Simplex dimension.
        modes: Number N of sine modes per vertex (≥ 1); ignored when ``coeffs`` is given.
        coeffs: Initial coefficients ``(K + 1, N)`` (zeros by default: the reparametrised edge).

    Raises:
        ValueError: Equal end vertices, a bad ``modes`` or a ``coeffs`` of the wrong shape / non-finite.
    """

    def __init__(self, i: int, j: int, K: int, *, modes: int = 4, coeffs: Tensor | None = None) -> None:
        super().__init__(K)
        self.i = _check_vertex("i", i, self.K)
        self.j = _check_vertex("j", j, self.K)
        if self.i == self.j:
            raise ValueError(f"FourierPath needs two distinct vertices; got i = j = {i}")
        if coeffs is None:
            if isinstance(modes, bool) or not isinstance(modes, int) or modes < 1:
                raise ValueError(f"modes must be an int >= 1; got {modes!r}")
            coeffs = torch.zeros(self.K + 1, modes, dtype=torch.float64)
        if not isinstance(coeffs, Tensor) or coeffs.ndim != 2 or coeffs.shape[0] != self.K + 1 or coeffs.shape[1] < 1:
            got = tuple(coeffs.shape) if isinstance(coeffs, Tensor) else type(coeffs).__name__
            raise ValueError(f"coeffs must have shape (K+1={self.K + 1}, N>=1); got {got}")
        if not bool(torch.isfinite(coeffs.detach()).all()):
            raise ValueError("coeffs must be finite")
        self.coeffs = coeffs

    @property
    def modes(self) -> int:
        """Number of sine modes N."""
        return int(self.coeffs.shape[1])

    def parameters(self) -> list[Tensor]:
        """``[coeffs]`` with gradients switched on (for a torch optimiser)."""
        self.coeffs.requires_grad_(True)
        return [self.coeffs]

    @classmethod
    def fit(cls, path: SimplexPath, *, modes: int = 4, steps: int = 400, nodes: int = 201, lr: float = 0.05) -> FourierPath:
        """The FourierPath with the same ends closest to ``path`` in mean squared a(t) (Adam on a uniform grid).

        Used to start path optimisation at (a smooth approximation of) the linear edge: the zero-coefficient path
        is a slower reparametrisation of the edge with a much higher transport cost.

        Args:
            path: Target path from vertex i to vertex j.
            modes: Sine modes per vertex.
            steps: Adam steps.
            nodes: Grid points in [0, 1].
            lr: Adam learning rate.

        Returns:
            The fitted path (detached coefficients).
        """
        i, j = path.start, path.end
        if i is None or j is None:
            raise ValueError(f"{path!r} must start and end at vertices to be fitted by a FourierPath")
        out = cls(i, j, path.K, modes=modes)
        t = torch.linspace(0, 1, nodes, dtype=torch.float64)
        target, _ = path(t)
        opt = torch.optim.Adam(out.parameters(), lr=lr)
        with torch.enable_grad():  # also when called under torch.no_grad()
            for _ in range(steps):
                a, _ = out(t)
                loss = ((a - target.detach()) ** 2).sum(-1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        return out.detached()

    def detached(self) -> FourierPath:
        """A copy holding detached, gradient-free coefficients (for sampling after optimisation)."""
        return FourierPath(self.i, self.j, self.K, coeffs=self.coeffs.detach().clone())

    def evaluate(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(a(t), ȧ(t))``, shape ``(*t.shape, K + 1)``, in the dtype of ``t`` (differentiable in ``coeffs``)."""
        c = self.coeffs.to(device=t.device, dtype=t.dtype)
        n = torch.arange(1, c.shape[1] + 1, device=t.device, dtype=t.dtype)
        tt = t.unsqueeze(-1)
        sin = torch.sin(math.pi * n * tt)  # (..., N)
        dsin = math.pi * n * torch.cos(math.pi * n * tt)
        base = torch.zeros(c.shape[0], device=t.device, dtype=t.dtype)
        ei, ej = base.clone(), base.clone()
        ei[self.i], ej[self.j] = 1.0, 1.0
        h = (1 - tt) * ei + tt * ej + sin @ c.T  # (..., K + 1)
        dh = (ej - ei) + dsin @ c.T
        s = (h * h).sum(-1, keepdim=True)
        tiny = torch.finfo(t.dtype).tiny ** 0.5
        if bool((s.detach() <= tiny).any()):
            raise ValueError(
                "FourierPath: â(t) vanishes at some t, where the normalised-squares map onto the simplex is undefined; "
                "perturb the coefficients"
            )
        ds = 2 * (h * dh).sum(-1, keepdim=True)
        a = h * h / s
        a_dot = (2 * h * dh * s - h * h * ds) / (s * s)
        return a, a_dot

    @property
    def support(self) -> frozenset[int]:
        """Vertices whose weight is non-zero somewhere (i, j and every vertex with a non-zero coefficient)."""
        live = (self.coeffs.detach().abs() > 0).any(1)
        return frozenset({self.i, self.j, *(int(k) for k in torch.nonzero(live).flatten())})

    def __repr__(self) -> str:
        return f"FourierPath({self.i}, {self.j}, K={self.K}, modes={self.modes})"
