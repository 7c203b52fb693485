"""Searched solvers (issue 11, part B): NeuralSolver/DSS and evolutionary search, presets, the ``searched`` sampler.

Analytic checks: at initial values the searched table *is* the hand-designed solver (bit for bit); any searched
coefficients keep the step exact for a constant data prediction (point-mass data: the PF-ODE solution is closed
form); on the Gaussian oracle a search lowers the error monotonically and stays above the teacher's own error
against the exact flow map (a 5-step solver cannot beat its 200-step teacher). Presets round-trip through JSON and
refuse a field on another path.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest
import torch

import genlab
from genlab.interpolants import BrownianBridge, Interpolant, RectifiedFlow, StochasticInterpolant, VPDiffusion
from genlab.samplers import SearchedSampler, SolverPreset, get_sampler, load_preset, log_snr
from genlab.samplers.multistep import data_form_table
from genlab.samplers.search import (
    NeuralSolver,
    base_table,
    data_form_rows,
    evolutionary_search,
    make_problem,
    search_solver,
)
from genlab.samplers.semilinear import semilinear_grid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gaussian_oracle import gaussian_field, gaussian_flow_map

F64 = torch.float64


def _gauss(interp: Interpolant, d: int = 3, s: float | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(d, generator=g, dtype=F64)
    std = torch.rand(d, generator=g, dtype=F64) + 0.3 if s is None else torch.full((d,), s, dtype=F64)
    return m, std, gaussian_field(interp, m, std)


@pytest.mark.parametrize("base", ["dpmpp_1s", "dpmpp_2m", "dpmpp_3m"])
@pytest.mark.parametrize("interp", [RectifiedFlow(), VPDiffusion()], ids=["rf", "vp"])
def test_initial_values_reproduce_hand_designed_solver_exactly(base: str, interp: Interpolant) -> None:
    _, _, fld = _gauss(interp)
    prob = make_problem(fld, 6, shape=(3,), noises=8, teacher_steps=12)
    start = base_table(prob, base)
    ns = NeuralSolver(start, solver_type="midpoint")
    table = ns.to_table(interp)
    assert torch.equal(table.times, start.times) and table.weights == start.weights and table.ratio == start.ratio
    preset = SolverPreset(table, {"model": "gauss", "path": prob.path, "field_kind": fld.kind, "nfe": 6,
                                  "loss": 0.0, "method": "init"})
    grid = log_snr(6, interp, t_start=prob.t_start, t_end=prob.t_end)
    a = get_sampler(base).sample(fld, prob.x_init, grid).x
    b = SearchedSampler(preset=preset).sample(fld, prob.x_init, preset.times).x
    assert torch.equal(a, b)
    # the differentiable roll-out (torch weights) is the same solver
    c = ns.rollout(prob, torch.arange(8))[-1]
    torch.testing.assert_close(c, a, rtol=0, atol=1e-12)


def test_torch_weights_match_genlab_data_form_table() -> None:
    interp = StochasticInterpolant("trig", gamma="zero")
    grid = log_snr(7, interp)
    tab = semilinear_grid(interp, grid)
    orders = [1, 2, 3, 3, 2, 3, 1]
    for solver_type in ("midpoint", "heun"):
        ref = data_form_table(tab, orders, solver_type=solver_type)
        ratios, rows, _ = data_form_rows(tab.lam, tab.data, tab.noise, None, orders, solver_type)
        for i in range(7):
            assert float(ratios[i]) == pytest.approx(ref.ratio[i], rel=1e-12)
            assert [float(w) for w in rows[i]] == pytest.approx(list(ref.weights[i]), rel=1e-10, abs=1e-13)


@pytest.mark.parametrize("interp", [RectifiedFlow(), VPDiffusion(), BrownianBridge(0.5, conditional_source=True)], ids=["rf", "vp", "bridge"])
def test_searched_coefficients_keep_point_mass_data_exact(interp: Interpolant) -> None:
    """x̂1 ≡ m: the exact solution is n_t/n_s·x + (β_t − β_s n_t/n_s)·m (+ known terms); any consistent table hits it."""
    d = 3
    m = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    fld = gaussian_field(interp, m, 0.0, k=0.0)
    x_init = cond = None
    if interp.conditional_source:
        cond = torch.randn(16, d, generator=torch.Generator().manual_seed(3), dtype=F64)
        x_init = cond.clone()
    prob = make_problem(fld, 5, shape=(d,), noises=16, x_init=x_init, cond=cond, teacher_steps=10)
    ns = NeuralSolver(base_table(prob, "dpmpp_2m"))
    with torch.no_grad():
        ns.raw.add_(torch.randn(5, generator=torch.Generator().manual_seed(1), dtype=F64) * 0.5)
        ns.coef.add_(torch.randn(5, 5, generator=torch.Generator().manual_seed(2), dtype=F64))
    table = ns.to_table(interp)
    assert table.weights != base_table(prob, "dpmpp_2m").weights
    preset = SolverPreset(table, {"model": "point", "path": prob.path, "field_kind": fld.kind, "nfe": 5,
                                  "loss": 0.0, "method": "test"})
    out = SearchedSampler(preset=preset).sample(fld, prob.x_init, table.times, cond=cond).x
    exact = gaussian_flow_map(interp, m, 0.0, prob.x_init, prob.t_start, prob.t_end, x0=cond)
    torch.testing.assert_close(out, exact, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ns.rollout(prob, torch.arange(16))[-1], exact, rtol=1e-10, atol=1e-10)


def test_search_on_gaussian_oracle_reduces_error_monotonically_above_floor() -> None:
    interp = RectifiedFlow()
    m, s, fld = _gauss(interp, d=4, seed=5)
    prob = make_problem(fld, 4, shape=(4,), noises=48, teacher_steps=200, seed=1)
    exact = gaussian_flow_map(interp, m, s, prob.x_init, prob.t_start, prob.t_end)
    val = prob.validation
    floor = float((prob.teacher_end - exact).pow(2).mean().sqrt())  # the teacher's own error vs the exact map
    res = search_solver(fld, 4, problem=prob, evolution_options={"epochs": 3, "population": 12, "select": 4,
                                                                 "mutations": 5, "crossovers": 3},
                        dss_options={"iterations": 30, "eval_every": 10})
    for stage in ("evolution", "dss"):
        errs = [h[3] for h in res.history if h[0] == stage]
        assert errs and all(b <= a for a, b in itertools.pairwise(errs)), (stage, errs)
    assert res.error <= res.start_error
    assert res.error < 0.5 * res.start_error
    start = base_table(prob, "dpmpp_2m")

    def exact_err(table):
        x = prob.run_table(table, val)
        return float((x - exact[val]).pow(2).mean().sqrt())

    assert exact_err(res.preset.table) < exact_err(start)
    assert exact_err(res.preset.table) > floor > 0
    assert res.preset.provenance["search_nfe"] == res.nfe_spent > 200


def test_evolution_elitism_and_steps_kept() -> None:
    interp = VPDiffusion()
    _, _, fld = _gauss(interp, d=2, seed=2)
    prob = make_problem(fld, 5, shape=(2,), noises=24, teacher_steps=40)
    evo = evolutionary_search(prob, base_table(prob, "dpmpp_2m"), population=10, epochs=3, select=4, mutations=4,
                              crossovers=2)
    fits = [h[2] for h in evo.history]
    assert all(b <= a for a, b in itertools.pairwise(fits))
    assert evo.table.steps == 5 and len(evo.candidate[0]) == 4
    assert all(1 <= p <= min(i + 1, 3) for i, p in enumerate(evo.table.orders))


def test_preset_round_trip_and_refusals(tmp_path: Path) -> None:
    interp = RectifiedFlow()
    _, _, fld = _gauss(interp, d=2)
    res = search_solver(fld, 4, shape=(2,), noises=16, teacher_steps=16, method="dss",
                        dss_options={"iterations": 3, "eval_every": 1}, model="gauss2")
    path = res.preset.save(tmp_path / "p.json")
    assert not list(tmp_path.glob("*.tmp*"))
    back = load_preset(path)
    stored = json.loads(path.read_text())
    assert back.name == "p" and stored["name"] == "gauss2_nfe4"  # loaded presets are named by their file
    assert {**back.to_dict(), "name": stored["name"]} == stored
    assert torch.equal(back.times, res.preset.times) and back.table.weights == res.preset.table.weights
    assert back.provenance["path"] == repr(interp) and back.provenance["nfe"] == 4
    # genlab.sample takes the preset's grid; the run equals the table run on the same noise
    out = genlab.sample(fld, sampler="searched", preset=str(path), steps=4, n=16, shape=(2,), seed=0)
    assert out.nfe == 4 and torch.equal(out.grid.cpu(), back.times)
    again = genlab.sample(fld, sampler="searched", preset=back, steps=4, n=16, shape=(2,), seed=0)
    assert torch.equal(out.x, again.x)
    with pytest.raises(ValueError, match="steps=4"):
        genlab.sample(fld, sampler="searched", preset=back, steps=10, n=4, shape=(2,))
    with pytest.raises(ValueError, match="grid differs"):
        genlab.sample(fld, sampler="searched", preset=back, steps=4, grid="uniform", n=4, shape=(2,))
    # another path: refused, naming both paths
    other = gaussian_field(StochasticInterpolant("trig", gamma="zero"), torch.zeros(2, dtype=F64), 1.0)
    with pytest.raises(ValueError, match="searched on the path"):
        genlab.sample(other, sampler="searched", preset=back, steps=4, n=4, shape=(2,))
    with pytest.raises(ValueError, match="neither a file nor a shipped preset"):
        SearchedSampler(preset="no_such_preset")
    with pytest.raises(ValueError, match="not a genlab solver preset"):
        SolverPreset.from_dict({"table": {}})
    with pytest.raises(ValueError, match="no shipped preset|pass preset="):
        genlab.sample(fld, sampler="searched", steps=4, n=4, shape=(2,))


def test_search_arguments_are_checked() -> None:
    _, _, fld = _gauss(RectifiedFlow(), d=2)
    with pytest.raises(ValueError, match="nfe"):
        make_problem(fld, 1, shape=(2,))
    with pytest.raises(ValueError, match="shape"):
        make_problem(fld, 4)
    with pytest.raises(ValueError, match="finite log-SNR"):
        make_problem(fld, 4, shape=(2,), t_end=1.0)
    with pytest.raises(ValueError, match="method"):
        search_solver(fld, 4, shape=(2,), method="random")
    with pytest.raises(ValueError, match="base"):
        search_solver(fld, 4, shape=(2,), base="heun")


def test_cli_search_then_sample_with_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from genlab.cli import main

    root = Path(__file__).resolve().parents[2]
    run = tmp_path / "run"
    assert main(["train", str(root / "configs" / "moons_tiny.yaml"), "--out", str(run), "--set", "train.steps=20",
                 "--set", "train.ckpt_every=20"]) == 0
    capsys.readouterr()
    out = tmp_path / "p.json"
    assert main(["search", "--run", str(run), "--nfe", "4", "--noises", "16", "--epochs", "2", "--iterations", "4",
                 "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["files"] == [str(out)] and printed["error"] <= printed["start_error"]
    preset = load_preset(out)
    assert preset.steps == 4 and preset.provenance["model"].startswith("moons_tiny")
    assert main(["search", "--run", str(run), "--nfe", "4", "--out", str(out)]) == 2  # never replaced silently
    assert "--overwrite" in capsys.readouterr().err
    pic = tmp_path / "s.pt"
    assert main(["sample", "--run", str(run), "--preset", str(out), "--n", "8", "--out", str(pic)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["sampler"] == "searched" and printed["nfe"] == 4 and printed["steps"] == 4


def test_shipped_presets_match_their_configs() -> None:
    """Presets shipped for configs (``genlab/assets/presets/<config>_nfe<N>.json``) load, are tied to that config's
    path and run on an exact field of it (one NFE per step)."""
    from genlab.interpolants.presets import build_interpolant
    from genlab.samplers.searched import shipped_presets
    from genlab.training import load_config

    root = Path(__file__).resolve().parents[2]
    shipped = shipped_presets()
    assert shipped, "no presets in genlab/assets/presets"
    for name in shipped:
        config_name, _, nfe = name.rpartition("_nfe")
        cfg = load_config(root / "configs" / f"{config_name}.yaml")
        interp = build_interpolant(cfg.interpolant.name, **cfg.interpolant.kwargs)
        preset = load_preset(name)
        assert preset.provenance["path"] == repr(interp) and preset.steps == int(nfe), name
        assert preset.provenance["field_kind"] == cfg.model.kind and preset.provenance["model"].startswith(config_name)
        fld = gaussian_field(interp, torch.zeros(2, dtype=F64), 0.7, kind=cfg.model.kind)
        out = genlab.sample(fld, sampler="searched", preset=name, steps=preset.steps, n=8, shape=(2,), seed=0,
                            dtype=F64)
        assert out.nfe == preset.steps and bool(torch.isfinite(out.x).all())


def test_genlab_sample_takes_the_preset_step_count_by_default() -> None:
    """``genlab.sample(field, sampler="searched", preset=P)`` with no ``steps=`` runs the preset's own grid."""
    import genlab

    interp = VPDiffusion()
    _, _, fld = _gauss(interp)
    prob = make_problem(fld, 6, shape=(3,), noises=8, teacher_steps=12)
    preset = SolverPreset(base_table(prob, "dpmpp_2m"), {"model": "gauss", "path": prob.path,
                                                         "field_kind": fld.kind, "nfe": 6, "loss": 0.0,
                                                         "method": "init"})
    res = genlab.sample(fld, sampler="searched", preset=preset, n=5, shape=(3,), seed=0)
    assert res.nfe == 6
    assert genlab.sample(fld, sampler="dpmpp_2m", n=5, shape=(3,), seed=0).nfe == 10  # the usual default
