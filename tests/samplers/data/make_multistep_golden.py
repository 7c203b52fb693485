"""Record float64 outputs of every multistep / exponential-integrator sampler on exact analytic fields.

Run with the code as committed before the coefficient-table engine (issue 17) to make the golden file that
``tests/samplers/test_multistep.py`` compares the engine against (to 1e-12):

    .venv/bin/python tests/samplers/data/make_multistep_golden.py

It writes ``multistep_golden.pt`` next to this script: ``{"names": [case name, ...], "x": (cases, B, 2) float64}``.
Case names are ``sampler|options|path|grid|steps``; :func:`cases` rebuilds every case (sampler, field, grid,
x_init, cond) from fixed seeds so the test can rerun it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from genlab.analytic import ConditionalGMM, GaussianMixture, exact_field
from genlab.interpolants import DiffusionBridge, RectifiedFlow, VEDiffusion, VPDiffusion
from genlab.samplers import get_sampler, grids
from genlab.samplers.dbim import dbim_grid

__all__ = ["GOLDEN", "cases", "main"]

F64 = torch.float64
GOLDEN = Path(__file__).with_name("multistep_golden.pt")
STEPS = (5, 10)
B = 6

_GMM = GaussianMixture(torch.tensor([[1.0, -0.5], [-1.0, 0.8]], dtype=F64), torch.tensor([0.1, 0.2], dtype=F64))


def _inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1234)
    return {"z": torch.randn(B, 2, generator=g, dtype=F64), "x0": torch.randn(B, 2, generator=g, dtype=F64),
            "eps_boot": torch.randn(B, 2, generator=g, dtype=F64)}


#: (sampler name, options) of the data-form and ε-form multistep samplers run on the Gaussian-source paths.
GAUSSIAN_SAMPLERS: list[tuple[str, dict[str, Any]]] = [
    ("dpmpp_1s", {}),
    ("dpmpp_2m", {}),
    ("dpmpp_2m", {"solver_type": "heun"}),
    ("dpmpp_2m", {"lower_order_final": False}),
    ("dpmpp_3m", {}),
    ("dpmpp_3m", {"solver_type": "heun"}),
    ("dpmpp_3m", {"lower_order_final": False}),
    ("dpmpp_2s", {}),
    *[("deis_tab", {"order": r}) for r in range(4)],
    *[("deis_rhoab", {"order": r}) for r in range(4)],
    *[("ipndm", {"order": k}) for k in range(1, 5)],
    *[("deis_logrho", {"order": k}) for k in range(1, 4)],
    ("deis_logrho", {"order": 3, "lower_order_final": False}),
    ("deis_rhork", {"method": "3kutta"}),
]

#: Samplers run on the DDBM bridge (known source).
BRIDGE_SAMPLERS: list[tuple[str, dict[str, Any]]] = [
    ("dbim", {}),
    ("dbim_ho", {"order": 2}),
    ("dbim_ho", {"order": 3}),
    ("dbim_ho", {"order": 2, "lower_order_final": False}),
    ("dbim_ho", {"order": 3, "lower_order_final": False}),
    ("dpmpp_2m", {}),
    ("dpmpp_3m", {}),
    ("dpmpp_2m", {"solver_type": "heun", "lower_order_final": False}),
]


def _name(sampler: str, opts: dict[str, Any], path: str, grid: str, n: int) -> str:
    o = ",".join(f"{k}={v}" for k, v in sorted(opts.items()))
    return f"{sampler}|{o}|{path}|{grid}|{n}"


def cases() -> Iterator[tuple[str, Any, Any, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Every golden case as ``(name, sampler, field, grid, x_init, cond)``."""
    inp = _inputs()
    z, x0, eps_boot = inp["z"], inp["x0"], inp["eps_boot"]
    paths = {
        "vp_x1": (VPDiffusion(), "x1"),
        "vp_noise": (VPDiffusion(), "noise"),
        "vpcos_noise": (VPDiffusion("cosine"), "noise"),
        "rf_velocity": (RectifiedFlow(), "velocity"),
        "ve_noise": (VEDiffusion(), "noise"),
    }
    for pname, (interp, kind) in paths.items():
        field = exact_field(interp, "gaussian", _GMM, kind)
        for n in STEPS:
            gs = {"log_snr": grids.log_snr(n, interp),
                  "uniform": grids.uniform(n, t_start=1e-3, t_end=1 - 1e-3)}
            if pname == "rf_velocity":
                gs["uniform01"] = grids.uniform(n)  # data-form only: starts at λ = −∞, ends on the data
            for gname, grid in gs.items():
                x = z * interp.init_scale(grid[0], z)[:, None]
                for sname, opts in GAUSSIAN_SAMPLERS:
                    if gname == "uniform01" and not sname.startswith("dpmpp"):
                        continue
                    yield _name(sname, opts, pname, gname, n), get_sampler(sname, **opts), field, grid, x, None
    br = DiffusionBridge("vp")
    field = exact_field(br, None, ConditionalGMM(_GMM, scale=0.5), "x1")
    for n in STEPS:
        for gname, grid in {"dbim_grid": dbim_grid(n, br), "uniform": grids.uniform(n, t_start=0.1, t_end=0.9)}.items():
            c = br.schedule.coeffs(grid[:1])
            x = x0 * float(c.alpha[0]) + 0.5 * float(c.beta[0]) * x0 + float(c.gamma[0]) * z
            for sname, opts in BRIDGE_SAMPLERS:
                if gname == "dbim_grid" and sname.startswith("dpmpp"):
                    continue  # starts at γ = 0
                kw = dict(opts)
                if sname.startswith("dbim") and gname == "dbim_grid":
                    kw["eps_boot"] = eps_boot
                yield _name(sname, opts, "ddbm_vp", gname, n), get_sampler(sname, **kw), field, grid, x, x0


def main() -> None:
    """Run every case and save the outputs."""
    out: dict[str, torch.Tensor] = {}
    for name, sampler, field, grid, x, cond in cases():
        res = sampler.sample(field, x.clone(), grid, cond=cond)
        assert res.x.dtype == F64 and bool(torch.isfinite(res.x).all()), name
        out[name] = res.x.detach().clone()
    torch.save({"names": list(out), "x": torch.stack(list(out.values()))}, GOLDEN)
    print(f"{len(out)} cases -> {GOLDEN} ({GOLDEN.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
