"""Multimarginal generative modeling end to end (Albergo, Boffi, Lindsey & Vanden-Eijnden, ICLR'24).

Analytic checks with Gaussian marginals, whose g_k are known in closed form (genlab.analytic.multimarginal): the
loss is minimised by the exact g_k, transport along every edge with them lands on the right Gaussian, the Monte
Carlo transport cost of a path equals its closed form, and path optimisation on Δ^1 reaches the known optimum
(the constant-speed reparametrisation of the edge). Then the training stack: configs whose K disagrees with the
data fail clearly, a short run trains, checkpoints, resumes bit for bit and transports between any pair.
"""

from __future__ import annotations

import pytest
import torch

from genlab.analytic.multimarginal import GaussianMarginals, edge_reparam_optimum
from genlab.couplings import MultimarginalCoupling, stack_marginals
from genlab.data import MultimarginalDataset
from genlab.interpolants import EdgePath, FourierPath, GammaPath, Multimarginal, PolylinePath
from genlab.models import MultimarginalField, SimplexMLP
from genlab.training import load_config, load_run, optimize_path, path_cost, train, transport
from genlab.training.multimarginal import correspondence, sample_transport


def _gm(K: int = 2) -> GaussianMarginals:
    means = torch.tensor([[2.0, -1.0], [-1.5, 1.0], [0.5, 2.5]])[:K]
    var = torch.tensor([[0.25, 0.5], [1.5, 0.3], [0.4, 0.4]])[:K]
    return GaussianMarginals(means, var)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------------- analytic
def test_exact_g_minimises_the_loss_and_satisfies_the_constraint() -> None:
    gm, mm = _gm(2), Multimarginal(2, edge_prob=0.3)
    xs = gm.sample_all(40_000, generator=_gen(0))
    smp = mm.sample(xs, generator=_gen(1))
    g = gm(smp.x, smp.a)
    assert torch.allclose(mm.residual(g, smp.a, smp.x), torch.zeros_like(smp.x), atol=1e-10)
    best = float(mm.loss(g, smp))
    # a different field: the coefficient a_k Σ_k C⁻¹ replaced by a_k/Σa_l² (wrong unless all Σ_k = I), and shifts
    c = (smp.a**2).sum(1, keepdim=True)
    wrong = gm.mu + (smp.a / c).unsqueeze(-1) * (smp.x - smp.a @ gm.mu).unsqueeze(1)
    assert float(mm.loss(wrong, smp)) > best + 1e-2
    for scale in (0.05, 0.2):
        delta = scale * torch.randn(g.shape, generator=_gen(2), dtype=g.dtype)
        assert float(mm.loss(g + delta, smp)) > best
    # the exact loss value: Σ_k E Var[x_k | x(a)] = Σ_k E tr(Σ_k − a_k² Σ_k C⁻¹ Σ_k)
    _, cdiag = gm.moments(smp.a)
    cond_var = gm.var.unsqueeze(0) - (smp.a**2).unsqueeze(-1) * gm.var.unsqueeze(0) ** 2 / cdiag.unsqueeze(1)
    expected = float(cond_var.mean(2).sum(1).mean())
    assert best == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("i,j", [(0, 1), (1, 2), (2, 1), (1, 0), (2, 0), (0, 2)])
def test_edge_transport_with_exact_g_lands_on_the_target_gaussian(i: int, j: int) -> None:
    gm = _gm(2)
    fld = MultimarginalField(gm, Multimarginal(2).restrict(EdgePath(0, 1, 2)))
    x = gm.sample(i, 20_000, generator=_gen(i + 10 * j))
    out = transport(fld, x, path=EdgePath(i, j, 2), sampler="heun", steps=100).x
    n = x.shape[0]
    assert torch.allclose(out.mean(0), gm.mu[j], atol=4 * (gm.var[j] / n).sqrt().max() + 1e-3)
    assert torch.allclose(out.var(0), gm.var[j], rtol=0.05)


def test_interior_paths_ode_and_sde_land_on_the_target() -> None:
    gm = _gm(2)
    fld = MultimarginalField(gm, Multimarginal(2).restrict(EdgePath(0, 1, 2)))
    x = gm.sample(1, 8_000, generator=_gen(3))
    poly = PolylinePath([1, "barycenter", 2], K=2)
    ode = transport(fld, x, path=poly, sampler="heun", steps=60).x
    sde = transport(fld, x, path=GammaPath(1, 2, 2), sampler="euler_maruyama", steps=300, eps=0.5,
                    generator=_gen(4)).x
    for out, tol in ((ode, 0.05), (sde, 0.08)):
        assert torch.allclose(out.mean(0), gm.mu[2], atol=0.05)
        assert torch.allclose(out.var(0), gm.var[2], rtol=tol)


def test_fourier_path_is_on_the_simplex_with_exact_derivative_and_fixed_ends() -> None:
    c = 0.3 * torch.randn(4, 3, generator=_gen(5), dtype=torch.float64)
    path = FourierPath(1, 3, 3, coeffs=c)
    t = torch.linspace(0.01, 0.99, 41, dtype=torch.float64)
    a, a_dot = path(t)
    assert torch.allclose(a.sum(1), torch.ones(41, dtype=torch.float64)) and bool((a >= 0).all())
    h = 1e-6
    fd = (path(t + h)[0] - path(t - h)[0]) / (2 * h)
    assert torch.allclose(a_dot, fd, atol=1e-6)
    assert path.start == 1 and path.end == 3
    with pytest.raises(ValueError, match="coeffs must have shape"):
        FourierPath(1, 3, 3, coeffs=torch.zeros(3, 2))
    with torch.no_grad():  # the fit runs its own gradient steps, also under no_grad
        fit = FourierPath.fit(EdgePath(1, 3, 3), modes=4)  # the start of path optimisation: close to the linear edge
    assert torch.allclose(fit(t)[0], EdgePath(1, 3, 3)(t)[0], atol=0.03)


@pytest.mark.parametrize("kind", ["edge", "fourier"])
def test_monte_carlo_path_cost_equals_the_closed_form(kind: str) -> None:
    gm = _gm(2)
    path = EdgePath(1, 2, 2) if kind == "edge" else FourierPath(
        1, 2, 2, coeffs=0.4 * torch.randn(3, 2, generator=_gen(6), dtype=torch.float64))
    exact = gm.path_cost(path)
    times = 64
    t = (torch.arange(times, dtype=torch.float64) + 0.5) / times
    mc = float(path_cost(gm, path, gm.sample_all(64 * 3000, generator=_gen(7)), t=t))
    assert mc == pytest.approx(exact, rel=0.03)


def test_path_optimisation_reaches_the_known_optimum_on_one_edge() -> None:
    """K = 1: every path e_0 → e_1 is a reparametrisation of the edge, so the optimum is (∫ √w ds)²."""
    gm = GaussianMarginals(torch.zeros(1, 2), torch.full((1, 2), 9.0))
    optimum = edge_reparam_optimum(gm, 0, 1)
    linear = gm.path_cost(EdgePath(0, 1, 1))
    start = FourierPath(0, 1, 1, modes=4)
    assert gm.path_cost(start) > 1.5 * optimum and linear > 1.15 * optimum

    def draw(n: int, generator: torch.Generator) -> torch.Tensor:
        return gm.sample_all(n, generator=generator)

    res = optimize_path(gm, 0, 1, 1, draw, modes=4, steps=200, lr=0.1, n=1024, times=32, eval_n=4096)
    after = gm.path_cost(res.path)
    assert res.final_cost < res.initial_cost
    # 4 sine modes cannot represent the optimal speed profile exactly: the deterministic optimum of the closed
    # form over this family is 1.021 x the infimum; the stochastic optimiser gets within 6 %
    assert optimum <= after * (1 + 1e-6) and after < 1.06 * optimum
    assert after < linear / 1.1 and after < gm.path_cost(start) / 1.5


# ---------------------------------------------------------------------------------------------------- data, coupling
def test_dataset_and_coupling_keep_each_marginal_and_draw_independently() -> None:
    ds = MultimarginalDataset(marginals=["moons", "8gaussians", "checkerboard"], n=256, seed=0)
    batch = ds.tensors[0][:64]
    pair = MultimarginalCoupling().sample(batch, generator=_gen(8))
    xs = stack_marginals(pair)
    assert xs.shape == (64, 4, 2)
    for k in range(3):  # each column is a permutation of the same marginal's rows
        assert torch.equal(xs[:, k + 1].sort(0).values, batch[:, k].sort(0).values)
    assert not torch.equal(xs[:, 1:], batch)  # the rows were re-paired
    assert torch.equal(ds[3][1], ds[3][0][0])  # the x1 item is the default path's end marginal (vertex 1)
    with pytest.raises(ValueError, match="all toys or all digit classes"):
        MultimarginalDataset(marginals=["moons", "digits:3"])
    with pytest.raises(ValueError, match="unknown name"):
        MultimarginalDataset(marginals=["moons", "spiral"])
    with pytest.raises(ValueError, match=r"shape \(B, K, \.\.\.\)"):
        MultimarginalCoupling().sample(torch.zeros(4, 2))


# ---------------------------------------------------------------------------------------------------- training stack
def _cfg(**changes: object) -> dict:
    cfg = {
        "name": "mm_tiny",
        "data": {"name": "multimarginal", "marginals": ["moons", "8gaussians"], "n": 400, "seed": 0},
        "interpolant": {"name": "multimarginal", "K": 2, "edge_prob": 0.5},
        "coupling": {"name": "multimarginal"},
        "model": {"name": "simplex_mlp", "data_dim": 2, "K": 2, "hidden": 32, "depth": 2},
        "objective": {"name": "multimarginal"},
        "train": {"steps": 20, "batch_size": 64, "lr": 2e-3, "ckpt_every": 10, "log_every": 10},
        "sample": {"sampler": "heun", "steps": 4, "n": 16},
        "logging": {"progress": False, "stdout": False},
    }
    for key, value in changes.items():
        section, name = key.split("__")
        cfg[section][name] = value
    return cfg


def test_inconsistent_K_fails_clearly(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"interpolant.K=3 but the data holds 2 marginal"):
        train(_cfg(interpolant__K=3, model__K=3), out=tmp_path / "a")
    with pytest.raises(ValueError, match=r"model.K=3 but interpolant.K=2"):
        train(_cfg(model__K=3), out=tmp_path / "b")
    with pytest.raises(TypeError, match="coupling: \\{name: multimarginal\\}"):
        train(_cfg(coupling__name="independent"), out=tmp_path / "c")
    with pytest.raises(ValueError, match=r"data.target=2 but the default path ends at interpolant.end=1"):
        train(_cfg(data__target=2), out=tmp_path / "d")


def test_training_resumes_bit_exactly_and_transports_every_pair(tmp_path) -> None:
    full = train(_cfg(), out=tmp_path / "full")
    train(_cfg(train__steps=10), out=tmp_path / "half")
    resumed = train(_cfg(), out=tmp_path / "half", resume=True)
    assert resumed.step == full.step == 20 and resumed.loss == full.loss
    a = torch.load(tmp_path / "full" / "checkpoints" / "ckpt_00000020.pt", weights_only=True)
    b = torch.load(tmp_path / "half" / "checkpoints" / "ckpt_00000020.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key])
    run = load_run(tmp_path / "full")
    assert isinstance(run.field, MultimarginalField) and isinstance(run.field.net.net, SimplexMLP)
    assert run.components.data_shape == (2,)
    for i, j in [(0, 1), (1, 2), (2, 0)]:
        res = sample_transport(run, source=i, target=j, n=8, steps=3)
        assert res.samples.x.shape == (8, 2) and bool(torch.isfinite(res.samples.x).all())
    grid = correspondence(run.field, torch.zeros(3, 2), 1, steps=2)
    assert grid.shape == (3, 3, 2) and torch.equal(grid[:, 1], torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"vertex in 0..2"):
        sample_transport(run, source=1, target=5)
    # plain sampling of the run: the default path Gaussian -> vertex 1, pictured next to marginal 1's held-out data
    from genlab.training import sample_run

    res = sample_run(run, n=8, steps=2, out=tmp_path / "s.png")
    assert res.samples.x.shape == (8, 2) and (tmp_path / "s.png").is_file()


def test_digits_config_builds_a_unet_with_K_plus_one_heads() -> None:
    from genlab.training import build_components
    from genlab.training.multimarginal import MultimarginalObjective

    cfg = load_config("configs/digits_multimarginal.yaml")
    comp = build_components(cfg)
    obj = MultimarginalObjective(cfg, comp)
    batch = comp.split.train.tensors[0][:4]
    out = obj.loss(batch, step=0, generator=_gen(9))
    assert comp.data_shape == (1, 8, 8) and torch.isfinite(out.loss)
    g = comp.net(torch.zeros(2, 1, 8, 8), torch.full((2, 4), 0.25))
    assert g.shape == (2, 4, 1, 8, 8)
