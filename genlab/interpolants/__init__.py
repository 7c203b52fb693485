"""Interpolants and bridges: schedules, the Interpolant contract, named constructors, multimarginal paths."""

from genlab.interpolants.discrete import DiscreteVPSchedule
from genlab.interpolants.gammas import (
    GAMMAS,
    BrownianGamma,
    BSquaredGamma,
    Gamma,
    GammaValues,
    SineSquaredGamma,
    ZeroGamma,
    make_gamma,
)
from genlab.interpolants.interpolant import KINDS, Interpolant, PathSample, Semilinear
from genlab.interpolants.multimarginal import (
    EdgePath,
    GammaPath,
    Multimarginal,
    MultimarginalSample,
    PathConditionedNet,
    PolylinePath,
    RestrictedMultimarginal,
    SimplexPath,
    SimplexSchedule,
    check_simplex,
)
from genlab.interpolants.presets import (
    INTERPOLANTS,
    AlphaBlending,
    BrownianBridge,
    DiffusionBridge,
    RectifiedFlow,
    StochasticInterpolant,
    VEDiffusion,
    VPDiffusion,
    build_interpolant,
)
from genlab.interpolants.schedules import (
    SCHEDULES,
    Coeffs,
    DDBMSchedule,
    EncoderDecoderSchedule,
    LinearSchedule,
    LinearVPSchedule,
    Schedule,
    TrigSchedule,
    VESchedule,
    VPSchedule,
    make_schedule,
)

__all__ = [
    "DiscreteVPSchedule",
    "GAMMAS", "BrownianGamma", "BSquaredGamma", "Gamma", "GammaValues", "SineSquaredGamma", "ZeroGamma",
    "make_gamma", "KINDS", "Interpolant", "PathSample", "Semilinear", "INTERPOLANTS", "AlphaBlending",
    "BrownianBridge", "DiffusionBridge", "RectifiedFlow", "StochasticInterpolant", "VEDiffusion", "VPDiffusion",
    "build_interpolant", "SCHEDULES", "Coeffs", "DDBMSchedule", "EncoderDecoderSchedule", "LinearSchedule",
    "LinearVPSchedule", "Schedule", "EdgePath", "GammaPath", "Multimarginal", "MultimarginalSample",
    "PathConditionedNet", "PolylinePath", "RestrictedMultimarginal", "SimplexPath", "SimplexSchedule", "check_simplex", "TrigSchedule", "VESchedule", "VPSchedule", "make_schedule",
]
