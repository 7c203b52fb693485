"""get_coupling registry, the shared batch unpacking and the exported surface."""

from __future__ import annotations

import pytest
import torch

from genlab import couplings
from genlab.couplings import (
    COUPLINGS,
    DataDependent,
    Independent,
    MaskedCoupling,
    MinibatchOT,
    Paired,
    SuperResolution,
    get_coupling,
    unpack_target,
)


def test_get_coupling_builds_each_class_with_its_arguments() -> None:
    assert isinstance(get_coupling("independent"), Independent)
    assert get_coupling("paired", cond=True).cond is True
    m = get_coupling("masked", tiles=16, p=0.5)
    assert isinstance(m, MaskedCoupling) and m.tiles == (4, 4) and m.p == 0.5
    assert isinstance(get_coupling("inpainting"), MaskedCoupling)
    sr = get_coupling("super_resolution", factor=2, sigma=0.1)
    assert isinstance(sr, SuperResolution) and sr.sigma == 0.1 and sr.m.factor == 2
    dd = get_coupling("data_dependent", m=torch.tanh, sigma=0.2, cond=False)
    assert isinstance(dd, DataDependent) and dd.m is torch.tanh and dd.cond is False
    ot = get_coupling("minibatch_ot", method="sinkhorn", reg=0.1, replace=True)
    assert isinstance(ot, MinibatchOT) and ot.method == "sinkhorn" and ot.reg == 0.1 and ot.replace
    assert isinstance(ot.base, Independent)
    ot_paired = get_coupling("minibatch_ot", base="paired")
    assert isinstance(ot_paired.base, Paired)
    ot_dict = get_coupling("minibatch_ot", base={"name": "paired", "cond": False})
    assert isinstance(ot_dict.base, Paired)
    sb = get_coupling("minibatch_sb", sigma=0.5)
    assert sb.method == "sinkhorn" and sb.reg == pytest.approx(0.5) and sb.normalize == "none"
    assert set(COUPLINGS) >= {"independent", "paired", "data_dependent", "masked", "minibatch_ot"}


def test_get_coupling_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown coupling 'ot_cfm'.*independent"):
        get_coupling("ot_cfm")
    with pytest.raises(TypeError, match="get_coupling\\('independent'\\)"):
        get_coupling("independent", sigma=1.0)
    with pytest.raises(TypeError, match="base"):
        get_coupling("minibatch_ot", base=3)


def test_unpack_target_forms() -> None:
    x = torch.zeros(3, 2)
    assert unpack_target(x, coupling="c") is x
    assert unpack_target((x, torch.arange(3)), coupling="c") is x
    assert unpack_target([x], coupling="c") is x
    with pytest.raises(TypeError, match="c: batch"):
        unpack_target([], coupling="c")
    with pytest.raises(TypeError, match="c: batch"):
        unpack_target("x", coupling="c")


def test_exports_are_complete() -> None:
    for name in couplings.__all__:
        assert hasattr(couplings, name), name
    for module in ("base", "independent", "paired", "data_dependent", "minibatch_ot"):
        mod = getattr(couplings, module)
        assert all(hasattr(mod, n) for n in mod.__all__)
