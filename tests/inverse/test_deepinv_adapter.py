"""genlab operators as deepinv physics and back: A, A_adjoint, A_dagger and prox_l2 against the dense matrix."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from genlab.inverse.operators import DenseOperator, Inpainting, SuperResolution
from genlab.inverse.operators.deepinv_adapter import from_deepinv, to_deepinv

ROOT = Path(__file__).resolve().parents[2]


def _deepinv() -> Any:
    """deepinv, through the benchmarks' torchvision shim when the venv's torchvision cannot load (CPU torch)."""
    if importlib.util.find_spec("deepinv") is None:
        pytest.skip("deepinv is not installed (optional: pip install deepinv)")
    try:
        return importlib.import_module("deepinv")
    except (ImportError, RuntimeError):
        pass
    try:
        sys.path.insert(0, str(ROOT))
        from experiments._inverse_peers import load_deepinv

        return load_deepinv().module
    except Exception as err:  # noqa: BLE001 - any failure to import an optional peer skips
        pytest.skip(f"deepinv does not import here: {err}")
    finally:
        if sys.path and sys.path[0] == str(ROOT):
            sys.path.pop(0)


def _dense(op: Any, x_shape: tuple[int, ...]) -> torch.Tensor:
    n = int(torch.tensor(x_shape).prod())
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *x_shape)
    return op.A(eye).reshape(n, -1).T


OPERATORS = {
    "dense": lambda: (DenseOperator(torch.randn(5, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
                                    x_shape=(1, 2, 4)), (1, 2, 4)),
    "inpainting": lambda: (Inpainting(torch.tensor([[[1.0, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1], [1, 0, 1, 1]]],
                                                   dtype=torch.float64)), (1, 4, 4)),
    "superres": lambda: (SuperResolution(factor=2, x_shape=(1, 4, 4)), (1, 4, 4)),
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_genlab_operator_as_deepinv_physics(name: str) -> None:
    _deepinv()
    op, x_shape = OPERATORS[name]()
    op = op.double()
    physics = to_deepinv(op, x_shape=x_shape)
    m = _dense(op, x_shape)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, *x_shape, generator=g, dtype=torch.float64)
    y = physics.A(x)
    torch.testing.assert_close(y.reshape(3, -1), x.reshape(3, -1) @ m.T)
    torch.testing.assert_close(physics.A_adjoint(y).reshape(3, -1), y.reshape(3, -1) @ m)
    torch.testing.assert_close(physics.A_dagger(y).reshape(3, -1), y.reshape(3, -1) @ torch.linalg.pinv(m).T)
    z, gamma = torch.randn_like(x), 0.7
    expected = torch.linalg.solve(m.T @ m + torch.eye(m.shape[1], dtype=m.dtype) / gamma,
                                  (y.reshape(3, -1) @ m + z.reshape(3, -1) / gamma).T).T
    torch.testing.assert_close(physics.prox_l2(z, y, gamma).reshape(3, -1), expected)
    noisy = to_deepinv(op, sigma=0.1, x_shape=x_shape)
    assert float((noisy(x) - y).std()) > 0.01


def test_deepinv_physics_as_genlab_operator() -> None:
    dinv = _deepinv()
    mask = (torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(2)) > 0.4).double()
    physics = dinv.physics.Inpainting(img_size=(1, 4, 4), mask=mask)
    op = from_deepinv(physics, x_shape=(1, 4, 4))
    m = _dense(op, (1, 4, 4))
    assert torch.equal(torch.diag(m.T @ m).reshape(1, 4, 4), mask)
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    y = op.A(x)
    torch.testing.assert_close(op.At(y).reshape(2, -1), y.reshape(2, -1) @ m)
    torch.testing.assert_close(op.pinv(y, tol=1e-12).reshape(2, -1), y.reshape(2, -1) @ torch.linalg.pinv(m).T)
    with pytest.raises(ValueError, match=r"shape \(B, 1, 4, 4\)"):
        op.A(torch.zeros(1, 1, 5, 5))
    with pytest.raises(TypeError, match="deepinv Physics"):
        from_deepinv(object(), x_shape=(1, 4, 4))


def test_to_deepinv_refuses_bad_arguments() -> None:
    _deepinv()
    with pytest.raises(TypeError, match="genlab Operator"):
        to_deepinv(torch.nn.Identity())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sigma"):
        to_deepinv(Inpainting(torch.ones(1, 2, 2)), sigma=-1.0)
