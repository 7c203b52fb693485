"""# Translate between paired images with a diffusion bridge

A DDBM VP bridge (Zhou et al., ICLR'24) from the Sobel edges of a digit to the digit (`configs/digits_bridge_edges.yaml`:
the condition enters the U-Net as channels, DDBM's preconditioning sits on the `Field`), sampled from held-out edge
maps with DBIM (Zheng et al., ICLR'25) at 10 steps. Rows: input edges | bridge samples | the paired targets.
"""

from __future__ import annotations

from pathlib import Path

import torch

import genlab
from genlab.training import sample_run
from genlab.viz import image_grid


def run(out: Path, *, quick: bool = False) -> list[Path]:
    """Train the bridge, sample held-out inputs, draw input | sample | target."""
    steps = 20 if quick else 1500
    genlab.train(
        "configs/digits_bridge_edges.yaml",
        out=out / "bridge_edges",
        overrides=[f"train.steps={steps}", "logging.progress=false", "logging.stdout=false"],
    )
    res = sample_run(out / "bridge_edges", sampler="dbim", steps=10, n=12)
    s = res.samples
    rows = torch.cat([s.x_init[:12].clamp(-1, 1), s.x[:12], s.target[:12]])
    err = float((s.x - s.target).pow(2).mean())
    print(f"DBIM, {s.nfe} NFE: MSE to the paired targets {err:.4f}")
    return [image_grid(rows, out / "bridges.png", nrow=12, title=f"edges | DBIM ({s.nfe} NFE) | target")]
