"""build_network / network_config: JSON round trip rebuilds identical networks; clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from genlab.models import (
    AutoEncoder,
    LinearAutoEncoder,
    TimeMLP,
    UNet,
    available_networks,
    build_network,
    network_config,
    register_network,
)

_X_MLP = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
_C_MLP = torch.randn(3, 1, generator=torch.Generator().manual_seed(1))
_X_IMG = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
_X_VEC = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))

CASES: list[tuple[str, dict[str, Any], Callable[[nn.Module], torch.Tensor]]] = [
    (
        "mlp",
        {"dim": 2, "hidden": 16, "depth": 2, "cond_dim": 1, "out_dim": 4},
        lambda n: n(_X_MLP, 0.3, _C_MLP),
    ),
    (
        "unet",
        {
            "sample_size": 8,
            "in_channels": 1,
            "out_channels": 1,
            "cond_channels": 1,
            "num_classes": 3,
            "block_out_channels": (8, 16),
            "attention": True,
            "attention_head_dim": 4,
        },
        lambda n: n(_X_IMG, 0.3, cond=_X_IMG, labels=torch.tensor([0, 2])),
    ),
    ("autoencoder", {"in_channels": 1, "latent_channels": 2, "channels": (8,)}, lambda n: n(_X_IMG)),
    ("linear_autoencoder", {"dim": 6, "latent_dim": 3}, lambda n: n(_X_VEC)),
]


@pytest.mark.parametrize(("name", "kwargs", "apply"), CASES, ids=[c[0] for c in CASES])
@torch.no_grad()
def test_config_round_trip_rebuilds_identical_network(
    name: str, kwargs: dict[str, Any], apply: Callable[[nn.Module], torch.Tensor]
) -> None:
    torch.manual_seed(0)
    net = build_network(name, **kwargs).eval()
    cfg = json.loads(json.dumps(network_config(net)))  # must survive JSON
    assert cfg["name"] == name
    torch.manual_seed(1)  # a different initialisation: the rebuilt net differs until the weights are loaded
    rebuilt = build_network(cfg).eval()
    assert type(rebuilt) is type(net) and rebuilt.config == net.config
    before = apply(rebuilt)
    assert not torch.allclose(apply(net), before)
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    assert torch.equal(apply(net), apply(rebuilt))
    kwargs_form = build_network(**cfg).eval()  # the keyword form rebuilds the same architecture too
    kwargs_form.load_state_dict(net.state_dict(), strict=True)
    assert torch.equal(apply(net), apply(kwargs_form))


def test_configs_hold_constructor_arguments() -> None:
    net = TimeMLP(3, hidden=8, depth=1, activation="gelu")
    assert net.config == {
        "dim": 3,
        "hidden": 8,
        "depth": 1,
        "time_features": 32,
        "cond_dim": 0,
        "out_dim": None,
        "activation": "gelu",
    }
    assert TimeMLP(**net.config).config == net.config
    unet = UNet((8, 12), 2, 1, block_out_channels=(16, 32))
    assert unet.config["sample_size"] == [8, 12] and unet.config["block_out_channels"] == [16, 32]
    assert AutoEncoder(1, channels=(8, 16)).config["channels"] == [8, 16]
    assert LinearAutoEncoder(5, 2).config == {"dim": 5, "latent_dim": 2}


def test_aliases_and_canonical_names() -> None:
    assert {"mlp", "time_mlp", "unet", "unet2d", "autoencoder", "linear_autoencoder"} <= set(
        available_networks()
    )
    net = build_network("unet2d", sample_size=8, in_channels=1, out_channels=1, block_out_channels=[8, 16])
    assert isinstance(net, UNet) and network_config(net)["name"] == "unet"
    assert network_config(build_network("time_mlp", dim=2))["name"] == "mlp"


def test_bad_names_and_arguments() -> None:
    with pytest.raises(ValueError, match=r"unknown network 'transformer'.*'autoencoder'.*'mlp'.*'unet'"):
        build_network("transformer")
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['width'\].*allowed"):
        build_network("mlp", dim=2, width=3)
    with pytest.raises(TypeError, match=r"missing required argument\(s\) \['dim'\]"):
        build_network("mlp")
    with pytest.raises(ValueError, match="'name' key"):
        build_network({"dim": 2})
    with pytest.raises(TypeError, match="not a registered network"):
        network_config(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="already registered for TimeMLP"):
        register_network("mlp", nn.Linear)
    with pytest.raises(TypeError, match="nn.Module subclass"):
        register_network("thing", int)  # type: ignore[arg-type]
