"""Inverse-problem methods: the :class:`Guidance` / :class:`IterativeSolver` contracts and one module per method."""

from genlab.inverse.methods.augment import AUGMENT_OPS, AugmentParams, DiffuseAugment
from genlab.inverse.methods.base import (
    PLACEMENTS,
    SAMPLER_ALIASES,
    CountedModel,
    Guidance,
    GuideOutput,
    IterativeOutput,
    IterativeSolver,
    SolveContext,
    condition_prediction,
    resolve_sampler,
    solve_gram,
)
from genlab.inverse.methods.ddrm import DDRM
from genlab.inverse.methods.dds import DDS
from genlab.inverse.methods.diffpir import DiffPIR
from genlab.inverse.methods.dps import DPS
from genlab.inverse.methods.dreamguider import DoGScale, Dreamguider, time_factor
from genlab.inverse.methods.hutchinson import ESTIMATORS, PROBES, draw_probe, hutchinson_trace
from genlab.inverse.methods.moment_matching import (
    MomentMatching,
    estimate_data_variance,
    tweedie_data_variance,
)
from genlab.inverse.methods.pigdm import PiGDM
from genlab.inverse.methods.pnp_hvae import PnPHVAE, latent_step
from genlab.inverse.methods.smc import (
    TDS,
    MCGdiff,
    SMCOutput,
    SMCSolver,
    effective_sample_size,
    systematic_resample,
)
from genlab.inverse.methods.stsl import STSL

__all__ = [
    "AUGMENT_OPS",
    "DDRM",
    "DDS",
    "DPS",
    "ESTIMATORS",
    "PLACEMENTS",
    "PROBES",
    "SAMPLER_ALIASES",
    "STSL",
    "TDS",
    "AugmentParams",
    "CountedModel",
    "DiffPIR",
    "DiffuseAugment",
    "DoGScale",
    "Dreamguider",
    "Guidance",
    "GuideOutput",
    "IterativeOutput",
    "IterativeSolver",
    "MCGdiff",
    "MomentMatching",
    "PiGDM",
    "PnPHVAE",
    "SMCOutput",
    "SMCSolver",
    "SolveContext",
    "condition_prediction",
    "draw_probe",
    "effective_sample_size",
    "estimate_data_variance",
    "hutchinson_trace",
    "latent_step",
    "resolve_sampler",
    "solve_gram",
    "systematic_resample",
    "time_factor",
    "tweedie_data_variance",
]
