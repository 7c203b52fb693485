"""Strict dataclass configs: unknown keys, types, overrides, YAML round trips and component checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pytest

from genlab.config import (
    ConfigError,
    apply_overrides,
    dump_yaml,
    from_dict,
    load_yaml,
    parse_override,
    to_dict,
)
from genlab.training.config import RunConfig, check_components, load_config


@dataclass
class _Inner:
    a: int = 1
    b: float = 0.5
    mode: Literal["x", "y"] = "x"


@dataclass
class _Component:
    __extra_field__: ClassVar[str] = "kwargs"
    name: str = "thing"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    comp: _Component = field(default_factory=_Component)
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    pair: tuple[float, float] = (0.1, 0.2)
    maybe: str | None = None
    flag: bool = False


def test_unknown_key_names_key_and_allowed_ones() -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(_Outer, {"inner": {"a": 2, "c": 3}})
    msg = str(err.value)
    assert "'inner.c'" in msg and "['a', 'b', 'mode']" in msg
    with pytest.raises(ConfigError, match=r"unknown key 'zzz'; allowed keys: \['inner', 'comp'"):
        from_dict(_Outer, {"zzz": 1})


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"inner": {"a": "three"}}, r"inner\.a: expected an integer, got 'three'"),
        ({"inner": {"a": 1.5}}, r"inner\.a: expected an integer, got 1\.5"),
        ({"inner": {"b": True}}, r"inner\.b: expected a number, got True"),
        ({"inner": {"mode": "z"}}, r"inner\.mode: 'z' is not allowed; choose one of \['x', 'y'\]"),
        ({"flag": 1}, r"flag: expected true/false, got 1"),
        ({"sizes": [1, "a"]}, r"sizes\[1\]: expected an integer"),
        ({"pair": [1.0]}, r"pair: expected 2 items"),
        ({"inner": 3}, r"inner: expected a mapping"),
    ],
)
def test_wrong_types_name_key_and_value(data: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        from_dict(_Outer, data)


def test_conversions_and_extra_field() -> None:
    cfg = from_dict(
        _Outer,
        {
            "inner": {"a": 4.0, "b": "1e-3"},
            "comp": {"name": "n", "k1": 3, "k2": [1]},
            "pair": [1, 2],
            "maybe": None,
        },
    )
    assert cfg.inner.a == 4 and isinstance(cfg.inner.a, int)
    assert cfg.inner.b == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string
    assert cfg.comp.kwargs == {"k1": 3, "k2": [1]}
    assert cfg.pair == (1.0, 2.0)
    plain = to_dict(cfg)
    assert plain["comp"] == {"name": "n", "k1": 3, "k2": [1]}  # extras are inlined again
    assert from_dict(_Outer, plain) == cfg


def test_overrides_parse_yaml_values_and_create_sections() -> None:
    assert parse_override("train.lr=1e-3") == (["train", "lr"], "1e-3")
    assert parse_override("a.b=[32, 64]") == (["a", "b"], [32, 64])
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a=") == (["a"], None)
    out = apply_overrides({"train": {"lr": 1.0}}, ["train.lr=0.5", "model.hidden=32", "train.lr=0.25"])
    assert out == {"train": {"lr": 0.25}, "model": {"hidden": 32}}
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("no_equals")
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"train": {"lr": 1.0}}, ["train.lr.x=1"])


def test_run_config_defaults_overrides_and_yaml_round_trip(tmp_path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "data: {name: moons, n: 500}\ntrain: {steps: 10, lr: 1e-3}\nmodel: {name: mlp, hidden: 16}\n"
    )
    cfg = load_config(path, overrides=["train.batch_size=32", "model.depth=2"])
    assert cfg.name == "exp"  # file stem when the YAML has no name
    assert cfg.train.lr == pytest.approx(1e-3) and cfg.train.batch_size == 32
    assert cfg.data.kwargs == {"n": 500}
    assert cfg.model.kwargs == {"hidden": 16, "depth": 2}
    again = tmp_path / "again.yaml"
    again.write_text(cfg.to_yaml())
    assert load_config(load_yaml(again)) == cfg
    assert "hidden: 16" in dump_yaml(cfg.to_dict())


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["train.steps=0"], r"train\.steps: must be > 0"),
        (["train.ema_decay=1.0"], r"train\.ema_decay: must lie in \[0, 1\)"),
        (["train.t_eps=0.6"], r"train\.t_eps"),
        (["train.device=gpu"], r"train\.device: 'gpu' is not allowed"),
        (["train.schedule=linear"], r"choose one of \['constant', 'cosine'\]"),
        (["eval.metrics=[sw, fid]"], r"unknown metric\(s\) \['fid'\]"),
        (["model.precond=edm"], r"set kind: x1"),
        (["model.kind=drift_fwd"], r"needs eps"),
    ],
)
def test_run_config_value_checks(overrides: list[str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        RunConfig.from_dict({}, overrides=overrides)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["data.name=mnist"], r"data\.name: unknown dataset 'mnist'"),
        (["data.name=digits", "data.sizee=8"], r"\['data\.sizee'\]; allowed keys: \['name', 'test_fraction'"),
        (
            ["interpolant.gama=1"],
            r"\['interpolant\.gama'\]; allowed keys: \['name', 'source', 'conditional_source'\]",
        ),
        (["coupling.name=teleport"], r"unknown coupling 'teleport'"),
        (["model.blocks=3"], r"\['model\.blocks'\]; allowed keys: \['name', 'kind'"),
        (
            ["interpolant.name=alpha_blending", "interpolant.source=data", "model.kind=score"],
            r"model\.kind: 'score' is not defined",
        ),
        (
            [
                "interpolant.name=stochastic",
                "interpolant.gamma=brownian",
                "model.kind=x1",
                "model.precond=edm",
            ],
            r"needs a Gaussian-source path",
        ),
        (["sample.sampler=warp_drive"], r"unknown sampler 'warp_drive'"),
    ],
)
def test_component_checks(overrides: list[str], pattern: str) -> None:
    cfg = RunConfig.from_dict({"data": {"name": "moons"}}, overrides=overrides)
    with pytest.raises(ConfigError, match=pattern):
        check_components(cfg)


def test_shipped_configs_are_valid() -> None:
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "configs"
    names = [
        p.stem for p in folder.glob("*.yaml") if set(load_yaml(p)) <= set(RunConfig.__dataclass_fields__)
    ]
    for family in (
        "si",
        "si_twosided",
        "rectified_flow",
        "iadb",
        "vp",
        "ve",
        "ot_fm",
    ):  # toys and digits each
        assert any(n.endswith(family) and not n.startswith("digits") for n in names), family
        assert f"digits_{family}" in names, family
    assert "digits_inpainting" in names
    for name in names:
        check_components(load_config(folder / f"{name}.yaml"))


def test_sample_section_accepts_sampler_aliases_and_the_recommended_grid() -> None:
    """`sample.sampler: dpm++` resolves like genlab.sample's aliases; `sample.grid` omitted = recommended grid."""
    from genlab.training.config import check_components, load_config

    cfg = load_config("configs/moons_tiny.yaml", overrides=["sample.sampler=dpm++"])
    assert cfg.sample.grid is None
    check_components(cfg)
