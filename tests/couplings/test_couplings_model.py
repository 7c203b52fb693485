"""ModelCoupling (re-pairing with an injected simulation) and the layering rule: couplings/ imports neither
samplers nor training."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import genlab.couplings
from genlab.couplings import Independent, MaskedCoupling, ModelCoupling
from genlab.utils import randn_like_per_sample


def _euler_flow(x: torch.Tensor, *, generator: torch.Generator | None = None, steps: int = 8) -> torch.Tensor:
    """A deterministic per-sample ODE map: Euler steps of dx/dt = A x + b (rotation plus drift)."""
    a = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=x.dtype)
    b = torch.tensor([0.5, -0.25], dtype=x.dtype)
    for _ in range(steps):
        x = x + (x @ a.T + b) / steps
    return x


def _noisy_flow(x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """A stochastic per-sample map (noise drawn one sample at a time)."""
    return 0.5 * x + 0.1 * randn_like_per_sample(x, generator=generator)


def test_forward_pairs_x0_with_its_simulation() -> None:
    x1 = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    pair = ModelCoupling(_euler_flow).sample(x1, generator=gen)
    ref_gen = torch.Generator().manual_seed(1)
    torch.randint(0, 2**62, (1,), generator=ref_gen)  # the simulation's child seed comes first
    ref = Independent().sample(x1, generator=ref_gen)
    torch.testing.assert_close(pair.x0, ref.x0, rtol=0, atol=0)  # then the base draw, untouched
    torch.testing.assert_close(pair.x1, _euler_flow(ref.x0), rtol=0, atol=0)  # x1 = simulate(x0)
    assert torch.equal(gen.get_state(), ref_gen.get_state())  # nothing else consumed the caller's stream
    assert not torch.equal(pair.x1, x1)  # the data are re-paired, not passed through


def test_backward_pairs_data_with_its_simulation_and_keeps_cond() -> None:
    x1 = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    base = MaskedCoupling(tiles=4, p=0.5)
    seen: dict[str, torch.Tensor] = {}

    def simulate(x, *, generator, cond):
        seen["cond"] = cond
        return -x

    pair = ModelCoupling(simulate, base=base, direction="backward").sample(
        x1, generator=torch.Generator().manual_seed(2)
    )
    ref_gen = torch.Generator().manual_seed(2)
    torch.randint(0, 2**62, (1,), generator=ref_gen)
    ref = base.sample(x1, generator=ref_gen)
    assert torch.equal(pair.x1, x1) and torch.equal(pair.x0, -x1)
    assert torch.equal(pair.cond, ref.cond) and torch.equal(seen["cond"], ref.cond)
    assert torch.equal(pair.mask, ref.mask)


@pytest.mark.parametrize("simulate", [_euler_flow, _noisy_flow], ids=["ode", "sde"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_batch_size_invariant_and_deterministic(simulate, direction) -> None:
    x1 = torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
    coupling = ModelCoupling(simulate, direction=direction)
    big = coupling.sample(x1, generator=torch.Generator().manual_seed(5))
    again = coupling.sample(x1, generator=torch.Generator().manual_seed(5))
    small = coupling.sample(x1[:5], generator=torch.Generator().manual_seed(5))
    for a, b in ((big.x0, again.x0), (big.x1, again.x1)):
        assert torch.equal(a, b)
    torch.testing.assert_close(big.x0[:5], small.x0, rtol=0, atol=0)
    torch.testing.assert_close(big.x1[:5], small.x1, rtol=0, atol=0)


def test_simulation_runs_without_gradients() -> None:
    w = torch.nn.Parameter(torch.ones(()))
    pair = ModelCoupling(lambda x, *, generator: w * x).sample(
        torch.randn(4, 2), generator=torch.Generator().manual_seed(0)
    )
    assert not pair.x1.requires_grad


def test_bad_input_is_answered_clearly() -> None:
    x1 = torch.randn(4, 2)
    with pytest.raises(TypeError, match="simulate must be a callable"):
        ModelCoupling("heun")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="direction must be"):
        ModelCoupling(_euler_flow, direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="base must be a Coupling"):
        ModelCoupling(_euler_flow, base="independent")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="simulate returned shape"):
        ModelCoupling(lambda x, *, generator: x[:, :1]).sample(x1)
    with pytest.raises(ValueError, match="NaN"):
        ModelCoupling(lambda x, *, generator: x * float("nan")).sample(x1)
    with pytest.raises(TypeError, match="batch must be a tensor"):
        ModelCoupling(_euler_flow).sample("not a batch")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against genlab.couplings
                names.add("genlab.couplings" + ("." + node.module if node.module else ""))
            elif node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_couplings_import_neither_samplers_nor_training(tmp_path) -> None:
    files = sorted(Path(genlab.couplings.__file__).parent.glob("*.py"))
    assert len(files) >= 6 and any(f.name == "model.py" for f in files)
    for path in files:
        bad = sorted(
            n
            for n in _imported_modules(path)
            if n.split(".")[:2] in (["genlab", "samplers"], ["genlab", "training"], ["genlab", "inverse"])
        )
        assert not bad, f"{path.name} imports {bad}"
    # the check can fail: it sees an import of samplers written in any form
    probe = tmp_path / "probe.py"
    probe.write_text("from genlab import samplers\nimport genlab.training.trainer as t\n")
    found = _imported_modules(probe)
    assert "genlab.samplers" in found and "genlab.training.trainer" in found
