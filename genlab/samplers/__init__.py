"""Interchangeable samplers: one signature, grids from :mod:`genlab.samplers.grids`, NFE counted."""

from genlab.samplers import ode
from genlab.samplers.adapters import (
    DiffusersSampler,
    DiffusersUNetNet,
    KDiffusionSampler,
    load_diffusers_field,
)
from genlab.samplers.adaptive import ADAPTIVE_METHODS, Dopri5
from genlab.samplers.api import sample
from genlab.samplers.base import (
    CAPABILITIES,
    CountingField,
    Prediction,
    Sampler,
    SampleResult,
    StepInfo,
    capabilities,
)
from genlab.samplers.bdia import BDIA, BDIALatent, EditResult, TransferMap, bdia_edit
from genlab.samplers.dbim import DBIM, DBIMHighOrder, DDBMHeun, dbim_grid, ddbm_grid
from genlab.samplers.deis import DEISTAB, IPNDM, DEISLogRho, DEISRhoAB, DEISRhoRK
from genlab.samplers.dpm_solver import (
    DPMSolverPP1S,
    DPMSolverPP2M,
    DPMSolverPP2S,
    DPMSolverPP3M,
    DPMSolverPPMultistep,
)
from genlab.samplers.dpm_solver_v3 import EMS, DPMSolverV3, compute_statistics, gaussian_statistics
from genlab.samplers.grids import GRIDS, explicit, karras, log_snr, make_grid, power, uniform
from genlab.samplers.implicit import DDIM, IADB
from genlab.samplers.likelihood import LikelihoodResult, log_likelihood
from genlab.samplers.multistep import MultistepTable, MultistepTableSampler, TableSampler
from genlab.samplers.ode import RK4, ButcherTableau, Euler, Heun, Midpoint, RungeKutta
from genlab.samplers.registry import (
    ALIASES,
    SAMPLERS,
    SamplerSupport,
    available_samplers,
    get_sampler,
    register_prefix,
    register_sampler,
    sampler_support,
)
from genlab.samplers.sde import EDMChurn, EulerMaruyama, StochasticHeun, diffusion_coefficient
from genlab.samplers.searched import SearchedSampler, SolverPreset, load_preset, shipped_presets
from genlab.samplers.semilinear import SemilinearGrid, semilinear_grid, time_of_lam
from genlab.samplers.steps import STEPS, DDIMStep, DDPMStep, EulerStep, Step, make_step
from genlab.samplers.unipc import UniPC
from genlab.utils import NoiseStream

__all__ = [
    "ADAPTIVE_METHODS",
    "ALIASES",
    "BDIA",
    "CAPABILITIES",
    "DBIM",
    "DDIM",
    "DEISTAB",
    "EMS",
    "GRIDS",
    "IADB",
    "IPNDM",
    "RK4",
    "SAMPLERS",
    "STEPS",
    "BDIALatent",
    "ButcherTableau",
    "CountingField",
    "DBIMHighOrder",
    "DDBMHeun",
    "DDIMStep",
    "DDPMStep",
    "DEISLogRho",
    "DEISRhoAB",
    "DEISRhoRK",
    "DPMSolverPP1S",
    "DPMSolverPP2M",
    "DPMSolverPP2S",
    "DPMSolverPP3M",
    "DPMSolverPPMultistep",
    "DPMSolverV3",
    "DiffusersSampler",
    "DiffusersUNetNet",
    "Dopri5",
    "EDMChurn",
    "EditResult",
    "Euler",
    "EulerMaruyama",
    "EulerStep",
    "Heun",
    "KDiffusionSampler",
    "LikelihoodResult",
    "Midpoint",
    "MultistepTable",
    "MultistepTableSampler",
    "NoiseStream",
    "Prediction",
    "RungeKutta",
    "SampleResult",
    "Sampler",
    "SamplerSupport",
    "SearchedSampler",
    "SemilinearGrid",
    "SolverPreset",
    "Step",
    "StepInfo",
    "StochasticHeun",
    "TableSampler",
    "TransferMap",
    "UniPC",
    "available_samplers",
    "bdia_edit",
    "capabilities",
    "compute_statistics",
    "dbim_grid",
    "ddbm_grid",
    "diffusion_coefficient",
    "explicit",
    "gaussian_statistics",
    "get_sampler",
    "karras",
    "load_diffusers_field",
    "load_preset",
    "log_likelihood",
    "log_snr",
    "make_grid",
    "make_step",
    "ode",
    "power",
    "register_prefix",
    "register_sampler",
    "sample",
    "sampler_support",
    "semilinear_grid",
    "shipped_presets",
    "time_of_lam",
    "uniform",
]
