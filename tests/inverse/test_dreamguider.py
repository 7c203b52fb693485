"""Dreamguider (reconstructed): no backprop through the network (proved with a backward hook), NFE = steps, the
DoG scale, shared augmentations, descent direction and non-linear losses (reference/inverse.md §1.7)."""

from __future__ import annotations

import pytest
import torch

from genlab.interpolants.presets import RectifiedFlow, VPDiffusion
from genlab.inverse import DiffuseAugment, DiffusionPrior, DoGScale, Dreamguider, solve, testing
from genlab.inverse.methods import CountedModel, SolveContext
from genlab.inverse.methods.dreamguider import time_factor
from genlab.samplers.steps import DDPMStep as DDPM


def _setup(seed: int = 0, interp=None):
    gp = testing.mcgdiff_problem(8, 2, seed)
    return gp, DiffusionPrior.from_gmm(gp.prior, interp or VPDiffusion())


def test_network_backward_hook_never_fires_and_nfe_equals_steps() -> None:
    gp, prior = _setup()
    calls: list[int] = []
    handle = prior.field.net.register_full_backward_hook(lambda *args: calls.append(1))
    try:
        ref = solve(gp.problem, prior, "dps", steps=5, n_samples=4, seed=0)
        assert len(calls) == 5 and ref.n_vjp == 5  # the hook can fire: DPS backpropagates once per step
        calls.clear()
        res = solve(gp.problem, prior, "dreamguider", steps=37, n_samples=4, seed=0)
    finally:
        handle.remove()
    assert calls == [] and res.n_vjp == 0
    assert res.nfe == 37
    assert res.config["options"]["reconstructed"] is True


def test_dog_scale_follows_the_formula() -> None:
    """η_t = max(r_ε, max_i ‖x_i − x_0‖) / √(Σ_i ‖u_i‖² + eps) per sample (Ivgi et al., ICML'23, eq. 1)."""
    xs = [torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[3.0, 4.0], [1.0, 1.0]]),
          torch.tensor([[0.0, 1.0], [2.0, 1.0]])]
    us = [torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 2.0], [1.0, 0.0]]),
          torch.tensor([[2.0, 2.0], [0.0, 0.0]])]
    dog = DoGScale(r_eps=1e-2, eps=0.0)
    r_eps = torch.tensor([1e-2, 1e-2 * (1 + 2**0.5)])
    expected = [
        r_eps / torch.tensor([1.0, 2.0]),
        torch.tensor([5.0, r_eps[1]]) / torch.tensor([5.0**0.5, 5.0**0.5]),
        torch.tensor([5.0, 1.0]) / torch.tensor([13.0**0.5, 5.0**0.5]),
    ]
    for x, u, e in zip(xs, us, expected):
        torch.testing.assert_close(dog.update(x, u), e)


def test_augmentations_are_shared_between_prediction_and_condition(gen: torch.Generator) -> None:
    """With the same parameters, the linear ops act on the residual: aug(p) − aug(y) = aug(p − y); independent
    draws would not satisfy this. The ops are differentiable."""
    aug = DiffuseAugment(ops=("translation", "cutout", "flip", "contrast"))
    p = torch.randn(6, 1, 8, 8, generator=gen, requires_grad=True)
    y = torch.randn(6, 1, 8, 8, generator=gen)
    params = aug.sample(p, generator=torch.Generator().manual_seed(1))
    lin = DiffuseAugment(ops=("translation", "cutout", "flip"))
    lin_params = type(params)(values={k: v for k, v in params.values.items() if k != "contrast"},
                              ops=("translation", "cutout", "flip"))
    torch.testing.assert_close(lin.apply(p, lin_params) - lin.apply(y, lin_params), lin.apply(p - y, lin_params))
    other = aug.sample(p, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(aug.apply(y, params), aug.apply(y, other))
    (g,) = torch.autograd.grad(aug.apply(p, params).pow(2).sum(), p)
    assert bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0
    vec = torch.randn(5, 3, generator=gen)
    assert aug.sample(vec).ops == ("cutout", "contrast")  # image-only ops are skipped for vectors


def test_time_factors() -> None:
    rho = torch.tensor([0.0, 0.25, 1.0])
    torch.testing.assert_close(time_factor("signal", rho), rho)
    torch.testing.assert_close(time_factor("noise", rho), 1 - rho)
    torch.testing.assert_close(time_factor(0.5, rho), torch.full((3,), 0.5))
    torch.testing.assert_close(time_factor(lambda r: r**2, rho), rho**2)


@pytest.mark.parametrize("interp", [VPDiffusion(), RectifiedFlow()], ids=["vp", "rf"])
def test_guidance_step_descends_the_loss(interp) -> None:
    """The guided step minus the unguided one (same noise) points against ∇_{x̂1} r, per sample."""
    gp, prior = _setup(1, interp)
    n = 16
    problem = gp.problem.expand(n)
    x = 3 * torch.randn(n, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t, tn = 0.5, 0.52

    def run(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        dg = Dreamguider(scale=scale, n_aug=0)
        ctx = SolveContext(problem=problem, prior=prior, model=CountedModel(prior), transition=DDPM(),
                           grid=torch.tensor([t, tn, 1.0], dtype=torch.float64), x_shape=(8,), state_shape=(8,),
                           n_samples=n, generator=torch.Generator().manual_seed(5))
        dg.setup(ctx)
        pred = dg.predict(x, t, ctx)
        g0, _ = dg.loss_gradient(pred("x1"), ctx)
        return dg.step(x, t, tn, pred, ctx), g0

    guided, g0 = run(1.0)
    plain, _ = run(0.0)
    inner = ((guided - plain) * g0).sum(1)
    assert bool((inner < 0).all())


def test_nonlinear_loss_reduces_the_measurement_misfit() -> None:
    """r = ‖|A x̂1| − y‖² (a phase-retrieval-like loss) runs and beats unguided sampling on that loss."""
    gp, prior = _setup(2)
    y_abs = gp.problem.y.abs()
    problem = type(gp.problem)(gp.problem.op, y_abs, gp.problem.sigma)

    def loss(pred_y: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (pred_y.abs() - y).pow(2).flatten(1).sum(1)

    guided = solve(problem, prior, "dreamguider", steps=50, n_samples=200, seed=0, loss=loss, n_aug=0)
    plain = solve(problem, prior, "dreamguider", steps=50, n_samples=200, seed=0, loss=loss, n_aug=0, scale=0.0)
    misfit = lambda s: loss(problem.op.A(s), y_abs).mean()
    assert float(misfit(guided.samples)) < 0.5 * float(misfit(plain.samples))
    assert guided.n_vjp == 0 and guided.nfe == 50
