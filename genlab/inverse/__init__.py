"""Inverse problems ``y = A(x) + n`` with diffusion/flow priors: operators, priors, guidance methods and ``solve``.

Example:
    >>> from genlab.inverse import DiffusionPrior, InverseProblem, solve, operators  # doctest: +SKIP
    >>> problem = InverseProblem(operators.Inpainting(mask), y, sigma=0.05)          # doctest: +SKIP
    >>> res = solve(problem, DiffusionPrior(field), "pigdm", steps=100, n_samples=8, seed=0)  # doctest: +SKIP

Methods (``available_methods()``): ``dps`` (faithful / score mode), ``pigdm``, ``dds``, ``stsl`` (latent
priors), ``dreamguider`` (no network backprop; reconstructed), ``pnp_hvae`` (an iterative solver on an
:class:`HVAEPrior`). ``compatible_methods(problem, prior)`` lists those
that can run on a given pair; ``solve`` raises a ``ValueError`` naming what is missing otherwise.
"""

from genlab.inverse import methods, operators, testing
from genlab.inverse.guided import GuidedField
from genlab.inverse.methods import (
    DDRM,
    DDS,
    DPS,
    STSL,
    DiffPIR,
    DiffuseAugment,
    DoGScale,
    Dreamguider,
    Guidance,
    IterativeOutput,
    IterativeSolver,
    MomentMatching,
    PiGDM,
    PnPHVAE,
    SolveContext,
)
from genlab.inverse.operators import (
    SVD,
    ComposedOperator,
    CompressedSensing,
    ConvBlur,
    DenseOperator,
    FFTBlur,
    GaussianNoise,
    Inpainting,
    Operator,
    PhaseRetrieval,
    SuperResolution,
    compose,
    gaussian_kernel,
    motion_kernel,
)
from genlab.inverse.priors import DiffusionPrior, GMMDenoiser, HVAEPrior, LatentPrior
from genlab.inverse.problem import InverseProblem
from genlab.inverse.registry import (
    METHODS,
    available_methods,
    compatible_methods,
    get_method,
    missing_requirements,
    register_method,
)
from genlab.inverse.solve import SolveResult, solve

__all__ = [
    "DDRM",
    "DDS",
    "DPS",
    "METHODS",
    "STSL",
    "SVD",
    "ComposedOperator",
    "CompressedSensing",
    "ConvBlur",
    "DenseOperator",
    "DiffPIR",
    "DiffuseAugment",
    "DiffusionPrior",
    "DoGScale",
    "Dreamguider",
    "FFTBlur",
    "GMMDenoiser",
    "GaussianNoise",
    "Guidance",
    "GuidedField",
    "HVAEPrior",
    "Inpainting",
    "InverseProblem",
    "IterativeOutput",
    "IterativeSolver",
    "LatentPrior",
    "MomentMatching",
    "Operator",
    "PhaseRetrieval",
    "PiGDM",
    "PnPHVAE",
    "SolveContext",
    "SolveResult",
    "SuperResolution",
    "available_methods",
    "compatible_methods",
    "compose",
    "gaussian_kernel",
    "get_method",
    "methods",
    "missing_requirements",
    "motion_kernel",
    "operators",
    "register_method",
    "solve",
    "testing",
]
