"""InverseProblem: validation, simulation, expansion and data terms against closed forms."""

from __future__ import annotations

import pytest
import torch

from genlab.inverse import DenseOperator, Inpainting, InverseProblem, PhaseRetrieval
from genlab.utils import randn_per_sample


def _dense(gen: torch.Generator) -> DenseOperator:
    return DenseOperator(torch.randn(3, 5, generator=gen, dtype=torch.float64))


def test_simulate_matches_manual_measurement(gen: torch.Generator) -> None:
    op = _dense(gen)
    x = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    p = InverseProblem.simulate(op, x, 0.3, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    noise = randn_per_sample((4, 3), generator=g, dtype=torch.float64)
    torch.testing.assert_close(p.y, x @ op.matrix.T + 0.3 * noise)
    assert p.x_shape == (5,) and p.y_shape == (3,) and p.sigma == 0.3


def test_residual_and_fidelity_closed_form(gen: torch.Generator) -> None:
    op = _dense(gen)
    y = torch.randn(1, 3, generator=gen, dtype=torch.float64)
    p = InverseProblem(op, y, 0.5)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    r = y - x @ op.matrix.T
    torch.testing.assert_close(p.residual(x), r)
    torch.testing.assert_close(p.data_fidelity(x), r.pow(2).sum(1) / (2 * 0.25))
    torch.testing.assert_close(p.residual_norm(x), r.norm(dim=1))


def test_expand_repeats_one_measurement(gen: torch.Generator) -> None:
    p = InverseProblem(_dense(gen), torch.randn(1, 3, generator=gen, dtype=torch.float64), 0.1)
    q = p.expand(4)
    assert q.y.shape == (4, 3) and bool((q.y == p.y).all())
    with pytest.raises(ValueError, match="measurements"):
        q.expand(5)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"y": torch.zeros(3)}, ValueError, "batch-first"),
        ({"y": torch.zeros(1, 4)}, ValueError, "per-sample shape"),
        ({"sigma": -1.0}, ValueError, "sigma"),
        ({"y": torch.full((1, 3), float("nan"))}, ValueError, "NaN"),
    ],
)
def test_bad_inputs_are_named(gen: torch.Generator, kwargs: dict, err: type, match: str) -> None:
    args = {"op": _dense(gen), "y": torch.zeros(1, 3), "sigma": 0.1, **kwargs}
    with pytest.raises(err, match=match):
        InverseProblem(**args)


def test_op_must_be_an_operator() -> None:
    with pytest.raises(TypeError, match="DenseOperator"):
        InverseProblem(torch.eye(3), torch.zeros(1, 3), 0.1)  # type: ignore[arg-type]


def test_x_shape_inference_and_nonlinear_ops() -> None:
    mask = torch.ones(1, 4, 4)
    p = InverseProblem(Inpainting(mask), torch.zeros(1, 1, 4, 4), 0.0)
    assert p.x_shape == (1, 4, 4) and p.is_linear
    with pytest.raises(ValueError, match="x_shape"):
        InverseProblem(PhaseRetrieval(oversampling=0.0), torch.zeros(1, 1, 4, 4), 0.1)
    q = InverseProblem(PhaseRetrieval(oversampling=0.0), torch.zeros(1, 1, 4, 4), 0.1, x_shape=(1, 4, 4))
    assert q.x_shape == (1, 4, 4) and not q.is_linear
    with pytest.raises(ValueError, match="data_fidelity needs sigma"):
        p.data_fidelity(torch.zeros(2, 1, 4, 4))
