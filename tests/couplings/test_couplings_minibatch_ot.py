"""Minibatch OT couplings: exact assignment, Sinkhorn plans, pair sampling and the SB closed form."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch

from genlab.couplings import (
    Coupling,
    CouplingSample,
    DataDependent,
    Independent,
    MinibatchOT,
    Paired,
    ot_plan,
    sample_pairs,
    sinkhorn_plan,
    squared_cost,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_squared_cost_matches_direct_formula() -> None:
    a = torch.randn(5, 2, 3, generator=_gen(), dtype=torch.float64)
    b = torch.randn(4, 2, 3, generator=_gen(1), dtype=torch.float64)
    direct = ((a[:, None] - b[None]) ** 2).flatten(2).sum(-1)
    torch.testing.assert_close(squared_cost(a, b), direct, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="per-sample size"):
        squared_cost(a, torch.zeros(4, 5))


def test_exact_recovers_known_permutation() -> None:
    g = _gen(1)
    x0 = torch.randn(16, 3, generator=g, dtype=torch.float64)
    perm = torch.randperm(16, generator=g)
    x1 = x0[perm] + 1e-4 * torch.randn(16, 3, generator=g, dtype=torch.float64)
    plan = ot_plan(x0, x1, method="exact")
    expected = torch.zeros(16, 16, dtype=torch.float64)
    expected[perm, torch.arange(16)] = 1 / 16  # x1_j ≈ x0_{perm[j]}
    assert torch.equal(plan, expected)
    out = MinibatchOT(Paired()).sample((x0[torch.randperm(16, generator=g)], x1))
    assert torch.equal(out.x0, x0[perm]) and torch.equal(out.x1, x1)


def test_exact_is_brute_force_optimal_b6() -> None:
    g = _gen(2)
    x1 = torch.randn(6, 2, generator=g, dtype=torch.float64)
    coupling = MinibatchOT()
    base = Independent().sample(x1, generator=_gen(3))
    out = coupling.sample(x1, generator=_gen(3))
    assert torch.equal(out.x1, x1)
    # re-paired x0 is a permutation of the independent draw
    assert torch.equal(out.x0.sort(0).values, base.x0.sort(0).values)
    cost = squared_cost(base.x0, x1)
    brute = min(sum(float(cost[p[j], j]) for j in range(6)) for p in itertools.permutations(range(6)))
    before = float(((base.x0 - x1) ** 2).sum())
    after = float(((out.x0 - out.x1) ** 2).sum())
    assert after <= before + 1e-12
    assert after == pytest.approx(brute, rel=1e-12, abs=1e-12)
    plan = ot_plan(base.x0, x1)
    assert float((plan * cost).sum()) * 6 == pytest.approx(brute, rel=1e-12)


def test_exact_1d_pairing_is_monotone() -> None:
    g = _gen(4)
    x1 = 3.0 + 0.5 * torch.randn(512, 1, generator=g, dtype=torch.float64)
    out = MinibatchOT().sample(x1, generator=g)
    order = out.x0[:, 0].argsort()
    assert bool((out.x1[order, 0].diff() >= 0).all())


@pytest.mark.parametrize("normalize", ["max", "mean", "none"])
def test_sinkhorn_marginals_are_uniform(normalize: str) -> None:
    x0 = torch.randn(12, 2, generator=_gen(5), dtype=torch.float64)
    x1 = torch.randn(9, 2, generator=_gen(6), dtype=torch.float64) + 1
    plan = ot_plan(x0, x1, method="sinkhorn", reg=0.05 if normalize != "none" else 0.5, normalize=normalize)
    assert plan.shape == (12, 9) and bool((plan >= 0).all())
    torch.testing.assert_close(plan.sum(1), torch.full((12,), 1 / 12, dtype=torch.float64), rtol=0, atol=1e-6)
    torch.testing.assert_close(plan.sum(0), torch.full((9,), 1 / 9, dtype=torch.float64), rtol=0, atol=1e-6)
    # Gibbs form: P_ij ∝ a_i b_j exp(−C_ij/ε) ⇒ log P + C/ε has rank one (u_i + v_j)
    cost = squared_cost(x0, x1)
    scale = {"max": cost.max(), "mean": cost.mean(), "none": torch.tensor(1.0)}[normalize]
    eps = 0.05 if normalize != "none" else 0.5
    r = plan.log() + cost / scale / eps
    torch.testing.assert_close(r - r[:, :1] - r[:1, :] + r[0, 0], torch.zeros_like(r), rtol=0, atol=1e-9)


def test_sinkhorn_approaches_exact_as_reg_shrinks() -> None:
    g = _gen(7)
    angle = 2 * math.pi * torch.arange(12, dtype=torch.float64) / 12
    x0 = torch.stack([angle.cos(), angle.sin()], dim=1)  # well-separated points: unique optimal permutation
    perm = torch.randperm(12, generator=g)
    x1 = x0[perm] + 1e-3 * torch.randn(12, 2, generator=g, dtype=torch.float64)
    exact = ot_plan(x0, x1, method="exact")
    cost = squared_cost(x0, x1)
    cost = cost / cost.max()
    ot_cost = float((exact * cost).sum())
    dists = []
    for reg in (0.1, 0.03, 0.003):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # converged plans only
            plan = ot_plan(x0, x1, method="sinkhorn", reg=reg)
        gap = float((plan * cost).sum()) - ot_cost
        assert -1e-12 <= gap <= reg * math.log(12) + 1e-9  # ⟨P_ε, C⟩ − OT ≤ ε log B
        dists.append(float((plan - exact).abs().sum()) / 2)
    assert dists[0] > dists[1] > dists[2] and dists[2] < 1e-6


def test_sinkhorn_matches_gaussian_schrodinger_bridge_closed_form() -> None:
    # reg = 2σ² on the unnormalised cost ⇔ EOT with ½|x−y|² and ε = σ²; for N(0,1)→N(0,1) the optimal
    # correlation is (√(4+ε²) − ε)/2 (σ = 1: 0.618), see reference/interpolants.md §6.
    g = _gen(8)
    a = torch.randn(800, 1, generator=g, dtype=torch.float64)
    b = torch.randn(800, 1, generator=g, dtype=torch.float64)
    coupling = MinibatchOT.schrodinger_bridge(1.0)
    assert coupling.reg == 2.0 and coupling.normalize == "none"
    plan = coupling.plan(a, b)
    ac, bc = a[:, 0] - a.mean(), b[:, 0] - b.mean()
    corr = float((plan * ac[:, None] * bc[None, :]).sum() / (ac.std(unbiased=False) * bc.std(unbiased=False)))
    assert corr == pytest.approx((math.sqrt(5) - 1) / 2, abs=0.04)
    # the max-normalised plan with the same reg is a different (much less coupled) plan
    other = ot_plan(a, b, method="sinkhorn", reg=2.0)
    corr_other = float(
        (other * ac[:, None] * bc[None, :]).sum() / (ac.std(unbiased=False) * bc.std(unbiased=False))
    )
    assert corr_other < 0.2


def test_sample_pairs_follows_the_plan() -> None:
    plan = torch.tensor(
        [[0.20, 0.05, 0.00], [0.05, 0.10, 0.15], [0.00, 0.10, 0.35]], dtype=torch.float64
    )  # sums to 1
    g = _gen(9)
    n_calls = 3000
    joint = torch.zeros(3, 3, dtype=torch.float64)
    cond = torch.zeros(3, 3, dtype=torch.float64)
    for _ in range(n_calls):
        i, j = sample_pairs(plan, replace=True, generator=g)
        joint.index_put_((i, j), torch.ones(3, dtype=torch.float64), accumulate=True)
        i, j = sample_pairs(plan, replace=False, generator=g)
        assert torch.equal(j, torch.arange(3))
        cond[i, j] += 1
    # with replacement: (i, j) ~ P; without: i | j ~ P[:, j] / Σ_i P_ij, every column once
    assert (joint / joint.sum() - plan).abs().max() < 4 * (0.25 / (3 * n_calls)) ** 0.5
    assert (cond / n_calls - plan / plan.sum(0)).abs().max() < 4 * (0.25 / n_calls) ** 0.5
    assert joint[0, 2] == 0 and cond[2, 0] == 0  # zero-mass pairs never drawn


def test_minibatch_ot_sampling_uses_the_plan() -> None:
    x0 = torch.tensor([[0.0], [1.0], [2.5], [4.0]], dtype=torch.float64)
    x1 = torch.tensor([[0.5], [1.2], [3.0], [3.1]], dtype=torch.float64)
    g = _gen(10)
    # exact + replace: every sampled pair is an optimal pair
    opt = ot_plan(x0, x1) > 0
    for _ in range(20):
        out = MinibatchOT(Paired(), replace=True).sample((x0, x1), generator=g)
        i = (out.x0 == x0.T).double().argmax(1)
        j = (out.x1 == x1.T).double().argmax(1)
        assert bool(opt[i, j].all())
    # sinkhorn, no replacement: x1 keeps its order and gets its (near-certain) optimal partner
    far0 = torch.tensor([[0.0], [10.0], [20.0], [30.0]], dtype=torch.float64)
    far1 = torch.tensor([[30.1], [0.1], [20.1], [10.1]], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = MinibatchOT(Paired(), method="sinkhorn", reg=5e-3).sample((far0, far1), generator=g)
    assert torch.equal(out.x1, far1) and torch.equal(out.x0, far0[[3, 0, 2, 1]])
    a = MinibatchOT(method="sinkhorn").sample(torch.randn(8, 2), generator=_gen(1))
    b = MinibatchOT(method="sinkhorn").sample(a.x1, generator=_gen(1))
    assert torch.equal(a.x0, b.x0)


def test_minibatch_ot_cost_approaches_w2() -> None:
    # N(0, I) → N(μ, I): E|x1 − x0|² = |μ|² + 2d for the independent coupling, W2² = |μ|² = 16 for OT.
    x1 = torch.randn(256, 2, generator=_gen(11), dtype=torch.float64) + torch.tensor(
        [4.0, 0.0], dtype=torch.float64
    )
    costs = {}
    for name, coupling in {
        "independent": Independent(),
        "exact": MinibatchOT(),
        "sinkhorn": MinibatchOT(method="sinkhorn", reg=0.005),
    }.items():
        out = coupling.sample(x1, generator=_gen(12))
        costs[name] = float(((out.x1 - out.x0) ** 2).sum(1).mean())
    assert costs["independent"] == pytest.approx(20.0, abs=1.5)
    assert costs["exact"] < 17.5 and costs["sinkhorn"] < 17.5
    assert costs["exact"] <= costs["sinkhorn"] + 0.2


class _WithCond(Coupling):
    def sample(self, batch: object, *, generator: torch.Generator | None = None) -> CouplingSample:
        x1 = batch  # type: ignore[assignment]
        return CouplingSample(x0=torch.zeros_like(x1), x1=x1, cond=x1)


def test_minibatch_ot_bad_inputs() -> None:
    with pytest.raises(ValueError, match="sinkhorn"):
        ot_plan(torch.zeros(1025, 1), torch.zeros(1025, 1), method="exact")
    with pytest.raises(ValueError, match="equal batch sizes"):
        ot_plan(torch.zeros(3, 1), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="method"):
        MinibatchOT(method="emd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reg"):
        MinibatchOT(method="sinkhorn", reg=0.0)
    with pytest.raises(ValueError, match="normalize"):
        ot_plan(torch.zeros(3, 1), torch.ones(3, 1), method="sinkhorn", normalize="sum")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Coupling"):
        MinibatchOT(base="independent")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cond"):
        MinibatchOT(_WithCond()).sample(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="cond"):
        MinibatchOT(DataDependent(lambda x: x, 0.1)).sample(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="sigma"):
        MinibatchOT.schrodinger_bridge(0.0)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        sinkhorn_plan(torch.rand(6, 6, generator=_gen()), 1e-3, n_iter=5)
