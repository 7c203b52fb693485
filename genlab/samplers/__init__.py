"""Interchangeable samplers: one signature, grids from :mod:`genlab.samplers.grids`, NFE counted."""

from genlab.samplers import ode
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
    "CAPABILITIES", "CountingField", "GRIDS", "Prediction", "SAMPLERS", "SampleResult", "Sampler", "StepInfo",
    "available_samplers", "capabilities", "explicit", "get_sampler", "karras", "log_snr", "make_grid", "power",
    "register_prefix", "register_sampler", "sample", "uniform", "ode", "RK4", "ButcherTableau", "Euler", "Heun",
    "Midpoint", "RungeKutta",
]
