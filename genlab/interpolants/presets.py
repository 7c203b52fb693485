"""Named constructors: reach every family without knowing its formulas."""

from __future__ import annotations

from genlab.interpolants.gammas import Gamma
from genlab.interpolants.interpolant import Interpolant
from genlab.interpolants.schedules import (
    DDBMSchedule,
    EncoderDecoderSchedule,
    LinearSchedule,
    LinearVPSchedule,
    TrigSchedule,
    VESchedule,
    VPSchedule,
)

__all__ = [
    "INTERPOLANTS",
    "AlphaBlending",
    "BrownianBridge",
    "DiffusionBridge",
    "MultimarginalEdge",
    "RectifiedFlow",
    "StochasticInterpolant",
    "VEDiffusion",
    "VPDiffusion",
    "build_interpolant",
]

_PATHS = {"linear": LinearSchedule, "trig": TrigSchedule}


def StochasticInterpolant(
    path: str = "linear",
    *,
    gamma: str | Gamma = "brownian",
    a: float = 1.0,
    source: str | None = None,
    conditional_source: bool = False,
) -> Interpolant:
    """A stochastic interpolant ``x_t = α x0 + β x1 + γ z`` (Albergo, Boffi & Vanden-Eijnden 2023, Def. 2.1).

    Args:
        path: ``"linear"`` (α = 1−t, β = t), ``"trig"`` or ``"encoder-decoder"`` (fixes γ = sin²(πt)),
            ``"linear-vp"`` (one-sided only).
        gamma: γ family: ``brownian``, ``a-brownian``, ``bsquared``, ``sinesquared``, ``zero``.
        a: Scale of γ.
        source: ``"data"`` (two-sided, the default when γ ≢ 0) or ``"gaussian"`` (one-sided, needs γ = zero;
            the default when ``gamma="zero"``).
        conditional_source: The field is conditioned on a known x0 (data-dependent couplings with conditioning).

    Returns:
        The :class:`Interpolant`.
    """
    if path == "encoder-decoder":
        schedule = EncoderDecoderSchedule()
    elif path == "linear-vp":
        schedule = LinearVPSchedule()
    elif path in _PATHS:
        schedule = _PATHS[path](gamma, a=a)
    else:
        raise ValueError(f"unknown path {path!r}; choose 'linear', 'trig', 'encoder-decoder' or 'linear-vp'")
    if source is None:
        source = "gaussian" if not schedule.has_noise else "data"
    return Interpolant(schedule, source=source, conditional_source=conditional_source,
                       name=f"SI({path}, gamma={getattr(schedule.gamma_fn, 'name', gamma)}, {source})")


def RectifiedFlow(*, source: str = "gaussian", conditional_source: bool = False) -> Interpolant:
    """Rectified flow / conditional-OT flow matching: x_t = (1−t)x0 + t x1 (Liu et al. ICLR'23; Lipman et al. ICLR'23).

    Args:
        source: ``"gaussian"`` (generation) or ``"data"`` (transport between two data sets).
        conditional_source: With a data source, condition the field on x0.

    Returns:
        The :class:`Interpolant`.
    """
    return Interpolant(LinearSchedule("zero"), source=source, conditional_source=conditional_source,
                       name="RectifiedFlow")


def AlphaBlending(*, source: str = "gaussian") -> Interpolant:
    """IADB: x_α = (1−α)x0 + αx1 (Heitz, Belcour & Chambon, SIGGRAPH'23, eq. 1); D_θ ≈ E[x1 − x0 | x_α] is the
    ``velocity`` kind and the IADB loop (Alg. 4) is the implicit step with ω = 0.

    Args:
        source: ``"gaussian"`` or ``"data"`` (IADB blends any two densities).

    Returns:
        The :class:`Interpolant`.
    """
    return Interpolant(LinearSchedule("zero"), source=source, name="AlphaBlending")


def VPDiffusion(kind: str = "linear", *, beta_min: float = 0.1, beta_max: float = 20.0) -> Interpolant:
    """Variance-preserving diffusion as a one-sided interpolant (Song et al. ICLR'21; cosine: Nichol & Dhariwal '21).

    Args:
        kind: ``"linear"`` β-schedule or ``"cosine"``.
        beta_min: Linear schedule β_min (paper: 0.1).
        beta_max: Linear schedule β_max (paper: 20).

    Returns:
        The :class:`Interpolant`.
    """
    return Interpolant(VPSchedule(kind, beta_min=beta_min, beta_max=beta_max), name=f"VPDiffusion({kind})")


def VEDiffusion(*, sigma_min: float = 0.002, sigma_max: float = 80.0) -> Interpolant:
    """Variance-exploding diffusion x_t = x1 + σ(t)·x0 (Song et al. ICLR'21; EDM defaults σ ∈ [0.002, 80]).

    Args:
        sigma_min: Noise level at t = 1.
        sigma_max: Noise level at t = 0.

    Returns:
        The :class:`Interpolant`.
    """
    return Interpolant(VESchedule(sigma_min=sigma_min, sigma_max=sigma_max), name="VEDiffusion")


def DiffusionBridge(
    kind: str = "vp", *, beta_d: float = 2.0, beta_min: float = 0.1, sigma_max: float = 80.0
) -> Interpolant:
    """Denoising diffusion bridge from a known condition x0 to data x1 (DDBM, Zhou et al. ICLR'24).

    Args:
        kind: ``"vp"`` or ``"ve"``.
        beta_d: VP β_d (DDBM default 2).
        beta_min: VP β_min (DDBM default 0.1).
        sigma_max: VE σ_max = T (DDBM default 80).

    Returns:
        The :class:`Interpolant` (``source="data"``, ``conditional_source=True``).
    """
    schedule = DDBMSchedule(kind, beta_d=beta_d, beta_min=beta_min, sigma_max=sigma_max)
    return Interpolant(schedule, source="data", conditional_source=True, name=f"DiffusionBridge({kind})")


def BrownianBridge(sigma: float = 1.0, *, conditional_source: bool = False) -> Interpolant:
    """Brownian bridge x_t = (1−t)x0 + t x1 + σ√(t(1−t))z: the reference process of Schrödinger bridges
    (SB-CFM, Tong et al. 2023; DSBM, Shi et al. 2023; Light SB, Korotin et al. 2024). Pair it with an SB coupling.

    Args:
        sigma: Noise level σ (σ² = ε of the Wiener reference).
        conditional_source: Condition the field on x0.

    Returns:
        The :class:`Interpolant`.
    """
    if not sigma > 0:
        raise ValueError(f"BrownianBridge: sigma must be > 0, got {sigma}")
    return Interpolant(LinearSchedule("a-brownian", a=float(sigma) ** 2), source="data",
                       conditional_source=conditional_source, name=f"BrownianBridge({sigma})")


def MultimarginalEdge(K: int, *, edge_prob: float = 0.0, start: int = 0, end: int = 1) -> Interpolant:
    """A multimarginal model on Δ^K (Albergo, Boffi, Lindsey & Vanden-Eijnden, ICLR'24) seen along the edge
    e_start → e_end: ``Multimarginal(K, edge_prob=...).restrict(EdgePath(start, end, K))``.

    This is what a run's config names (``interpolant: {name: multimarginal, K: 3, edge_prob: 0.5}``): the
    multimarginal objective trains on the whole simplex (``.mm``), and the edge is the default path for sampling
    (Gaussian → marginal 1); any other path is one ``MultimarginalField.on_path`` away.

    Args:
        K: Number of data marginals.
        edge_prob: Probability of an edge draw when sampling the simplex for training.
        start: Start vertex of the default path.
        end: End vertex of the default path.

    Returns:
        The :class:`~genlab.interpolants.RestrictedMultimarginal`.
    """
    from genlab.interpolants.multimarginal import Multimarginal
    from genlab.interpolants.simplex import EdgePath

    return Multimarginal(K, edge_prob=edge_prob).restrict(EdgePath(start, end, K))


INTERPOLANTS = {
    "stochastic": StochasticInterpolant,
    "rectified_flow": RectifiedFlow,
    "alpha_blending": AlphaBlending,
    "vp": VPDiffusion,
    "ve": VEDiffusion,
    "diffusion_bridge": DiffusionBridge,
    "brownian_bridge": BrownianBridge,
    "multimarginal": MultimarginalEdge,
}


def build_interpolant(name: str, **kwargs) -> Interpolant:
    """Build an interpolant from a name in :data:`INTERPOLANTS` and keyword arguments (configs use this).

    Args:
        name: Constructor name.
        **kwargs: Its arguments.

    Returns:
        The :class:`Interpolant`.
    """
    if name not in INTERPOLANTS:
        raise ValueError(f"unknown interpolant {name!r}; choose one of {sorted(INTERPOLANTS)}")
    try:
        return INTERPOLANTS[name](**kwargs)
    except TypeError as err:
        raise TypeError(f"bad arguments for interpolant {name!r}: {err}") from None
