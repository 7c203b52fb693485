"""Inverse-problem methods: the :class:`Guidance` / :class:`IterativeSolver` contracts and one module per method."""

from genlab.inverse.methods.augment import AUGMENT_OPS, AugmentParams, DiffuseAugment
from genlab.inverse.methods.base import (
    CountedModel,
    Guidance,
    IterativeOutput,
    IterativeSolver,
    SolveContext,
    condition_prediction,
    solve_gram,
)
from genlab.inverse.methods.dds import DDS
from genlab.inverse.methods.dps import DPS
from genlab.inverse.methods.dreamguider import DoGScale, Dreamguider, time_factor
from genlab.inverse.methods.hutchinson import ESTIMATORS, PROBES, draw_probe, hutchinson_trace
from genlab.inverse.methods.pigdm import PiGDM
from genlab.inverse.methods.stsl import STSL
from genlab.inverse.methods.transitions import DDIM, DDPM, TRANSITIONS, EulerODE, Transition, make_transition
from genlab.inverse.streams import SampleStreams, rand_per_sample, randn_like

__all__ = [
    "AUGMENT_OPS",
    "DDIM",
    "DDPM",
    "DDS",
    "DPS",
    "ESTIMATORS",
    "PROBES",
    "STSL",
    "TRANSITIONS",
    "AugmentParams",
    "CountedModel",
    "DiffuseAugment",
    "DoGScale",
    "Dreamguider",
    "EulerODE",
    "Guidance",
    "IterativeOutput",
    "IterativeSolver",
    "PiGDM",
    "SampleStreams",
    "SolveContext",
    "Transition",
    "condition_prediction",
    "draw_probe",
    "hutchinson_trace",
    "make_transition",
    "rand_per_sample",
    "randn_like",
    "solve_gram",
    "time_factor",
]
