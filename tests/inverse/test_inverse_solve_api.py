"""solve(): compatibility errors that name what is missing, measured costs, determinism, batch invariance, the
registry, and the data-space solvers (ΠGDM's Gram solve, DDS's CG data consistency) against dense algebra."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

from genlab.interpolants.presets import VPDiffusion
from genlab.inverse import (
    DDS,
    METHODS,
    ConvBlur,
    DenseOperator,
    DiffusionPrior,
    Guidance,
    Inpainting,
    InverseProblem,
    IterativeOutput,
    IterativeSolver,
    LatentPrior,
    PhaseRetrieval,
    available_methods,
    compatible_methods,
    get_method,
    register_method,
    solve,
    testing,
)
from genlab.inverse.methods import CountedModel, SolveContext, solve_gram
from genlab.models import LinearAutoEncoder
from genlab.samplers.steps import DDIMStep as DDIM


@pytest.fixture(scope="module")
def cell() -> tuple[testing.GMMInverseProblem, DiffusionPrior, LatentPrior]:
    gp = testing.mcgdiff_problem(4, 2, 0)
    prior = DiffusionPrior.from_gmm(gp.prior, VPDiffusion())
    latent = LatentPrior(prior.field, LinearAutoEncoder.from_matrix(torch.eye(4, dtype=torch.float64)))
    return gp, prior, latent


def test_registry_and_compatibility_lists(cell) -> None:
    gp, prior, latent = cell
    assert available_methods() == ["ddrm", "dds", "diffpir", "dps", "dreamguider", "mcgdiff", "moment_matching", "pigdm",
                                   "pnp_hvae", "stsl", "tds"]
    assert compatible_methods(gp.problem, prior) == ["ddrm", "dds", "diffpir", "dps", "dreamguider", "mcgdiff",
                                                     "moment_matching", "pigdm", "tds"]
    assert compatible_methods(gp.problem, latent) == ["dps", "dreamguider", "stsl"]
    assert compatible_methods(gp.problem, prior, sampler="euler") == ["dps", "moment_matching", "pigdm"]
    with pytest.raises(ValueError, match="already registered"):
        register_method(type("Fake", (DDS,), {"name": "dps"}))
    with pytest.raises(ValueError, match="available"):
        get_method("ddnm")


@pytest.mark.parametrize(
    ("method", "kwargs", "match"),
    [
        ("stsl", {}, "LatentPrior"),
        ("dds", {"sampler": "euler"}, r"sampler in \['ddim'\]"),
        ("dreamguider", {"sampler": "ddim", "eta": 0.0}, "eta > 0"),
        ("dreamguider", {"sampler": "euler"}, "sampler in"),
        ("dps", {"sampler": "heun"}, "sampler in"),
        ("dps", {"bogus": 1}, "allowed"),
        ("dps", {"zeta": -1.0}, "zeta"),
        ("pigdm", {"r2": "magic"}, "r2"),
        ("stsl", {"trace_estimator": "exact"}, "trace_estimator"),
    ],
)
def test_incompatible_inputs_say_what_is_missing(cell, method: str, kwargs: dict, match: str) -> None:
    gp, prior, _ = cell
    with pytest.raises(ValueError, match=match):
        solve(gp.problem, prior, method, steps=2, **kwargs)


def test_operator_and_noise_requirements(cell) -> None:
    gp, prior, latent = cell
    img_prior = DiffusionPrior.from_gmm(testing.mcgdiff_problem(16, 1, 0).prior, VPDiffusion())
    phase = InverseProblem(PhaseRetrieval(oversampling=0.0), torch.zeros(1, 1, 4, 4), 0.1, x_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="linear operator"):
        solve(phase, img_prior, "pigdm", steps=2)
    noiseless = InverseProblem(gp.problem.op, gp.problem.y, 0.0)
    with pytest.raises(ValueError, match="sigma > 0"):
        solve(noiseless, prior, "dps", steps=2, faithful=False)
    with pytest.raises(ValueError, match="pixel-space prior"):
        solve(gp.problem, latent, "pigdm", steps=2)
    with pytest.raises(ValueError, match="n_samples"):
        solve(gp.problem, prior, "dps", n_samples=0)
    with pytest.raises(TypeError, match="InverseProblem"):
        solve(gp.problem.y, prior, "dps")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "kwargs", "nfe", "n_vjp"),
    [("dps", {}, 6, 6), ("dps", {"faithful": False}, 6, 6), ("pigdm", {}, 6, 6), ("dds", {}, 6, 0),
     ("dreamguider", {}, 6, 0)],
)
def test_costs_are_measured(cell, method: str, kwargs: dict, nfe: int, n_vjp: int) -> None:
    gp, prior, _ = cell
    res = solve(gp.problem, prior, method, steps=6, n_samples=3, seed=0, **kwargs)
    assert (res.nfe, res.n_vjp) == (nfe, n_vjp)
    assert res.samples.shape == (3, 4) and res.wall_time > 0
    assert res.config["method"] == method and res.config["steps"] == 6
    assert len(res.diagnostics["guidance_norm" if method != "dds" else "cg_iters"]) == 6


@pytest.mark.parametrize("method", ["dps", "pigdm", "dds"])
def test_determinism_and_batch_invariance(cell, method: str) -> None:
    gp, prior, _ = cell
    a = solve(gp.problem, prior, method, steps=8, n_samples=6, seed=4)
    b = solve(gp.problem, prior, method, steps=8, n_samples=6, seed=4)
    c = solve(gp.problem, prior, method, steps=8, n_samples=2, seed=4)
    torch.testing.assert_close(a.samples, b.samples, rtol=0, atol=0)
    torch.testing.assert_close(a.samples[:2], c.samples, rtol=1e-12, atol=1e-12)


def test_trajectory_and_callback(cell) -> None:
    gp, prior, _ = cell
    seen: list[float] = []
    res = solve(gp.problem, prior, "pigdm", steps=5, n_samples=2, seed=0, return_trajectory=True,
                callback=lambda info: seen.append(info.t_next))
    assert len(res.trajectory) == 6 and seen == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    torch.testing.assert_close(res.trajectory[-1], res.samples)


@pytest.mark.parametrize("kind", ["dense", "inpainting", "conv"])
def test_gram_solve_matches_dense_algebra(kind: str, gen: torch.Generator) -> None:
    """(r²AAᵀ + σ²I)⁺v: closed form (SVD) and CG (no SVD) against the dense pseudo-inverse."""
    if kind == "dense":
        op, x_shape = DenseOperator(torch.randn(3, 5, generator=gen, dtype=torch.float64)), (5,)
    elif kind == "inpainting":
        op, x_shape = Inpainting((torch.rand(1, 3, 3, generator=gen) > 0.4).double()), (1, 3, 3)
    else:
        op, x_shape = ConvBlur(torch.rand(3, 3, generator=gen, dtype=torch.float64)), (1, 5, 5)
    m = op.dense(x_shape)
    y_shape = op.output_shape(x_shape)
    v = op.A(torch.randn(2, *x_shape, generator=gen, dtype=torch.float64))  # in range(A): a consistent system
    r2 = torch.tensor([0.3, 2.0], dtype=torch.float64)
    for sigma2 in (0.0, 0.25):
        got = solve_gram(op, v, r2, sigma2, x_shape)
        for i in range(2):
            gram = r2[i] * m @ m.T + sigma2 * torch.eye(m.shape[0], dtype=torch.float64)
            expected = torch.linalg.pinv(gram) @ v[i].flatten()
            torch.testing.assert_close(got[i].flatten(), expected, rtol=1e-6, atol=1e-8)
        assert got.shape == (2, *y_shape)


def test_dds_data_consistency_is_the_regularised_solve(cell) -> None:
    """M CG iterations on a d-dimensional system solve it exactly: σ > 0 gives (I + γAᵀA)⁻¹(x̂1 + γAᵀy); σ = 0
    reaches A x = y from x̂1 inside x̂1 + range(Aᵀ)."""
    gp, prior, _ = cell
    a = gp.A
    x1 = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sigma in (0.3, 0.0):
        problem = InverseProblem(gp.problem.op, gp.problem.y, sigma).expand(3)
        ctx = SolveContext(problem=problem, prior=prior, model=CountedModel(prior), transition=DDIM(0.85),
                           grid=torch.linspace(0, 1, 3, dtype=torch.float64), x_shape=(4,), state_shape=(4,),
                           n_samples=3, generator=None)
        out, _ = DDS(gamma=2.0, cg_iters=4, cg_tol=0.0).data_consistency(x1, ctx)
        y = problem.y
        if sigma > 0:
            expected = torch.linalg.solve(torch.eye(4, dtype=torch.float64) + 2.0 * a.T @ a, (x1 + 2.0 * y @ a).T).T
            torch.testing.assert_close(out, expected)
        else:
            torch.testing.assert_close(out @ a.T, y, rtol=1e-8, atol=1e-8)
            proj = torch.linalg.pinv(a) @ a  # the component of x̂1 outside range(Aᵀ) is untouched
            torch.testing.assert_close((out - x1) @ (torch.eye(4, dtype=torch.float64) - proj), torch.zeros_like(x1),
                                       atol=1e-8, rtol=0)


def test_method_instances_and_the_guidance_contract(cell) -> None:
    gp, prior, _ = cell
    m = get_method("pigdm", weight=0.5)
    assert isinstance(m, Guidance) and m.options["weight"] == 0.5
    res = solve(gp.problem, prior, m, steps=3, n_samples=2, seed=0)
    assert res.config["options"]["weight"] == 0.5
    with pytest.raises(ValueError, match="not both"):
        solve(gp.problem, prior, m, steps=3, weight=1.0)


class _PinvSolver(IterativeSolver):
    """A minimal iterative solver for the seam test: x = scale·A⁺y."""

    name = "test_pinv"
    DEFAULTS: ClassVar[dict[str, Any]] = {"scale": 1.0}
    prior_types = (DiffusionPrior,)

    def run(self, problem, prior, *, n_samples, generator) -> IterativeOutput:
        return IterativeOutput(samples=self.options["scale"] * problem.op.pinv(problem.y), nfe=0,
                               diagnostics={"iterations": [1.0]})


def test_iterative_solver_seam(cell) -> None:
    """Non-diffusion methods (PnP-HVAE next) plug in through IterativeSolver and the same registry and solve()."""
    gp, prior, _ = cell
    register_method(_PinvSolver)
    try:
        res = solve(gp.problem, prior, "test_pinv", n_samples=3, seed=0, scale=2.0)
        torch.testing.assert_close(res.samples, 2.0 * gp.problem.op.pinv(gp.problem.y.expand(3, -1)))
        assert res.nfe == 0 and res.config["options"] == {"scale": 2.0}
        with pytest.raises(ValueError, match="no sampler"):
            solve(gp.problem, prior, "test_pinv", sampler="ddpm")
        with pytest.raises(ValueError, match="DiffusionPrior prior"):
            solve(gp.problem, object(), "test_pinv")
        with pytest.raises(ValueError, match="allowed"):
            solve(gp.problem, prior, "test_pinv", iters=3)
    finally:
        METHODS.pop("test_pinv")
