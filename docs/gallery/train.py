"""# Train a generator from a config, sample it, evaluate it

A one-sided stochastic interpolant (trigonometric path, Gaussian source, velocity U-Net) on scikit-learn's 8×8
digits, trained from the shipped config with one override, sampled with Heun at 10 steps, and evaluated against
the held-out digits with the data floor and a verdict. The same three calls work for every config in `configs/`
(and `genlab train/sample/eval` do the same from the shell). Your own data goes in with
`genlab.train(config, data=tensor_or_dataset)`.
"""

from __future__ import annotations

from pathlib import Path

import genlab
from genlab.training import evaluate, sample_run


def run(out: Path, *, quick: bool = False) -> list[Path]:
    """Train, sample and evaluate; return the pictures."""
    steps = 20 if quick else 1500
    genlab.train(
        "configs/digits_si.yaml",
        out=out / "digits_si",
        overrides=[f"train.steps={steps}", "train.sample_every=0", "logging.progress=false", "logging.stdout=false"],
    )
    samples = sample_run(out / "digits_si", sampler="heun", steps=10, n=64, out=out / "train_samples.png",
                         overwrite=True)
    metrics = ["sw", "fd"] if quick else None  # None: the config's eval.metrics
    report = evaluate(out / "digits_si", n=100 if quick else 500, seeds=2 if quick else 3, metrics=metrics)
    print(report.table())
    return [*samples.files[1:], *report.files]
