"""Light SB (Korotin et al. ICLR'24; reference/interpolants.md §6, §9 checks 10–12): K = 1 recovers the closed-form
Gaussian EOT plan (diagonal and rotated S), the closed-form drift equals ε∇log of the defining integral by
quadrature, Euler–Maruyama through genlab's sampler hits π(·|x) at t = 1, exact bridge marginals, the objective
fits the Gaussian cross-covariance, the plan coupling, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

import genlab
from genlab.analytic import gaussian_eot_plan
from genlab.couplings import ConditionalPlanCoupling, Independent
from genlab.models.light_sb import LIGHT_SB_LR, LightSB, light_sb_field

DT = torch.float64


def _rotated_gaussian_case(eps: float) -> tuple[LightSB, object]:
    """Σ0 = I, Σ1 = O diag(2, 0.5) Oᵀ: S = Cᵀ has eigenvectors O = exp(A); LightSB(K=1, full) set exactly."""
    a = torch.tensor([[0.0, 0.8], [-0.8, 0.0]], dtype=DT)
    rot = torch.linalg.matrix_exp(a)
    cov1 = rot @ torch.diag(torch.tensor([2.0, 0.5], dtype=DT)) @ rot.T
    m0, m1 = torch.tensor([0.3, -0.2], dtype=DT), torch.tensor([1.0, 2.0], dtype=DT)
    plan = gaussian_eot_plan(m0, torch.eye(2, dtype=DT), m1, cov1, eps)
    s = plan.cross.T  # S = CᵀΣ0⁻¹ with Σ0 = I
    model = LightSB(2, 1, eps, cov="full").to(DT)
    with torch.no_grad():
        model.rotation_raw.copy_((a / 2)[None])  # exp(W − Wᵀ) = exp(A)
        o = model.rotations()[0]
        model.log_s.copy_(torch.diagonal(o.T @ s @ o).log()[None])
        model.r.copy_((m1 - s @ m0)[None])
    return model, plan


def _diag_gaussian_case(eps: float) -> tuple[LightSB, object]:
    cov0 = torch.diag(torch.tensor([0.5, 2.0], dtype=DT))
    cov1 = torch.diag(torch.tensor([1.5, 0.7], dtype=DT))
    m0, m1 = torch.tensor([-1.0, 0.5], dtype=DT), torch.tensor([2.0, -1.0], dtype=DT)
    plan = gaussian_eot_plan(m0, cov0, m1, cov1, eps)
    s = torch.linalg.solve(cov0, plan.cross).T  # CᵀΣ0⁻¹
    model = LightSB(2, 1, eps).to(DT)
    with torch.no_grad():
        model.log_s.copy_(torch.diagonal(s).log()[None])
        model.r.copy_((m1 - s @ m0)[None])
    return model, plan


@pytest.mark.parametrize("case", [_diag_gaussian_case, _rotated_gaussian_case])
@pytest.mark.parametrize("eps", [0.1, 1.0, 10.0])
def test_k1_recovers_gaussian_eot_conditional(case, eps: float) -> None:
    model, plan = case(eps)
    x = torch.randn(7, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    lsb = model.plan(x)
    mean, cov = plan.conditional(x)
    torch.testing.assert_close(lsb.mean(), mean, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(lsb.cov(), cov.expand(7, 2, 2), atol=1e-10, rtol=1e-10)
    # εS = Σ1 − CᵀΣ0⁻¹C (the conditional covariance) and the plan's cross-covariance: Cov(x, E[y|x]) = C
    s = model.S()[0]
    torch.testing.assert_close(plan.cov0 @ s.T, plan.cross, atol=1e-10, rtol=1e-10)


def test_k1_samples_reproduce_joint_plan() -> None:
    model, plan = _diag_gaussian_case(1.0)
    g = torch.Generator().manual_seed(1)
    x0, _ = plan.sample(40000, generator=g)
    y = model.sample_plan(x0, generator=g).detach()
    cross = ((x0 - x0.mean(0)).T @ (y - y.mean(0))) / (x0.shape[0] - 1)
    torch.testing.assert_close(cross, plan.cross, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(y.T), plan.cov1, atol=0.05, rtol=0)


def _log_integral(model: LightSB, x: torch.Tensor, t: float, grid: torch.Tensor, cell: float) -> torch.Tensor:
    """log ∫ N(y | x, ε(1−t)I) e^{|y|²/(2ε)} v(y) dy by a Riemann sum (up to a constant)."""
    eps = model.eps
    lognorm = -((grid - x) ** 2).sum(-1) / (2 * eps * (1 - t))
    return torch.logsumexp(lognorm + (grid**2).sum(-1) / (2 * eps) + model.log_v(grid), 0) + math.log(cell)


@pytest.mark.parametrize("t", [0.0, 0.4, 0.85])
def test_drift_equals_eps_grad_log_integral(t: float) -> None:
    """The closed form (rotated S, K = 3) against central differences of a 2-D quadrature of eq. 17."""
    torch.manual_seed(0)
    model = LightSB(2, 3, 0.7, cov="full", s_init=0.8).to(DT)
    with torch.no_grad():
        model.rotation_raw.normal_(0, 0.5)
        model.log_s.uniform_(-0.5, 0.3)
        model.r.normal_(0, 1)
        model.log_alpha_raw.copy_(torch.tensor([0.1, -0.2, 0.05]))
    lin = torch.linspace(-9, 9, 721, dtype=DT)
    grid = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).reshape(-1, 2)
    cell = float(lin[1] - lin[0]) ** 2
    x = torch.tensor([0.5, -0.3], dtype=DT)
    h = 1e-4
    with torch.no_grad():
        num = torch.stack([
            model.eps * (_log_integral(model, x + h * e, t, grid, cell) - _log_integral(model, x - h * e, t, grid, cell))
            / (2 * h)
            for e in torch.eye(2, dtype=DT)
        ])
        closed = model.drift(x[None], t)[0]
    torch.testing.assert_close(closed, num, atol=1e-6, rtol=1e-6)


def test_euler_maruyama_through_genlab_hits_plan() -> None:
    """genlab.sample(Field(drift_fwd on BrownianBridge(√ε), eps=ε/2), 'euler_maruyama') ends at π(·|x)."""
    model, plan = _rotated_gaussian_case(0.7)
    field = light_sb_field(model)
    assert field.kind == "drift_fwd" and field.eps == pytest.approx(0.35)
    x = torch.tensor([[0.5, -0.3]], dtype=DT).repeat(20000, 1)
    with torch.no_grad():
        res = genlab.sample(field, "euler_maruyama", steps=200, x_init=x, seed=0, dtype=DT)
    mean, cov = plan.conditional(x[:1])
    assert res.nfe == 200
    torch.testing.assert_close(res.x.mean(0), mean[0], atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(res.x.T), cov, atol=0.03, rtol=0)


def test_bridge_marginals_exact() -> None:
    model, plan = _diag_gaussian_case(1.0)
    x = torch.tensor([[0.2, 0.4]], dtype=DT).repeat(30000, 1)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        torch.testing.assert_close(model.sample_at_time(x[:5], 0.0, generator=g), x[:5])
        t = 0.3
        xt = model.sample_at_time(x, t, generator=g)
    mean, cov = plan.conditional(x[:1])
    # X_t | x ~ N(t m + (1−t)x, t² Σ + εt(1−t) I)
    torch.testing.assert_close(xt.mean(0), t * mean[0] + (1 - t) * x[0], atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(xt.T), t**2 * cov + t * (1 - t) * torch.eye(2, dtype=DT), atol=0.02,
                               rtol=0)


def test_training_recovers_gaussian_cross_covariance() -> None:
    """§9 check 11 (scaled down): K = 4, diagonal Σ, ε = 1; learnt cross-covariance within 5 % of C."""
    torch.manual_seed(0)
    eps = 1.0
    cov0 = torch.diag(torch.tensor([0.5, 2.0], dtype=DT))
    cov1 = torch.diag(torch.tensor([1.5, 0.7], dtype=DT))
    plan = gaussian_eot_plan(torch.zeros(2), cov0, torch.ones(2), cov1, eps)
    model = LightSB(2, 4, eps, s_init=1.0).to(DT)
    g = torch.Generator().manual_seed(0)
    model.init_means(plan.sample(4, generator=g)[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x_eval, _ = plan.sample(8192, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        loss0 = float(model.loss(*plan.sample(4096, generator=torch.Generator().manual_seed(8))))
    for _ in range(1500):
        x0, x1 = plan.sample(512, generator=g)
        x1 = x1[torch.randperm(512, generator=g)]  # unpaired
        opt.zero_grad()
        model.loss(x0, x1).backward()
        opt.step()
    with torch.no_grad():
        loss1 = float(model.loss(*plan.sample(4096, generator=torch.Generator().manual_seed(8))))
    assert loss1 < loss0
    with torch.no_grad():
        gain = model.plan(x_eval).mean()  # E[y|x]; cross-cov = Cov(x, E[y|x])
    cross = ((x_eval - x_eval.mean(0)).T @ (gain - gain.mean(0))) / 8191
    torch.testing.assert_close(torch.diagonal(cross), torch.diagonal(plan.cross), rtol=0.05, atol=0.0)


def test_plan_coupling_pairs_with_model() -> None:
    model, plan = _diag_gaussian_case(1.0)
    src = lambda n, generator=None: plan.sample(n, generator=generator)[0]
    coupling = ConditionalPlanCoupling(model, base=Independent(src))
    pair = coupling.sample(torch.zeros(20000, 2, dtype=DT), generator=torch.Generator().manual_seed(0))
    cross = ((pair.x0 - pair.x0.mean(0)).T @ (pair.x1 - pair.x1.mean(0))) / 19999
    torch.testing.assert_close(cross, plan.cross, atol=0.05, rtol=0)
    with pytest.raises(TypeError, match="sample_plan"):
        ConditionalPlanCoupling(object())


def test_paper_lr_table_and_bad_input() -> None:
    assert LIGHT_SB_LR == {0.1: 1e-3, 1.0: 3e-3, 10.0: 6e-2}
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="eps"):
            LightSB(2, 3, bad)
    with pytest.raises(ValueError, match="n_components"):
        LightSB(2, 0, 1.0)
    with pytest.raises(ValueError, match="cov"):
        LightSB(2, 3, 1.0, cov="dense")  # type: ignore[arg-type]
    model = LightSB(3, 2, 1.0)
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        model.sample_plan(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        model.loss(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"t = 1"):
        model.drift(torch.zeros(4, 3), 1.0)
    with pytest.raises(ValueError, match="K=2"):
        model.init_means(torch.zeros(5, 3))
