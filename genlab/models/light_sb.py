r"""Light Schrödinger Bridge (Korotin, Gushchin & Burnaev, ICLR 2024, "Light Schrödinger Bridge").

The Schrödinger bridge between ``p0`` and ``p1`` w.r.t. the Wiener process ``W^ε`` (``dX = √ε dW``) is the
entropic OT problem with cost ``½|x − y|²`` and regulariser ``ε``. Light SB parametrises the *adjusted
Schrödinger potential* as a Gaussian mixture (paper eq. 12 and §3.2; ``reference/interpolants.md`` §6)

.. math::
    v_θ(y) = \sum_{k=1}^K α_k\, \mathcal N(y \mid r_k, εS_k),
    \qquad c_θ(x) = \int e^{⟨x,y⟩/ε} v_θ(y)\,dy = \sum_k α_k \exp\big((x^⊤S_kx + 2r_k^⊤x)/(2ε)\big),

trained by minimising ``L(θ) = E_{p0} log c_θ(x0) − E_{p1} log v_θ(x1)`` (paper eq. 14; equals
``KL(π*‖π_θ)`` up to a constant, no simulation). Everything else is closed form:

* conditional plan (paper Prop. 3.2): ``π_θ(y|x) = Σ_k w_k(x) N(y | r_k + S_k x, εS_k)`` with
  ``w_k ∝ α_k exp((xᵀS_kx + 2r_kᵀx)/(2ε))``;
* SB drift (paper Prop. 3.3, eq. 17): ``g_θ(x, t) = ε∇_x log ∫ N(y | x, ε(1−t)I) e^{|y|²/(2ε)} v_θ(y) dy``;
  written here as ``g = (Σ_k ω_k(x, t) m_k(x, t) − x)/(1 − t)`` with ``m_k = A_k⁻¹c_k``,
  ``A_k = t/(ε(1−t)) I + (εS_k)⁻¹``, ``c_k = x/(ε(1−t)) + (εS_k)⁻¹ r_k`` and ``ω = softmax_k[log α_k − ½log|S_k|
  − ½log|A_k| − r_kᵀS_k⁻¹r_k/(2ε) + ½c_kᵀA_k⁻¹c_k]`` (the gradient of the authors' logsumexp written out, so no
  autograd is needed; ``ε∇_x ½cᵀA⁻¹c = A⁻¹c/(1−t)``);
* exact time marginals through the Brownian bridge: ``X_t = t y + (1−t)x + √(εt(1−t)) ξ``, ``y ~ π_θ(·|x)``.

Parametrisation (authors' ``light_sb.py``, read to reconstruct it; written here): ``log α_k = a_k / ε`` with
raw ``a_k`` initialised to ``ε log(1/K)``; ``S_k = O_k diag(exp s_k) O_kᵀ`` with ``O_k = I`` (``"diagonal"``, the
paper's benchmark choice) or a learnt orthogonal matrix (``"full"``; here ``O_k = exp(W_k − W_kᵀ)``, the
authors use geotorch); ``r_k`` initialised from target samples (:meth:`LightSB.init_means`);
``S`` initialised to ``s_init·I`` (0.1 by default, 1.0 on the EOT benchmark).

As a genlab :class:`~genlab.models.Field` the drift is kind ``"drift_fwd"`` on ``BrownianBridge(√ε)`` with SI
diffusion ``ε_SI = ε/2`` (genlab's SDE samplers integrate ``dX = b_F dt + √(2ε_SI) dW``): see
:func:`light_sb_field`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from genlab.interpolants import BrownianBridge
from genlab.models.field import Field
from genlab.models.registry import register_network
from genlab.utils import randn_per_sample

__all__ = ["LIGHT_SB_LR", "LightSB", "LightSBDrift", "LightSBPlan", "light_sb_field"]

#: Adam learning rates of the paper's EOT-benchmark runs per ε (Korotin et al. 2024, App. C; K = 50,
#: batch 128, 10k steps, diagonal S initialised to I).
LIGHT_SB_LR: dict[float, float] = {0.1: 1e-3, 1.0: 3e-3, 10.0: 6e-2}


def _check_eps(eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or not eps > 0:
        raise ValueError(f"eps (the entropic regularisation ε = σ² of the Wiener reference) must be a finite "
                         f"float > 0; got {eps!r}")
    return float(eps)


@dataclass
class LightSBPlan:
    """The Gaussian-mixture conditional plan ``π_θ(y|x) = Σ_k w_k N(y | mean_k, cov_k)`` at a batch of ``x``.

    Attributes:
        log_weights: ``(B, K)`` normalised log mixture weights ``log w_k(x)``.
        means: ``(B, K, D)`` component means ``r_k + S_k x``.
        covs: ``(K, D, D)`` component covariances ``εS_k`` (independent of ``x``).
    """

    log_weights: Tensor
    means: Tensor
    covs: Tensor

    def mean(self) -> Tensor:
        """``E[y|x]``, shape ``(B, D)``."""
        return torch.einsum("bk,bkd->bd", self.log_weights.exp(), self.means)

    def cov(self) -> Tensor:
        """``Cov[y|x]``, shape ``(B, D, D)`` (law of total covariance over the components)."""
        w = self.log_weights.exp()
        m = self.mean()
        second = torch.einsum("bk,kde->bde", w, self.covs) + torch.einsum("bk,bkd,bke->bde", w, self.means, self.means)
        return second - m[:, :, None] * m[:, None, :]


class LightSB(nn.Module):
    """The Light SB mixture potential with its objective, conditional plan, drift and bridge marginals.

    Args:
        dim: Data dimension ``D``.
        n_components: Number of mixture components ``K`` (paper default on the EOT benchmark: 50).
        eps: Entropic regularisation ``ε > 0`` (the reference is ``W^ε``, ``dX = √ε dW``).
        cov: ``"diagonal"`` (``S_k`` diagonal; paper default) or ``"full"`` (``S_k = O_k diag O_kᵀ``, learnt
            rotation).
        s_init: Initial ``S_k = s_init·I`` (paper: 0.1 by default, 1.0 on the EOT benchmark).

    Raises:
        ValueError: For ``dim``/``n_components`` below 1, a bad ``eps``/``s_init`` or an unknown ``cov``.
    """

    def __init__(
        self,
        dim: int,
        n_components: int = 50,
        eps: float = 1.0,
        *,
        cov: Literal["diagonal", "full"] = "diagonal",
        s_init: float = 0.1,
    ) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("n_components", n_components)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        if cov not in ("diagonal", "full"):
            raise ValueError(f"cov must be 'diagonal' or 'full'; got {cov!r}")
        if isinstance(s_init, bool) or not isinstance(s_init, (int, float)) or not s_init > 0:
            raise ValueError(f"s_init must be a float > 0; got {s_init!r}")
        self.dim, self.n_components, self.eps, self.cov_type = dim, n_components, _check_eps(eps), cov
        self.s_init = float(s_init)
        self.log_alpha_raw = nn.Parameter(torch.full((n_components,), self.eps * math.log(1.0 / n_components)))
        self.r = nn.Parameter(torch.randn(n_components, dim))
        self.log_s = nn.Parameter(torch.full((n_components, dim), math.log(float(s_init))))
        if cov == "full":
            # O_k = exp(W_k − W_kᵀ) (skew-symmetric generator; W = 0 gives O = I)
            self.rotation_raw = nn.Parameter(torch.zeros(n_components, dim, dim))

    @property
    def config(self) -> dict[str, object]:
        """Constructor arguments (``build_network("light_sb", **config)`` rebuilds the architecture)."""
        return {"dim": self.dim, "n_components": self.n_components, "eps": self.eps, "cov": self.cov_type,
                "s_init": self.s_init}

    # ------------------------------------------------------------------ parameters
    def init_means(self, y: Tensor) -> None:
        """Set ``r_k`` to ``K`` target samples (the paper's initialisation).

        Args:
            y: ``(K, D)`` samples of ``p1``.
        """
        self._check_x(y, "y")
        if y.shape[0] != self.n_components:
            raise ValueError(f"init_means needs exactly K={self.n_components} samples; got {y.shape[0]}")
        with torch.no_grad():
            self.r.copy_(y.to(self.r))

    @property
    def log_alpha(self) -> Tensor:
        """``log α_k = a_k / ε``, shape ``(K,)``."""
        return self.log_alpha_raw / self.eps

    def rotations(self) -> Tensor | None:
        """``O_k`` of shape ``(K, D, D)`` (``None`` for diagonal ``S``)."""
        if self.cov_type == "diagonal":
            return None
        w = self.rotation_raw
        return torch.linalg.matrix_exp(w - w.transpose(-1, -2))

    def S(self) -> Tensor:
        """``S_k`` as dense ``(K, D, D)`` matrices."""
        lam = self.log_s.exp()
        rot = self.rotations()
        if rot is None:
            return torch.diag_embed(lam)
        return rot @ torch.diag_embed(lam) @ rot.transpose(-1, -2)

    def _rotate(self, x: Tensor) -> Tensor:
        """``O_kᵀ x`` for every component: ``(B, D) -> (B, K, D)`` (a broadcast view for diagonal ``S``)."""
        rot = self.rotations()
        if rot is None:
            return x[:, None, :].expand(-1, self.n_components, -1)
        return torch.einsum("kde,bd->bke", rot, x)

    def _rotated_r(self) -> Tensor:
        rot = self.rotations()
        return self.r if rot is None else torch.einsum("kde,kd->ke", rot, self.r)

    def _unrotate(self, v: Tensor) -> Tensor:
        """``O_k v_k``: ``(B, K, D) -> (B, K, D)``."""
        rot = self.rotations()
        return v if rot is None else torch.einsum("kde,bke->bkd", rot, v)

    def _check_x(self, x: object, name: str) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a tensor of shape (B, {self.dim}); got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (B, {self.dim}) (this LightSB has dim={self.dim}); "
                             f"got {tuple(x.shape)}")
        return x

    # ------------------------------------------------------------------ potentials and objective
    def _log_c_terms(self, x: Tensor) -> Tensor:
        """``log α_k + (xᵀS_kx + 2r_kᵀx)/(2ε)``, shape ``(B, K)``."""
        xr = self._rotate(x)  # O_kᵀ x
        lam = self.log_s.exp()
        quad = (xr * xr * lam).sum(-1)
        lin = (xr * self._rotated_r()).sum(-1)
        return self.log_alpha + (quad + 2 * lin) / (2 * self.eps)

    def log_c(self, x: Tensor) -> Tensor:
        """``log c_θ(x)``, shape ``(B,)``."""
        return torch.logsumexp(self._log_c_terms(self._check_x(x, "x")), dim=-1)

    def log_v(self, y: Tensor) -> Tensor:
        """``log v_θ(y) = log Σ_k α_k N(y | r_k, εS_k)``, shape ``(B,)``."""
        y = self._check_x(y, "y")
        lam = self.eps * self.log_s.exp()  # eigenvalues of εS_k
        d = self._rotate(y) - self._rotated_r()
        log_n = -0.5 * ((d * d) / lam).sum(-1) - 0.5 * torch.log(lam).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return torch.logsumexp(self.log_alpha + log_n, dim=-1)

    def loss(self, x0: Tensor, x1: Tensor) -> Tensor:
        """The Light SB objective ``mean log c_θ(x0) − mean log v_θ(x1)`` (paper eq. 14; unpaired samples).

        Args:
            x0: ``(B0, D)`` source samples.
            x1: ``(B1, D)`` target samples (need not be paired with ``x0``).

        Returns:
            Scalar loss.
        """
        return self.log_c(x0).mean() - self.log_v(x1).mean()

    def forward(self, x0: Tensor, x1: Tensor) -> Tensor:
        """:meth:`loss` (so an engine wrapper such as DDP sees the training computation as ``forward``)."""
        return self.loss(x0, x1)

    # ------------------------------------------------------------------ conditional plan
    def plan(self, x: Tensor) -> LightSBPlan:
        """The conditional plan ``π_θ(·|x)`` (paper Prop. 3.2) at a batch of ``x``."""
        x = self._check_x(x, "x")
        logw = torch.log_softmax(self._log_c_terms(x), dim=-1)
        means = self.r[None] + torch.einsum("kde,be->bkd", self.S(), x)
        return LightSBPlan(log_weights=logw, means=means, covs=self.eps * self.S())

    def sample_plan(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``y ~ π_θ(·|x)`` for every row of ``x`` (per-sample noise: row ``i`` depends on (seed, i)).

        Args:
            x: ``(B, D)`` sources.
            generator: Random generator.

        Returns:
            ``(B, D)`` targets.
        """
        x = self._check_x(x, "x")
        u = randn_per_sample((x.shape[0], self.dim + 1), generator=generator, device=x.device, dtype=torch.float64)
        logw = torch.log_softmax(self._log_c_terms(x), dim=-1)
        # component by inverse CDF of the first uniform-transformed normal (one draw per sample)
        cdf = torch.cumsum(logw.detach().double().exp(), dim=-1)
        unif = torch.special.ndtr(u[:, 0])[:, None].to(cdf)
        k = torch.searchsorted(cdf, unif * cdf[:, -1:]).squeeze(-1).clamp_max(self.n_components - 1)
        xi = u[:, 1:].to(x.dtype)
        lam = self.log_s.exp()[k]  # (B, D)
        xr = self._rotate(x)[torch.arange(x.shape[0], device=x.device), k]  # O_kᵀ x
        noise = torch.sqrt(self.eps * lam) * xi
        y_rot = self._rotated_r()[k] + lam * xr + noise  # O_kᵀ(r_k + S_k x) + √(εΛ) ξ
        rot = self.rotations()
        return y_rot if rot is None else torch.einsum("bde,be->bd", rot[k], y_rot)

    def sample_at_time(self, x: Tensor, t: float | Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Exact SB marginal at time ``t`` from ``x``: ``t y + (1−t) x + √(εt(1−t)) ξ``, ``y ~ π_θ(·|x)``.

        Args:
            x: ``(B, D)`` sources.
            t: Time in ``[0, 1]`` (a float or a ``(B,)`` tensor).
            generator: Random generator (``y`` is drawn first, then ``ξ``).

        Returns:
            ``(B, D)`` samples of ``X_t | X_0 = x``.
        """
        x = self._check_x(x, "x")
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1)
        if bool(((tt < 0) | (tt > 1)).any()):
            raise ValueError(f"t must lie in [0, 1]; got {t!r}")
        y = self.sample_plan(x, generator=generator)
        xi = randn_per_sample(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return tt * y + (1 - tt) * x + torch.sqrt(self.eps * tt * (1 - tt)) * xi

    # ------------------------------------------------------------------ drift
    def drift(self, x: Tensor, t: float | Tensor) -> Tensor:
        """The SB drift ``g_θ(x, t)`` (paper eq. 17) in closed form, for ``t ∈ [0, 1)``.

        Args:
            x: ``(B, D)`` states.
            t: Time(s) in ``[0, 1)``: a float or a ``(B,)`` tensor.

        Returns:
            ``(B, D)`` drift of ``dX = g dt + √ε dW``.
        """
        x = self._check_x(x, "x")
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1)
        if tt.numel() == 1:
            tt = tt.expand(x.shape[0])
        if tt.shape != (x.shape[0],):
            raise ValueError(f"t must be a float or a ({x.shape[0]},) tensor; got shape {tuple(tt.shape)}")
        if bool(((tt < 0) | (tt >= 1)).any()):
            raise ValueError("the Light SB drift is defined for t in [0, 1) (it diverges at t = 1); end the "
                             "grid of an Euler–Maruyama run at t = 1 (the drift is not evaluated there)")
        eps = self.eps
        one_m = (1 - tt)[:, None, None]  # (B, 1, 1)
        lam = self.log_s.exp()[None]  # (1, K, D) eigenvalues of S_k
        a = tt[:, None, None] / (eps * one_m) + 1.0 / (eps * lam)  # eigenvalues of A_k in the O_k frame
        r_rot = self._rotated_r()[None]  # (1, K, D)
        c = self._rotate(x) / (eps * one_m) + r_rot / (eps * lam)
        m_rot = c / a  # A_k⁻¹ c_k in the O_k frame
        logits = (self.log_alpha[None] - 0.5 * torch.log(lam).sum(-1) - 0.5 * torch.log(a).sum(-1)
                  - (r_rot * r_rot / lam).sum(-1) / (2 * eps) + 0.5 * (c * m_rot).sum(-1))
        w = torch.softmax(logits, dim=-1)  # (B, K)
        mean = torch.einsum("bk,bkd->bd", w, self._unrotate(m_rot))
        return (mean - x) / (1 - tt)[:, None]


class LightSBDrift(nn.Module):
    """The Light SB drift as a network ``net(x_t, t) -> g_θ(x_t, t)`` (wrapped by :func:`light_sb_field`).

    States of any per-sample shape with ``dim`` entries (e.g. ``(1, 8, 8)`` images for ``dim = 64``) are
    flattened for the model and reshaped back.

    Args:
        model: A :class:`LightSB` potential.
    """

    def __init__(self, model: LightSB) -> None:
        super().__init__()
        if not isinstance(model, LightSB):
            raise TypeError(f"model must be a LightSB; got {type(model).__name__}")
        self.model = model

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        """``g_θ(x_t, t)`` computed in the model's dtype, returned in ``x_t``'s."""
        p = self.model.r
        flat = x_t.reshape(x_t.shape[0], -1) if x_t.ndim > 2 else x_t
        return self.model.drift(flat.to(p.dtype), t.to(p.dtype)).to(x_t.dtype).reshape(x_t.shape)


def light_sb_field(model: LightSB) -> Field:
    """The Light SB drift as a genlab Field: kind ``"drift_fwd"`` on ``BrownianBridge(√ε)`` with ``eps = ε/2``.

    genlab's SDE samplers integrate ``dX = b_F dt + √(2 ε_SI) dW``; Light SB's process is
    ``dX = g_θ dt + √ε dW``, hence ``ε_SI = ε/2``. Sample with ``genlab.sample(field, "euler_maruyama", steps=N,
    x_init=x0)``; the drift is never evaluated at ``t = 1``.

    Args:
        model: A :class:`LightSB` potential.

    Returns:
        The :class:`~genlab.models.Field`.
    """
    if not isinstance(model, LightSB):
        raise TypeError(f"model must be a LightSB; got {type(model).__name__}")
    return Field(LightSBDrift(model), BrownianBridge(math.sqrt(model.eps)), "drift_fwd", eps=model.eps / 2)


register_network("light_sb", LightSB)
