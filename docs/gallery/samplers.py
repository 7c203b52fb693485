"""# Swap samplers with one argument

One field, many samplers: the exact VP noise-prediction field of a two-component Gaussian mixture (closed form,
so the pictures show the samplers' error, not a network's), sampled at 6 network evaluations per sample by each
sampler passed by name. With `steps=` alone every sampler takes its recommended grid; the reference is a draw
from the mixture itself. A trained run's `run.field`, or a diffusers checkpoint loaded with
`genlab.load_diffusers_field`, takes the same call.
"""

from __future__ import annotations

from pathlib import Path

import torch

import genlab
from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants import VPDiffusion
from genlab.viz import scatter_panels

SAMPLERS = ("euler", "heun", "ddim", "dpmpp_2m", "deis_tab", "unipc")


def run(out: Path, *, quick: bool = False) -> list[Path]:
    """Sample the exact field with each sampler at NFE ≈ 6 and draw them side by side."""
    target = GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 1.0]]), 0.15)
    field = exact_field(VPDiffusion(), "gaussian", target, kind="noise")
    n = 256 if quick else 2000
    panels = [("data", target.sample(n, generator=torch.Generator().manual_seed(0)).float())]
    available = set(genlab.samplers.available_samplers())
    for name in SAMPLERS:
        if name not in available:
            continue
        steps = 3 if name == "heun" else 6
        res = genlab.sample(field, sampler=name, steps=steps, n=n, shape=(2,), seed=0)
        panels.append((f"{name}: {res.nfe} NFE", res.x.float()))
        print(f"{name:10s} NFE {res.nfe:3d}  mean {res.x.mean(0).tolist()}")
    return [scatter_panels(panels, out / "samplers.png", lim=3.5)]
