"""genlab: a PyTorch workbench for generative modeling and sampling.

Top-level names are imported lazily so ``import genlab`` stays fast (diffusers is only loaded by the U-Net and the
adapters that need it).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, tuple[str, str]] = {
    # interpolants
    "Interpolant": ("genlab.interpolants", "Interpolant"),
    "StochasticInterpolant": ("genlab.interpolants", "StochasticInterpolant"),
    "RectifiedFlow": ("genlab.interpolants", "RectifiedFlow"),
    "AlphaBlending": ("genlab.interpolants", "AlphaBlending"),
    "VPDiffusion": ("genlab.interpolants", "VPDiffusion"),
    "VEDiffusion": ("genlab.interpolants", "VEDiffusion"),
    "DiffusionBridge": ("genlab.interpolants", "DiffusionBridge"),
    "BrownianBridge": ("genlab.interpolants", "BrownianBridge"),
    "Multimarginal": ("genlab.interpolants", "Multimarginal"),
    # fields and sampling
    "Field": ("genlab.models.field", "Field"),
    "sample": ("genlab.samplers.api", "sample"),
    "get_sampler": ("genlab.samplers.registry", "get_sampler"),
    "available_samplers": ("genlab.samplers.registry", "available_samplers"),
    "load_diffusers_field": ("genlab.samplers", "load_diffusers_field"),
    # training
    "train": ("genlab.training", "train"),
    "evaluate": ("genlab.training", "evaluate"),
    "load_run": ("genlab.training", "load_run"),
    "export_run": ("genlab.training.export", "export_run"),
    # data and metrics
    "get_dataset": ("genlab.data", "get_dataset"),
    "get_split": ("genlab.data", "get_split"),
    "MNIST5kDataset": ("genlab.data", "MNIST5kDataset"),
    "MNIST5kPairs": ("genlab.data", "MNIST5kPairs"),
    "ImageFolder": ("genlab.data", "ImageFolder"),
    "PairedImageFolder": ("genlab.data", "PairedImageFolder"),
    "MnistFD": ("genlab.metrics", "MnistFD"),
    "DigitsFD": ("genlab.metrics", "DigitsFD"),
    # inverse problems
    "solve": ("genlab.inverse", "solve"),
    "InverseProblem": ("genlab.inverse", "InverseProblem"),
}

__all__ = ["__version__", *sorted(_LAZY)]  # noqa: PLE0604 (names of the lazy exports)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'genlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
