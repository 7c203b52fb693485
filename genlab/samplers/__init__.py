"""Interchangeable samplers: one signature, grids from :mod:`genlab.samplers.grids`, NFE counted."""

from genlab.samplers import ode
from genlab.samplers.adapters import DiffusersSampler, DiffusersUNetNet, KDiffusionSampler, load_diffusers_field
from genlab.samplers.adaptive import ADAPTIVE_METHODS, Dopri5
from genlab.samplers.dbim import DBIM, DBIMHighOrder, DDBMHeun, dbim_grid, ddbm_grid
from genlab.samplers.implicit import DDIM, IADB
from genlab.samplers.likelihood import LikelihoodResult, log_likelihood
from genlab.samplers.noise import NoiseStream
from genlab.samplers.sde import EDMChurn, EulerMaruyama, StochasticHeun, diffusion_coefficient
from genlab.samplers.bdia import BDIA, BDIALatent, EditResult, TransferMap, bdia_edit
from genlab.samplers.deis import DEISTAB, IPNDM, DEISLogRho, DEISRhoAB, DEISRhoRK
from genlab.samplers.dpm_solver import (
    DPMSolverPP1S,
    DPMSolverPP2M,
    DPMSolverPP2S,
    DPMSolverPP3M,
    DPMSolverPPMultistep,
)
from genlab.samplers.semilinear import SemilinearGrid, semilinear_grid, time_of_lam
from genlab.samplers.api import sample
from genlab.samplers.base import (
    CAPABILITIES,
    CountingField,
    Prediction,
    SampleResult,
    Sampler,
    StepInfo,
    capabilities,
)
from genlab.samplers.grids import GRIDS, explicit, karras, log_snr, make_grid, power, uniform
from genlab.samplers.ode import RK4, ButcherTableau, Euler, Heun, Midpoint, RungeKutta
from genlab.samplers.registry import (
    SAMPLERS,
    available_samplers,
    get_sampler,
    register_prefix,
    register_sampler,
)

__all__ = [
    "DiffusersSampler", "DiffusersUNetNet", "KDiffusionSampler", "load_diffusers_field",
    "CAPABILITIES", "CountingField", "GRIDS", "Prediction", "SAMPLERS", "SampleResult", "Sampler", "StepInfo",
    "available_samplers", "capabilities", "explicit", "get_sampler", "karras", "log_snr", "make_grid", "power",
    "register_prefix", "register_sampler", "sample", "uniform", "ode", "RK4", "ButcherTableau", "Euler", "Heun",
    "Midpoint", "RungeKutta",
    "ADAPTIVE_METHODS", "Dopri5", "DBIM", "DBIMHighOrder", "DDBMHeun", "dbim_grid", "ddbm_grid", "DDIM", "IADB",
    "LikelihoodResult", "log_likelihood", "NoiseStream", "EDMChurn", "EulerMaruyama", "StochasticHeun",
    "diffusion_coefficient",
    "BDIA", "BDIALatent", "EditResult", "TransferMap", "bdia_edit", "DEISTAB", "IPNDM", "DEISLogRho", "DEISRhoAB",
    "DEISRhoRK", "DPMSolverPP1S", "DPMSolverPP2M", "DPMSolverPP2S", "DPMSolverPP3M", "DPMSolverPPMultistep",
    "SemilinearGrid", "semilinear_grid", "time_of_lam",
]
