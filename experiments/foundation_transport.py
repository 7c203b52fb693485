"""Exact-field ODE transport error (foundation issue): push N(0, I) / a GMM source through the exact velocity.

Run: ``python experiments/foundation_transport.py`` (CPU, ~1 min). Prints, per path, the error of the endpoint mean and
covariance against the target's exact moments next to the Monte-Carlo standard error of a sample mean, and the
per-sample error of the closed-form 1-D rectified-flow map.
"""

from __future__ import annotations

import json

import torch

from genlab.analytic import GaussianMixture, exact_field
from genlab.demo import eight_gaussian_mixture
from genlab.interpolants import RectifiedFlow, StochasticInterpolant, VPDiffusion
from genlab.samplers import get_sampler, uniform

torch.set_num_threads(1)
n = 4000
gen = torch.Generator().manual_seed(0)
target = eight_gaussian_mixture()
source = GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=torch.float64), 0.3)
rows = []
for name, interp, src, x0, t_end in [
    ("rectified flow", RectifiedFlow(), "gaussian", torch.randn(n, 2, generator=gen, dtype=torch.float64), 1.0),
    ("VP (linear beta)", VPDiffusion(), "gaussian", None, 1 - 1e-5),
    ("SI linear, brownian gamma, GMM source", StochasticInterpolant("linear"), source,
     source.sample(n, generator=gen), 1.0),
]:
    field = exact_field(interp, src, target, "velocity")
    if x0 is None:
        x0 = torch.randn(n, 2, generator=gen, dtype=torch.float64) * float(interp.schedule.coeffs(
            torch.zeros(1, dtype=torch.float64)).alpha)
    res = get_sampler("dopri5", rtol=1e-8, atol=1e-8).sample(field, x0, uniform(1, t_end=t_end))
    x = res.x
    se = (target.cov.diagonal() / n).sqrt().max()
    rows.append({"path": name, "nfe": res.nfe, "mean_err": float((x.mean(0) - target.mean).abs().max()),
                 "cov_err": float((torch.cov(x.T) - target.cov).abs().max()), "mean_se": float(se)})
# 1-D closed form: RF from N(0,1) to N(m, s²) maps x0 ↦ m + s·x0
m, s = 0.7, 0.5
g1 = GaussianMixture(torch.tensor([[m]], dtype=torch.float64), torch.tensor([s**2], dtype=torch.float64))
x0 = torch.linspace(-3, 3, 101, dtype=torch.float64)[:, None]
for sampler, steps in [("heun", 200), ("rk4", 50), ("dopri5", 1)]:
    kw = {"rtol": 1e-10, "atol": 1e-10} if sampler == "dopri5" else {}
    r = get_sampler(sampler, **kw).sample(exact_field(RectifiedFlow(), "gaussian", g1), x0, uniform(steps))
    rows.append({"path": f"1-D RF closed-form map, {sampler} {steps} steps", "nfe": r.nfe,
                 "max_per_sample_err": float((r.x - (m + s * x0)).abs().max())})
print(json.dumps(rows, indent=1))
