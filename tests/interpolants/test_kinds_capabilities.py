"""The interpolant as the one authority on kinds, drifts and sampler capabilities, and the bottom-layer rule.

* ``Interpolant.kinds()`` decides which kinds a path (and a Field on it) supports; an unknown kind raises with
  that list, and the multi-head ``"g"`` is a kind of the vocabulary that only a restricted multimarginal path has.
* ``Interpolant.sde_drift`` (b ± ε s) against the exact forward/backward drifts of a Gaussian (Fokker–Planck),
  through every route that uses it (the method, ``convert``, ``Field.predict``).
* ``Interpolant.capabilities(kind)`` for every named constructor and every field kind.
* ``genlab/interpolants`` imports nothing from other genlab packages (only ``genlab.utils`` and itself).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants import (
    CAPABILITIES,
    KINDS,
    AlphaBlending,
    BrownianBridge,
    DiffusionBridge,
    EdgePath,
    GammaPath,
    Interpolant,
    Multimarginal,
    PolylinePath,
    RectifiedFlow,
    StochasticInterpolant,
    VEDiffusion,
    VPDiffusion,
)
from genlab.models.field import Field
from genlab.models.multimarginal_field import MultimarginalField, PathConditionedNet

torch.set_num_threads(1)
DT = torch.float64
GENLAB = Path(__file__).resolve().parents[2] / "genlab"


# ---------------------------------------------------------------------------------------------- kinds authority
def test_kinds_is_the_authority_and_unknown_kinds_list_it() -> None:
    rf, two = RectifiedFlow(), RectifiedFlow(source="data")
    assert set(rf.kinds()) == set(KINDS) - {"g"}
    assert two.kinds() == ("velocity", "x1", "x0")
    x = torch.randn(4, 2, dtype=DT)
    for interp in (rf, two):
        listed = str(interp.kinds())
        with pytest.raises(ValueError, match="unknown prediction kind") as err:
            interp.convert(x, "eps", "velocity", x, 0.5)
        assert listed in str(err.value)
        with pytest.raises(ValueError, match="unknown prediction kind") as err:
            interp.capabilities("eps")
        assert listed in str(err.value)
        with pytest.raises(ValueError, match="unknown kind") as err:
            Field(lambda x, t: x, interp, "eps")
        assert listed in str(err.value)
        # a kind of the vocabulary this path does not have: the same list
        with pytest.raises(ValueError, match="undefined") as err:
            interp.capabilities("g")
        assert listed in str(err.value)
        with pytest.raises(ValueError, match="not defined") as err:
            Field(lambda x, t: x, interp, "g")
        assert listed in str(err.value)
    with pytest.raises(ValueError, match="undefined") as err:
        two.convert(x, "x1", "score", x, 0.5)
    assert str(two.kinds()) in str(err.value)
    assert rf.check_kind("noise") == "noise"
    bridge = DiffusionBridge("vp")
    assert "x0" in bridge.kinds() and "x0" not in bridge.field_kinds()
    assert bridge.capabilities("x0") is None
    with pytest.raises(ValueError, match="not defined") as err:
        Field(lambda x, t, c: x, bridge, "x0")
    assert str(bridge.field_kinds()) in str(err.value)


def test_g_is_a_real_field_kind_on_a_restricted_multimarginal_path() -> None:
    mm = Multimarginal(2)
    rmm = mm.restrict(GammaPath(1, 2, 2))
    assert rmm.kinds()[0] == "g" and set(rmm.kinds()) == set(KINDS)
    assert rmm.field_kinds() == ("g",)
    mu = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-2.0, 0.5]], dtype=DT)

    def heads(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:  # exact g_k for unit-variance Gaussian marginals
        m = a @ mu
        c = (a**2).sum(1, keepdim=True)
        return mu[None] + a[:, :, None] * ((x - m) / c)[:, None, :]

    field = Field(PathConditionedNet(heads, rmm), rmm, "g")  # a plain Field of kind "g", no relabelling
    x = torch.randn(5, 2, dtype=DT)
    out = field(x, 0.3)
    assert field.kind == "g" and out.shape == (5, 3, 2) == rmm.prediction_shape("g", x)
    via_field = field.predict(x, 0.3, "velocity")
    assert torch.equal(via_field, rmm.convert(out, "g", "velocity", x, 0.3))
    assert torch.equal(via_field, MultimarginalField(heads, rmm).predict(x, 0.3, "velocity"))
    with pytest.raises(ValueError, match="not defined") as err:
        Field(lambda x, t: x, rmm, "velocity")
    assert "('g',)" in str(err.value)
    with pytest.raises(ValueError, match="must return"):
        Field(lambda x, t: x, rmm, "g")(x, 0.3)  # a (B, d) output is not K + 1 heads


# ---------------------------------------------------------------------------------------------- b ± ε s
def _gaussian_drifts(interp: Interpolant, mu: torch.Tensor, var: float, x: torch.Tensor, t: torch.Tensor,
                     eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact (b, s, forward drift, backward drift) for x1 ~ N(mu, var·I) on a Gaussian-source path.

    x_t ~ N(m, C·I) with m = β mu, C = α² + β² var. A linear drift f = ṁ + A(x − m) with noise √(2ε) keeps
    N(m, C) iff Ċ = 2AC + 2ε (forward in t) or Ċ = 2AC − 2ε (the backward SDE, run t↓): A = (Ċ/2 ∓ ε)/C.
    """
    c = interp.schedule.coeffs(t)
    a, b, da, db = (v[:, None] for v in (c.alpha, c.beta, c.d_alpha, c.d_beta))
    m, dm = b * mu, db * mu
    cov = a**2 + b**2 * var
    dcov = 2 * (a * da + b * db * var)
    e = eps[:, None]
    vel = dm + dcov / (2 * cov) * (x - m)
    score = -(x - m) / cov
    fwd = dm + (dcov / 2 - e) / cov * (x - m)
    bwd = dm + (dcov / 2 + e) / cov * (x - m)
    return vel, score, fwd, bwd


@pytest.mark.parametrize("interp", [VPDiffusion(), RectifiedFlow(), VEDiffusion(sigma_min=0.01, sigma_max=5.0)],
                         ids=["vp", "rf", "ve"])
def test_sde_drift_matches_the_exact_gaussian_drifts(interp: Interpolant) -> None:
    gen = torch.Generator().manual_seed(0)
    n, d, var = 64, 3, 0.6
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=DT)
    x = torch.randn(n, d, generator=gen, dtype=DT) * 1.5
    t = 0.05 + 0.9 * torch.rand(n, generator=gen, dtype=DT)
    eps = 0.1 + torch.rand(n, generator=gen, dtype=DT)  # per-sample ε(t)
    vel, score, fwd, bwd = _gaussian_drifts(interp, mu, var, x, t, eps)
    torch.testing.assert_close(interp.sde_drift(vel, score, eps, forward=True), fwd, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(interp.sde_drift(vel, score, eps, forward=False), bwd, rtol=1e-12, atol=1e-12)
    # the same drifts through the conversions and through an exact Field (which convert via the interpolant)
    field = exact_field(interp, "gaussian", GaussianMixture(mu[None], torch.tensor([var], dtype=DT)), "x1")
    for kind, ref in (("drift_fwd", fwd), ("drift_bwd", bwd)):
        x1_hat = field(x, t)
        torch.testing.assert_close(interp.convert(x1_hat, "x1", kind, x, t, eps=eps), ref, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(field.predict(x, t, kind, eps=eps), ref, rtol=1e-9, atol=1e-9)
    # a drift field trained with one ε re-weighted to another goes through the same method
    drift_field = exact_field(interp, "gaussian", GaussianMixture(mu[None], torch.tensor([var], dtype=DT)),
                              "drift_fwd", eps=0.3)
    t_mid = torch.full((n,), 0.4, dtype=DT)
    _, _, fwd_mid, bwd_mid = _gaussian_drifts(interp, mu, var, x, t_mid, torch.full((n,), 0.7, dtype=DT))
    torch.testing.assert_close(drift_field.predict(x, t_mid, "drift_bwd", eps=0.7), bwd_mid, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(drift_field.predict(x, t_mid, "drift_fwd", eps=0.7), fwd_mid, rtol=1e-9, atol=1e-9)


def test_sde_drift_bad_input() -> None:
    interp = RectifiedFlow()
    v = torch.randn(4, 2, dtype=DT)
    assert torch.equal(interp.sde_drift(v, None, 0.0), v)  # no score needed where ε = 0
    with pytest.raises(ValueError, match="score=None"):
        interp.sde_drift(v, None, 0.5)
    with pytest.raises(ValueError, match="eps must be a float or a \\(4,\\) tensor"):
        interp.sde_drift(v, v, torch.ones(3, dtype=DT))


# ---------------------------------------------------------------------------------------------- capabilities
GAUSS = frozenset({"velocity", "score", "implicit", "markov", "semilinear", "gaussian_source"})
BRIDGE = frozenset({"velocity", "score", "implicit", "markov", "semilinear", "bridge"})
ORDINARY = ("velocity", "x1", "x0", "noise", "score", "drift_fwd", "drift_bwd")


def _expected_one_field(base: frozenset[str]) -> dict[str, frozenset[str]]:
    kinds = [k for k in ORDINARY if not ("bridge" in base and k == "x0")]  # x0 is known on a bridge: no x0 field
    return {k: base | {"drift"} if k.startswith("drift") else base for k in kinds}


def _expected_two_sided(markov: bool) -> dict[str, frozenset[str]]:
    m = frozenset({"markov"}) if markov else frozenset()
    out = {k: m for k in ("x1", "x0", "noise", "score")}
    out["velocity"] = m | {"velocity"}  # a velocity field needs no conversion, even on a two-sided path
    out["drift_fwd"] = out["drift_bwd"] = m | {"drift"}
    return out


NAMED: dict[str, tuple[Interpolant, dict[str, frozenset[str]]]] = {
    "RectifiedFlow()": (RectifiedFlow(), _expected_one_field(GAUSS)),
    "AlphaBlending()": (AlphaBlending(), _expected_one_field(GAUSS)),
    "VPDiffusion()": (VPDiffusion(), _expected_one_field(GAUSS)),
    "VPDiffusion('cosine')": (VPDiffusion("cosine"), _expected_one_field(GAUSS)),
    "VEDiffusion()": (VEDiffusion(), _expected_one_field(GAUSS)),
    "DiffusionBridge('vp')": (DiffusionBridge("vp"), _expected_one_field(BRIDGE)),
    "DiffusionBridge('ve')": (DiffusionBridge("ve"), _expected_one_field(BRIDGE)),
    "BrownianBridge(0.5, conditional_source=True)": (BrownianBridge(0.5, conditional_source=True),
                                                     _expected_one_field(BRIDGE)),
    "BrownianBridge(0.5)": (BrownianBridge(0.5), _expected_two_sided(markov=True)),
    "StochasticInterpolant('linear', gamma='bsquared')": (StochasticInterpolant("linear", gamma="bsquared"),
                                                          _expected_two_sided(markov=False)),
    "StochasticInterpolant('trig')": (StochasticInterpolant("trig"), _expected_two_sided(markov=False)),
    "RectifiedFlow(source='data')": (RectifiedFlow(source="data"),
                                     {k: frozenset({"velocity", "implicit"}) for k in ("velocity", "x1", "x0")}),
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_capabilities_per_named_constructor_and_kind(name: str) -> None:
    interp, expected = NAMED[name]
    assert set(expected) == set(interp.field_kinds())
    for kind, caps in expected.items():
        got = interp.capabilities(kind)
        assert got == caps, (name, kind, sorted(got))
        assert got <= set(CAPABILITIES)


def test_capabilities_of_multimarginal_paths_come_from_the_base_rule() -> None:
    mm = Multimarginal(2)
    on_face = mm.restrict(EdgePath(0, 2, 2))
    off_face = mm.restrict(PolylinePath([0, "barycentre", 2], 2))
    assert on_face.schedule.describes_path and not off_face.schedule.describes_path
    assert on_face.capabilities("g") == GAUSS
    assert off_face.capabilities("g") == {"velocity", "score", "gaussian_source"}
    for method in ("coeffs", "semilinear", "implicit_step", "markov_omega", "sample", "conversion_weights"):
        assert method not in type(off_face).__dict__, f"RestrictedMultimarginal overrides {method}"
    x = torch.zeros(3, 2, dtype=DT)
    with pytest.raises(ValueError, match="markov_omega: .*leaves the face"):
        off_face.markov_omega(0.2, 0.4, x)
    with pytest.raises(ValueError, match="conversion between ordinary kinds: .*leaves the face"):
        off_face.convert(x, "x1", "velocity", x, 0.4)


# ---------------------------------------------------------------------------------------------- layering
def _genlab_imports(path: Path) -> list[str]:
    """Every genlab module ``path`` imports, at any depth (module level, functions, TYPE_CHECKING blocks)."""
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.split(".")[0] == "genlab"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                out.append(f"<relative import level {node.level}: {node.module}>")
            elif node.module and node.module.split(".")[0] == "genlab":
                out.append(node.module)
    return out


def test_interpolants_import_nothing_from_other_genlab_packages() -> None:
    files = sorted((GENLAB / "interpolants").glob("*.py"))
    assert len(files) >= 8
    allowed = ("genlab.interpolants", "genlab.utils")
    bad = {f.name: [m for m in _genlab_imports(f) if not (m in allowed or m.startswith("genlab.interpolants."))]
           for f in files}
    assert not any(bad.values()), {k: v for k, v in bad.items() if v}
