"""Interpolants and bridges: schedules, the Interpolant contract, named constructors, simplex and multimarginal paths.

The bottom layer: nothing here imports the rest of genlab except ``genlab.utils``. The network wrapper of a
multimarginal model (``PathConditionedNet``) and its field (``MultimarginalField``) live in ``genlab.models``.
"""

from genlab.interpolants.discrete import DiscreteVPSchedule
from genlab.interpolants.fourier_path import FourierPath
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
from genlab.interpolants.interpolant import (
    CAPABILITIES,
    DRIFT_SIGNS,
    KINDS,
    MULTI_HEAD_KINDS,
    Interpolant,
    PathSample,
    Semilinear,
)
from genlab.interpolants.multimarginal import Multimarginal, MultimarginalSample, RestrictedMultimarginal
from genlab.interpolants.presets import (
    INTERPOLANTS,
    AlphaBlending,
    BrownianBridge,
    DiffusionBridge,
    MultimarginalEdge,
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
from genlab.interpolants.simplex import (
    EdgePath,
    GammaPath,
    PolylinePath,
    SimplexPath,
    SimplexSchedule,
    check_simplex,
)

__all__ = [
    "CAPABILITIES",
    "DRIFT_SIGNS",
    "GAMMAS",
    "INTERPOLANTS",
    "KINDS",
    "MULTI_HEAD_KINDS",
    "SCHEDULES",
    "AlphaBlending",
    "BSquaredGamma",
    "BrownianBridge",
    "BrownianGamma",
    "Coeffs",
    "DDBMSchedule",
    "DiffusionBridge",
    "DiscreteVPSchedule",
    "EdgePath",
    "EncoderDecoderSchedule",
    "FourierPath",
    "Gamma",
    "GammaPath",
    "GammaValues",
    "Interpolant",
    "LinearSchedule",
    "LinearVPSchedule",
    "Multimarginal",
    "MultimarginalEdge",
    "MultimarginalSample",
    "PathSample",
    "PolylinePath",
    "RectifiedFlow",
    "RestrictedMultimarginal",
    "Schedule",
    "Semilinear",
    "SimplexPath",
    "SimplexSchedule",
    "SineSquaredGamma",
    "StochasticInterpolant",
    "TrigSchedule",
    "VEDiffusion",
    "VESchedule",
    "VPDiffusion",
    "VPSchedule",
    "ZeroGamma",
    "build_interpolant",
    "check_simplex",
    "make_gamma",
    "make_schedule",
]
