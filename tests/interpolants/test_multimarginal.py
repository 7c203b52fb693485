"""Analytic checks of the multimarginal interpolant (reference/interpolants.md §4, §9 item 6).

Oracle: Gaussian marginals ρ_k = N(μ_k, diag Σ_k), x_0 = N(0, I), all independent. Then x(a) ~ N(m(a), C(a)) with
m = Σ a_k μ_k, C = Σ a_k² Σ_k, and the exact heads are g_k(a, x) = μ_k + a_k Σ_k C⁻¹(x − m). Along any path the
probability-flow ODE is x(t) = m(t) + √(C(t)/C(0))·(x(0) − m(0)), so transport from ρ_1 to ρ_2 is the per-sample
map x ↦ μ_2 + √(Σ_2/Σ_1)(x − μ_1) whatever the path.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from genlab.interpolants.interpolant import Interpolant
from genlab.interpolants.multimarginal import (
    EdgePath,
    GammaPath,
    Multimarginal,
    PolylinePath,
    RestrictedMultimarginal,
    SimplexSchedule,
    check_simplex,
)
from genlab.models.multimarginal_field import PathConditionedNet

torch.set_num_threads(1)
DT = torch.float64
MU = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5], [-1.5, 0.5, 2.0], [0.5, 1.0, -1.0]], dtype=DT)
VAR = torch.tensor([[1.0, 1.0, 1.0], [0.25, 2.0, 0.5], [1.5, 0.3, 0.8], [0.6, 1.2, 0.4]], dtype=DT)


def moments(a: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    mu, var = MU[: K + 1], VAR[: K + 1]
    return a @ mu, (a**2) @ var


def exact_g(x: torch.Tensor, a: torch.Tensor, K: int = 2) -> torch.Tensor:
    """g_k(a, x) = μ_k + a_k Σ_k C(a)⁻¹ (x − m(a)), stacked (B, K+1, d)."""
    mu, var = MU[: K + 1], VAR[: K + 1]
    m, c = moments(a, K)
    r = (x - m) / c
    return mu[None] + a[:, :, None] * var[None] * r[:, None, :]


def draw_marginals(n: int, K: int, gen: torch.Generator) -> torch.Tensor:
    z = torch.randn(n, K + 1, 3, generator=gen, dtype=DT)
    return MU[: K + 1] + VAR[: K + 1].sqrt() * z


def heun(f, x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """Plain Heun (explicit trapezoid) on the grid ``ts`` (increasing or decreasing)."""
    for t0, t1 in itertools.pairwise(ts):
        h = t1 - t0
        d0 = f(x, t0)
        xp = x + h * d0
        d1 = f(xp, t1)
        x = x + h * (d0 + d1) / 2
    return x


def velocity_fn(rmm: RestrictedMultimarginal):
    K = rmm.mm.K

    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, _ = rmm.simplex(t, x)
        return rmm.convert(exact_g(x, a, K), "g", "velocity", x, t)

    return f


def gaussian_map(x: torch.Tensor, src: int, dst: int) -> torch.Tensor:
    return MU[dst] + (VAR[dst] / VAR[src]).sqrt() * (x - MU[src])


def assert_gaussian_moments(y: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, *, extra: float = 0.0) -> None:
    n = y.shape[0]
    assert ((y.mean(0) - mean).abs() <= 4 * (var / n).sqrt() + extra).all(), (y.mean(0), mean)
    assert ((y.var(0) / var - 1).abs() <= 4 * (2 / n) ** 0.5 + extra).all(), (y.var(0), var)


# ---------------------------------------------------------------------------------------------- the interpolant
def test_constraint_vertices_and_sample_moments():
    gen = torch.Generator().manual_seed(0)
    mm = Multimarginal(2)
    a = mm.sample_simplex(500, generator=gen)
    x = torch.randn(500, 3, generator=gen, dtype=DT)
    g = exact_g(x, a)
    assert torch.allclose((a[:, :, None] * g).sum(1), x, atol=1e-12)
    assert mm.residual(g, a, x).abs().max() < 1e-12

    xs = draw_marginals(64, 2, gen)
    for k in range(3):
        e = torch.zeros(64, 3, dtype=DT)
        e[:, k] = 1
        assert torch.equal(mm.sample(xs, e).x, xs[:, k])

    # x(a) at a fixed interior point is N(m(a), C(a)); the Gaussian slot is drawn when xs[0] is None
    n = 20000
    xs = draw_marginals(n, 2, gen)
    a_fix = torch.tensor([[0.2, 0.5, 0.3]], dtype=DT).expand(n, 3)
    s = mm.sample([None, xs[:, 1], xs[:, 2]], a_fix, generator=gen)
    assert torch.equal(s.targets["g"], s.xs) and torch.equal(s.xs[:, 1:], xs[:, 1:])
    m, c = moments(a_fix[:1], 2)
    assert_gaussian_moments(s.x, m[0], c[0])


def test_sample_simplex_is_uniform_and_batch_invariant():
    K = 3
    mm = Multimarginal(K)
    a = mm.sample_simplex(40000, generator=torch.Generator().manual_seed(1))
    check_simplex(a, K)
    n = K + 1
    # Dirichlet(1,...,1): mean 1/n, var (n−1)/(n²(n+1)), cov −1/(n²(n+1))
    assert (a.mean(0) - 1 / n).abs().max() < 4 * ((n - 1) / (n**2 * (n + 1)) / 40000) ** 0.5
    cov = torch.cov(a.T)
    assert torch.allclose(cov.diagonal(), torch.full((n,), (n - 1) / (n**2 * (n + 1)), dtype=DT), rtol=0.05)
    off = cov[~torch.eye(n, dtype=torch.bool)]
    assert torch.allclose(off, torch.full_like(off, -1 / (n**2 * (n + 1))), rtol=0.1)
    # per-sample draws: the first rows do not depend on the batch size
    a5 = mm.sample_simplex(5, generator=torch.Generator().manual_seed(7), edge_prob=0.5)
    a9 = mm.sample_simplex(9, generator=torch.Generator().manual_seed(7), edge_prob=0.5)
    assert torch.equal(a5, a9[:5])
    # edge oversampling: all draws on the allowed edges, position uniform
    e = mm.sample_simplex(20000, generator=torch.Generator().manual_seed(2), edge_prob=1.0, edges=[(0, 2), (1, 3)])
    nz = e > 0
    assert (nz.sum(1) <= 2).all() and (nz[:, [0, 2]].all(1) | nz[:, [1, 3]].all(1)).float().mean() > 0.999
    on02 = nz[:, 0] & nz[:, 2]
    assert abs(on02.float().mean() - 0.5) < 0.02 and abs(e[on02, 2].mean() - 0.5) < 0.02
    mixed = Multimarginal(K, edge_prob=0.3).sample_simplex(20000, generator=torch.Generator().manual_seed(3))
    assert abs(((mixed > 0).sum(1) == 2).float().mean() - 0.3) < 0.02


# ---------------------------------------------------------------------------------------------- transport
PATHS_12 = [  # (path, order of Heun on it: 2 for C¹ paths, 1 for a polyline with a kink traversed at speed)
    (EdgePath(1, 2, 2), 2),
    (GammaPath(1, 2, 2), 2),
    (PolylinePath([1, "barycentre", 2], 2, easing="cosine"), 2),
    (PolylinePath([1, [0.6, 0.2, 0.2], 2], 2, timing="uniform", easing="cosine"), 2),
    (PolylinePath([1, "barycentre", 2], 2), 1),
    (PolylinePath([1, [0.6, 0.2, 0.2], 2], 2, timing="uniform"), 1),
]


@pytest.mark.parametrize(("path", "order"), PATHS_12, ids=[repr(p) for p, _ in PATHS_12])
def test_heun_transports_rho1_to_rho2(path, order):
    mm = Multimarginal(2)
    rmm = mm.restrict(path)
    gen = torch.Generator().manual_seed(3)
    x1 = draw_marginals(2000, 2, gen)[:, 1]
    target = gaussian_map(x1, 1, 2)
    errs, ys = [], []
    for n in (40, 80):
        ys.append(heun(velocity_fn(rmm), x1, torch.linspace(0, 1, n + 1, dtype=DT)))
        errs.append(float((ys[-1] - target).abs().max()))
    observed = torch.log2(torch.tensor(errs[0] / errs[1])).item()
    assert abs(observed - order) < 0.3, (errs, observed)
    assert errs[1] < (8e-3 if order == 2 else 1e-1)
    assert_gaussian_moments(ys[-1], MU[2], VAR[2])
    back = heun(velocity_fn(rmm), ys[-1], torch.linspace(1, 0, 81, dtype=DT))  # 1 → 0 inverts the map
    assert torch.allclose(back, x1, atol=1.6e-2 if order == 2 else 2e-1)


def test_heun_from_the_gaussian_and_sde_along_gamma_path():
    mm = Multimarginal(2)
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(2000, 3, generator=gen, dtype=DT)
    rmm = mm.restrict(EdgePath(0, 2, 2))
    assert rmm.gaussian_source and float(rmm.init_scale(0.0, z)[0]) == 1.0
    y = heun(velocity_fn(rmm), z, torch.linspace(0, 1, 101, dtype=DT))
    assert torch.allclose(y, MU[2] + VAR[2].sqrt() * z, atol=2e-3)

    # forward SDE dX = [b + ε s]dt + √(2ε)dW with ε(t) = a_0(t) (zero at both ends, where s is undefined)
    rg = mm.restrict(GammaPath(1, 2, 2))
    x = draw_marginals(4000, 2, gen)[:, 1]
    ts = torch.linspace(0, 1, 201, dtype=DT)
    for t0, t1 in itertools.pairwise(ts):
        tt = t0.expand(x.shape[0])
        a, _ = rg.simplex(tt, x)
        eps = a[:, 0]
        drift = rg.convert(exact_g(x, a), "g", "drift_fwd", x, tt, eps=eps)
        x = x + (t1 - t0) * drift + (2 * eps[:, None] * (t1 - t0)).sqrt() * torch.randn(x.shape, generator=gen,
                                                                                         dtype=DT)
    assert_gaussian_moments(x, MU[2], VAR[2], extra=0.03)


def test_velocity_invariant_to_common_field_and_sensitive_to_others():
    gen = torch.Generator().manual_seed(5)
    K = 3
    mm = Multimarginal(K)
    x = torch.randn(64, 3, generator=gen, dtype=DT)
    t = torch.cat([torch.rand(60, generator=gen, dtype=DT), torch.tensor([0.0, 0.5, 1.0, 0.25], dtype=DT)])
    for path in [EdgePath(1, 3, K), PolylinePath([1, "barycentre", 2], K), GammaPath(2, 3, K),
                 PolylinePath([0, [0.25, 0.25, 0.25, 0.25], 3], K)]:
        rmm = mm.restrict(path)
        a, a_dot = rmm.simplex(t, x)
        g = exact_g(x, a, K)
        h = torch.randn(64, 1, 3, generator=gen, dtype=DT)
        b = rmm.convert(g, "g", "velocity", x, t)
        assert torch.allclose(rmm.convert(g + h, "g", "velocity", x, t), b, atol=1e-12)
        assert torch.allclose(b, (a_dot[:, :, None] * g).sum(1), atol=1e-12)
        bump = torch.zeros_like(g)
        bump[:, path.end] = h[:, 0]
        assert (rmm.convert(g + bump, "g", "velocity", x, t) - b).abs().max() > 0.1


def test_edge_velocity_is_difference_of_heads_and_endpoint_kinds():
    gen = torch.Generator().manual_seed(6)
    mm = Multimarginal(2)
    rmm = mm.restrict(EdgePath(2, 1, 2))
    x = torch.randn(16, 3, generator=gen, dtype=DT)
    g = torch.randn(16, 3, 3, generator=gen, dtype=DT)
    assert torch.allclose(rmm.convert(g, "g", "velocity", x, 0.3), g[:, 1] - g[:, 2])
    assert torch.equal(rmm.convert(g, "g", "x0", x, 0.3), g[:, 2])
    assert torch.equal(rmm.convert(g, "g", "x1", x, 0.3), g[:, 1])
    assert torch.equal(rmm.convert(g.flatten(1), "g", "g", x, 0.3), g)  # flat head layout
    with pytest.raises(ValueError, match="not available"):
        rmm.convert(g, "g", "score", x, 0.3)  # an edge between data vertices has no Gaussian


# ---------------------------------------------------------------------------------------------- score
def test_score_is_gaussian_score_and_autograd():
    gen = torch.Generator().manual_seed(7)
    mm = Multimarginal(2)
    a = mm.sample_simplex(200, generator=gen)
    x = torch.randn(200, 3, generator=gen, dtype=DT, requires_grad=True)
    g = exact_g(x.detach(), a)
    m, c = moments(a, 2)
    s = mm.score(g, a)
    assert torch.allclose(s, -(x.detach() - m) / c, atol=1e-10)
    logp = (-0.5 * (x - m) ** 2 / c - 0.5 * torch.log(2 * torch.pi * c)).sum()
    (grad,) = torch.autograd.grad(logp, x)
    assert torch.allclose(s, grad, atol=1e-10)

    rg = mm.restrict(GammaPath(1, 2, 2))
    t = torch.rand(200, generator=gen, dtype=DT) * 0.98 + 0.01
    xx = x.detach()
    at, _ = rg.simplex(t, xx)
    gt = exact_g(xx, at)
    mt, ct = moments(at, 2)
    assert torch.allclose(rg.convert(gt, "g", "score", xx, t), -(xx - mt) / ct, atol=1e-10)
    assert torch.equal(rg.convert(gt, "g", "noise", xx, t), gt[:, 0])
    e = 0.3 + t
    fwd = rg.convert(gt, "g", "drift_fwd", xx, t, eps=e)
    bwd = rg.convert(gt, "g", "drift_bwd", xx, t, eps=e)
    vel = rg.convert(gt, "g", "velocity", xx, t)
    assert torch.allclose((fwd + bwd) / 2, vel, atol=1e-12)
    assert torch.allclose((fwd - bwd) / (2 * e[:, None]), -(xx - mt) / ct, atol=1e-10)

    # a_0 = 0 at the ends of the path: the score raises there, drifts with eps = 0 reduce to the velocity
    with pytest.raises(ValueError, match="a_0"):
        rg.convert(gt, "g", "score", xx, 0.0)
    with pytest.raises(ValueError, match="a_0"):
        rg.convert(gt, "g", "drift_fwd", xx, 1.0, eps=0.5)
    assert torch.equal(rg.convert(gt, "g", "drift_fwd", xx, 1.0, eps=0.0), rg.convert(gt, "g", "velocity", xx, 1.0))
    with pytest.raises(ValueError, match="positive Gaussian weight"):
        mm.score(g, torch.tensor([[0.0, 0.5, 0.5]], dtype=DT).expand(200, 3))


# ---------------------------------------------------------------------------------------------- loss and projection
def test_loss_is_minimised_at_the_exact_heads():
    gen = torch.Generator().manual_seed(8)
    mm = Multimarginal(2)
    s = mm.sample(draw_marginals(6000, 2, gen), generator=gen)
    g = exact_g(s.x, s.a)
    h = torch.sin(s.x)[:, None, :] * torch.tensor([1.0, -2.0, 0.5], dtype=DT)[None, :, None]

    def slope(g_: torch.Tensor, h_: torch.Tensor) -> tuple[float, float]:
        """d/dc loss(g_ + c h_) at c = 0: per-sample terms → mean and standard error."""
        u = (2 * (g_ - s.xs) * h_).mean(2).sum(1)
        return float(u.mean()), float(u.std() / u.shape[0] ** 0.5)

    # a wrong field that still satisfies Σ a_k g_k = x: Σ_k replaced by I in the posterior weighting
    c_wrong = (s.a**2).sum(1, keepdim=True)
    m = s.a @ MU[:3]
    wrong = MU[None, :3] + s.a[:, :, None] * ((s.x - m) / c_wrong)[:, None, :]
    assert mm.residual(wrong, s.a, s.x).abs().max() < 1e-12
    for direction in (h, wrong - g):  # stationary at the exact heads in every direction ...
        d, se = slope(g, direction)
        assert abs(d) < 4 * se
    d, se = slope(wrong, g - wrong)  # ... but not at the wrong ones
    assert d < -10 * se
    assert mm.loss(g, s) < mm.loss(g + 0.2 * h, s) and mm.loss(g, s) < mm.loss(wrong, s)
    assert torch.equal(mm.loss(g.flatten(1), s), mm.loss(g, s))

    # equals the paper's Σ_k E[|ĝ_k|² − 2 x_k·ĝ_k] (per data dim) up to a constant: differences agree exactly
    def paper(g_: torch.Tensor) -> torch.Tensor:
        return (g_**2 - 2 * s.xs * g_).mean(2).sum(1).mean()

    assert torch.allclose(mm.loss(g + h, s) - mm.loss(g, s), paper(g + h) - paper(g), atol=1e-12)
    w = torch.rand(6000, generator=gen, dtype=DT)
    per = ((g + h - s.xs) ** 2).mean(2).sum(1)
    assert torch.allclose(mm.loss(g + h, s, weight=w), (w * per).mean())


def test_project_enforces_constraint_minimally_and_is_identity_on_it():
    gen = torch.Generator().manual_seed(9)
    mm = Multimarginal(3)
    a = mm.sample_simplex(50, generator=gen, edge_prob=0.3)
    x = torch.randn(50, 3, generator=gen, dtype=DT)
    g = torch.randn(50, 4, 3, generator=gen, dtype=DT)
    p = mm.project(g, a, x)
    assert mm.residual(p, a, x).abs().max() < 1e-12
    g_ok = exact_g(x, a, 3)
    assert torch.allclose(mm.project(g_ok, a, x), g_ok, atol=1e-13)
    # any other feasible correction δ + n (Σ a_k n_k = 0) is at least as large
    delta = p - g
    n = torch.randn(50, 4, 3, generator=gen, dtype=DT)
    n = n - (a / (a**2).sum(1, keepdim=True))[:, :, None] * (a[:, :, None] * n).sum(1, keepdim=True)
    assert (a[:, :, None] * n).sum(1).abs().max() < 1e-12
    assert ((delta + n).pow(2).sum((1, 2)) >= delta.pow(2).sum((1, 2)) - 1e-12).all()
    # a restricted path with project=True converts the projected heads
    path = PolylinePath([1, "barycentre", 3], 3)
    t = torch.rand(50, generator=gen, dtype=DT)
    rp, rn = mm.restrict(path, project=True), mm.restrict(path)
    at, _ = rp.simplex(t, x)
    assert torch.allclose(rp.convert(g, "g", "x1", x, t), mm.project(g, at, x)[:, 3])
    g_t = exact_g(x, at, 3)
    assert torch.allclose(rp.convert(g_t, "g", "velocity", x, t), rn.convert(g_t, "g", "velocity", x, t))
    assert not torch.allclose(rp.convert(g, "g", "velocity", x, t), rn.convert(g, "g", "velocity", x, t))


# ---------------------------------------------------------------------------------------------- schedule & samplers
def test_schedule_on_face_agrees_with_two_marginal_conversions():
    gen = torch.Generator().manual_seed(10)
    mm = Multimarginal(2)
    x = torch.randn(32, 3, generator=gen, dtype=DT)
    t = torch.rand(32, generator=gen, dtype=DT) * 0.9 + 0.05

    one = mm.restrict(EdgePath(0, 2, 2))  # one-sided: α = 1 − t, β = t, γ = 0
    c = one.schedule.coeffs(t)
    assert torch.allclose(c.alpha, 1 - t) and torch.allclose(c.beta, t) and (c.gamma == 0).all()
    a, _ = one.simplex(t, x)
    g = exact_g(x, a)
    ref = Interpolant.convert(one, g[:, 2], "x1", "velocity", x, t)
    assert torch.allclose(one.convert(g, "g", "velocity", x, t), ref, atol=1e-10)
    assert torch.allclose(Interpolant.convert(one, g[:, 2], "x1", "score", x, t), mm.score(g, a), atol=1e-10)

    for path in [GammaPath(1, 2, 2), PolylinePath([1, "barycentre", 2], 2)]:  # two-sided, γ = a_0
        two = mm.restrict(path)
        c = two.schedule.coeffs(t)
        a, a_dot = two.simplex(t, x)
        assert torch.equal(c.alpha, a[:, 1]) and torch.equal(c.beta, a[:, 2]) and torch.equal(c.gamma, a[:, 0])
        assert torch.equal(c.d_gamma, a_dot[:, 0]) and torch.allclose(c.gamma_dgamma, a[:, 0] * a_dot[:, 0])
        g = exact_g(x, a)
        pair = (g[:, 1], g[:, 2])
        for kind in ("velocity", "score", "noise"):
            ref = two.convert(pair, ("x0", "x1"), kind, x, t)
            assert torch.allclose(two.convert(g, "g", kind, x, t), ref, atol=1e-9), kind
        # the coefficient-based implicit step runs on the face and keeps x when s = t
        assert torch.allclose(two.implicit_step(x, t, t, g[:, 1], g[:, 2]), x, atol=1e-10)

    rg = mm.restrict(GammaPath(1, 2, 2, gamma="brownian"))
    a, _ = rg.simplex(torch.full((32,), 0.5, dtype=DT), x)
    assert torch.isfinite(rg.convert(exact_g(x, a), "g", "velocity", x, 0.5)).all()
    with pytest.raises(ValueError, match="not finite"):
        rg.convert(exact_g(x, rg.simplex(0.0, x)[0]), "g", "velocity", x, 0.0)


def test_off_face_paths_raise_for_coefficient_methods_only():
    K = 3
    mm = Multimarginal(K)
    rmm = mm.restrict(PolylinePath([1, "barycentre", 2], K))  # touches vertex 3
    x = torch.randn(4, 3, dtype=DT)
    t = torch.full((4,), 0.4, dtype=DT)
    for call in (lambda: rmm.schedule.coeffs(t), lambda: rmm.semilinear(t, x),
                 lambda: rmm.implicit_step(x, 0.2, 0.4, x, x), lambda: rmm.sample(x, x, 0.4)):
        with pytest.raises(ValueError, match="leaves the face.*ODE/SDE"):
            call()
    a, _ = rmm.simplex(t, x)
    assert rmm.convert(exact_g(x, a, K), "g", "velocity", x, t).shape == x.shape
    with pytest.raises(ValueError, match="ends at the Gaussian"):
        mm.restrict(EdgePath(2, 0, K)).schedule.coeffs(t)


def test_sampler_capabilities_of_a_g_field():
    mm2, mm3 = Multimarginal(2), Multimarginal(3)
    assert mm2.restrict(EdgePath(1, 2, 2)).capabilities("g") == {"velocity", "implicit"}
    assert mm2.restrict(GammaPath(1, 2, 2)).capabilities("g") == {"velocity", "score", "implicit"}
    assert mm2.restrict(EdgePath(0, 2, 2)).capabilities("g") == {
        "velocity", "score", "implicit", "gaussian_source", "markov", "semilinear"}
    assert mm2.restrict(PolylinePath([0, "barycentre", 2], 2)).capabilities("g") == {
        "velocity", "score", "gaussian_source"}
    assert mm3.restrict(PolylinePath([1, "barycentre", 2], 3)).capabilities("g") == {"velocity", "score"}
    assert mm2.restrict(GammaPath(1, 2, 2)).capabilities("velocity") is None


def test_path_conditioned_net_feeds_a_of_t_and_reads_flat_heads():
    mm = Multimarginal(2)
    rmm = mm.restrict(PolylinePath([1, "barycentre", 2], 2))
    seen = {}

    def net(x, a):
        seen["a"] = a
        return exact_g(x, a).flatten(1)

    wrapped = PathConditionedNet(net, rmm)
    assert isinstance(wrapped, PathConditionedNet)
    x = torch.randn(8, 3, dtype=DT)
    out = wrapped(x, 0.25)
    a, _ = rmm.simplex(0.25, x)
    assert torch.equal(seen["a"], a) and torch.equal(out, exact_g(x, a))
    with pytest.raises(ValueError, match="heads"):
        PathConditionedNet(lambda x, a: x, rmm)(x, 0.25)


# ---------------------------------------------------------------------------------------------- paths & bad input
def test_paths_values_and_derivatives():
    t = torch.linspace(0, 1, 41, dtype=DT)
    for path in [EdgePath(0, 3, 3), PolylinePath([2, "barycentre", 0, 1], 3), PolylinePath([1, 3], 3, timing="uniform"),
                 GammaPath(1, 3, 3), GammaPath(3, 2, 3, gamma="sinesquared", a=0.5)]:
        a, a_dot = path(t)
        assert a.shape == (41, 4) and a.dtype == DT
        check_simplex(a, 3)
        assert a_dot.sum(1).abs().max() < 1e-12
        assert torch.equal(a[0], torch.eye(4, dtype=DT)[path.start])
        assert torch.equal(a[-1], torch.eye(4, dtype=DT)[path.end])
        # derivative matches central finite differences away from kinks
        tm = torch.tensor([0.13, 0.41, 0.77], dtype=DT)
        h = 1e-6
        fd = (path(tm + h)[0] - path(tm - h)[0]) / (2 * h)
        assert torch.allclose(path(tm)[1], fd, atol=1e-6), path
    # timing: "length" gives constant speed |ȧ| over segments of different lengths, "uniform" equal time spans
    pts = [1, [0.2, 0.7, 0.1], 2]
    l1, l2 = 0.14**0.5, 1.34**0.5  # |p_1 − e_1|, |e_2 − p_1|
    tm = torch.tensor([0.05, 0.08, 0.5, 0.9], dtype=DT)
    speed = PolylinePath(pts, 2)(tm)[1].norm(dim=1)
    assert torch.allclose(speed, torch.full((4,), l1 + l2, dtype=DT))
    assert torch.allclose(PolylinePath(pts, 2).knots, torch.tensor([0, l1 / (l1 + l2), 1], dtype=DT))
    uniform = PolylinePath(pts, 2, timing="uniform")
    assert torch.allclose(uniform.knots, torch.tensor([0, 0.5, 1], dtype=DT))
    assert torch.allclose(uniform(0.5)[0], torch.tensor([0.2, 0.7, 0.1], dtype=DT))
    poly = PolylinePath([1, "barycentre", 2], 2)
    assert torch.allclose(poly(0.5)[0], torch.full((3,), 1 / 3, dtype=DT))
    assert poly.support == {0, 1, 2} and EdgePath(1, 2, 2).support == {1, 2}
    assert isinstance(mm_schedule := Multimarginal(2).restrict(poly).schedule, SimplexSchedule) and mm_schedule.on_face


def test_bad_input_raises_value_error():
    mm = Multimarginal(2)
    x = torch.randn(4, 3, dtype=DT)
    xs = torch.randn(4, 3, 3, dtype=DT)
    bad_a = {
        "sum": torch.tensor([[0.5, 0.3, 0.3]] * 4, dtype=DT),
        "negative": torch.tensor([[-0.1, 0.6, 0.5]] * 4, dtype=DT),
        "width": torch.tensor([[0.25] * 4] * 4, dtype=DT),
    }
    for a in bad_a.values():
        with pytest.raises(ValueError):
            mm.sample(xs, a)
        with pytest.raises(ValueError):
            mm.project(xs, a, x)
    with pytest.raises(ValueError, match="K\\+1=3"):
        mm.sample(torch.randn(4, 4, 3, dtype=DT))  # K + 2 marginals
    with pytest.raises(ValueError, match="K\\+1=3"):
        mm.sample([x, x])
    with pytest.raises(ValueError, match="only xs\\[0\\]"):
        mm.sample([x, None, x])
    with pytest.raises(ValueError, match="heads"):
        mm.loss(torch.randn(4, 2, 3, dtype=DT), mm.sample(xs))
    with pytest.raises(ValueError, match="weight"):
        mm.loss(xs, mm.sample(xs), weight=torch.ones(3, dtype=DT))
    with pytest.raises(ValueError, match="tangent"):
        mm.velocity(xs, torch.ones(4, 3, dtype=DT))
    for bad in (lambda: Multimarginal(0), lambda: Multimarginal(2, edge_prob=1.5),
                lambda: Multimarginal(2, edges=[(1, 1)]), lambda: EdgePath(1, 1, 2), lambda: EdgePath(0, 3, 2),
                lambda: PolylinePath([1, [0.5, 0.6, 0.0]], 2), lambda: PolylinePath([1, 1, 2], 2),
                lambda: PolylinePath([1, 2], 2, timing="fast"), lambda: GammaPath(0, 1, 2),
                lambda: GammaPath(1, 2, 2, a=5.0), lambda: mm.restrict(EdgePath(1, 2, 3)),
                lambda: mm.restrict(PolylinePath([1, "barycentre"], 2)), lambda: EdgePath(1, 2, 2)(1.5)):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(TypeError):
        mm.restrict("edge")
