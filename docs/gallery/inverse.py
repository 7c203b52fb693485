"""# Solve an inverse problem with a trained prior

A VP diffusion prior trained on 8×8 digits (`configs/digits_vp.yaml`), then 50 % random inpainting of a held-out
digit with σ_y = 0.05, solved by ΠGDM through the same `solve()` call every method takes. The picture shows the
measurement, posterior samples, their mean and standard deviation, and the ground truth; `genlab solve --run ...
--task inpaint-random --method pigdm --out solve.png` does the same from the shell.
"""

from __future__ import annotations

from pathlib import Path

import genlab
from genlab.inverse.tasks import solve_run


def run(out: Path, *, quick: bool = False) -> list[Path]:
    """Train the prior, solve two tasks, return their pictures."""
    steps = 20 if quick else 3000
    genlab.train(
        "configs/digits_vp.yaml",
        out=out / "digits_vp",
        overrides=[f"train.steps={steps}", "logging.progress=false", "logging.stdout=false"],
    )
    pictures = []
    for task, method in (("inpaint-random", "pigdm"), ("sr2", "dps")):
        res = solve_run(out / "digits_vp", task=task, method=method, n=8, index=3,
                        steps=10 if quick else None, out=out / f"inverse_{task}.png", overwrite=True)
        print(f"{method} on {task}: PSNR of the posterior mean {res.psnr_mean:.2f} dB ({res.result.nfe} NFE)")
        pictures.append(res.files[0])
    return pictures
