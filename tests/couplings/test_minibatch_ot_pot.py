"""POT as a backend of the minibatch-OT coupling agrees with genlab's solvers on small cases."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("ot")

from genlab.couplings.minibatch_ot import MinibatchOT, ot_plan


def _batch(seed: int, b: int = 24, d: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g, dtype=torch.float64), torch.randn(b, d, generator=g, dtype=torch.float64) + 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_plans_agree(seed: int) -> None:
    x0, x1 = _batch(seed)
    ours, pot = ot_plan(x0, x1, method="exact"), ot_plan(x0, x1, method="exact", backend="pot")
    cost = torch.cdist(x0, x1) ** 2
    assert float((ours * cost).sum()) == pytest.approx(float((pot * cost).sum()), rel=1e-12)
    torch.testing.assert_close(ours, pot)  # generic costs have a unique optimal permutation


@pytest.mark.parametrize(("reg", "normalize", "solver"), [(0.05, "max", "sinkhorn"), (0.2, "none", "newton")])
def test_sinkhorn_plans_agree(reg: float, normalize: str, solver: str) -> None:
    x0, x1 = _batch(3)
    ours = ot_plan(x0, x1, method="sinkhorn", reg=reg, normalize=normalize, n_iter=5000, tol=1e-12, solver=solver)
    pot = ot_plan(x0, x1, method="sinkhorn", reg=reg, normalize=normalize, n_iter=20000, tol=1e-12, backend="pot")
    torch.testing.assert_close(ours, pot, rtol=1e-6, atol=1e-9)


def test_coupling_takes_the_backend() -> None:
    x0, x1 = _batch(4)
    a = MinibatchOT(method="exact").plan(x0, x1)
    b = MinibatchOT(method="exact", backend="pot").plan(x0, x1)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="backend"):
        MinibatchOT(backend="scipy")  # type: ignore[arg-type]
