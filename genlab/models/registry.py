"""Networks by name: build one from a config and read back the config that rebuilds it.

A checkpoint stores ``network_config(net)`` (a flat JSON dict ``{"name": ..., **constructor kwargs}``) next to
the state dict; ``build_network(**cfg)`` (or ``build_network(cfg)``) rebuilds the same architecture, ready for
``load_state_dict``. The YAML model section has the same shape, e.g. ``model: {name: unet, block_out_channels:
[32, 64], ...}``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from genlab.models.autoencoder import AutoEncoder, LinearAutoEncoder
from genlab.models.hvae import HVAE
from genlab.models.mlp import TimeMLP
from genlab.models.simplex_nets import SimplexMLP, SimplexUNet
from genlab.models.unet import UNet

__all__ = ["available_networks", "build_network", "network_config", "register_network"]

_NETWORKS: dict[str, type[nn.Module]] = {}
_ALIASES: dict[str, str] = {}


def register_network(name: str, cls: type[nn.Module], *, aliases: tuple[str, ...] = ()) -> type[nn.Module]:
    """Register a network class under ``name`` (and optional aliases).

    The class must take its architecture as constructor keyword arguments and expose them as a
    JSON-serialisable ``config`` dict (so that ``cls(**net.config)`` rebuilds ``net``).

    Args:
        name: Canonical name written by :func:`network_config`.
        cls: The ``nn.Module`` subclass.
        aliases: Other names accepted by :func:`build_network`.

    Returns:
        ``cls`` (so this can be used as ``register_network("x", X)`` right after the class).

    Raises:
        ValueError: If a name is already taken by a different class.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"cls must be an nn.Module subclass; got {cls!r}")
    for key in (name, *aliases):
        if not isinstance(key, str) or not key:
            raise ValueError(f"network names must be non-empty strings; got {key!r}")
        taken = _NETWORKS.get(key) or _NETWORKS.get(_ALIASES.get(key, ""))
        if taken is not None and taken is not cls:
            raise ValueError(f"network name {key!r} is already registered for {taken.__name__}")
    _NETWORKS[name] = cls
    for alias in aliases:
        _ALIASES[alias] = name
    return cls


def available_networks() -> list[str]:
    """Canonical names and aliases accepted by :func:`build_network`, sorted."""
    return sorted([*_NETWORKS, *_ALIASES])


def _resolve(name: str) -> tuple[str, type[nn.Module]]:
    canonical = _ALIASES.get(name, name) if isinstance(name, str) else None
    if canonical not in _NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {available_networks()}")
    return canonical, _NETWORKS[canonical]


def build_network(name: str | Mapping[str, Any], **config: Any) -> nn.Module:
    """Build a registered network from its name and constructor arguments.

    Args:
        name: A registered name (see :func:`available_networks`), or a whole config mapping
            ``{"name": ..., **kwargs}`` as returned by :func:`network_config`.
        **config: Constructor keyword arguments (positional parameters of the class are passed by name too).

    Returns:
        A freshly initialised network.

    Raises:
        ValueError: Unknown name.
        TypeError: An argument the network does not take, or a required one missing.
    """
    if isinstance(name, Mapping):
        merged = dict(name)
        merged.update(config)
        if "name" not in merged:
            raise ValueError(
                f"a network config mapping needs a 'name' key; choose one of {available_networks()}"
            )
        name = merged.pop("name")
        config = merged
    canonical, cls = _resolve(name)
    params = inspect.signature(cls.__init__).parameters
    allowed = [
        p
        for p in params
        if p != "self"
        and params[p].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise TypeError(
            f"network {canonical!r} ({cls.__name__}) got unknown argument(s) {unknown}; allowed: {allowed}"
        )
    missing = [p for p in allowed if params[p].default is inspect.Parameter.empty and p not in config]
    if missing:
        raise TypeError(f"network {canonical!r} ({cls.__name__}) is missing required argument(s) {missing}")
    return cls(**config)


def network_config(net: nn.Module) -> dict[str, Any]:
    """The flat config ``{"name": ..., **net.config}`` that :func:`build_network` turns back into ``net``'s
    architecture (weights travel separately, in the state dict).

    Args:
        net: An instance of a registered network class.

    Returns:
        A JSON-serialisable dict.

    Raises:
        TypeError: If ``net``'s class is not registered.
    """
    for name, cls in _NETWORKS.items():
        if type(net) is cls:
            return {"name": name, **net.config}
    raise TypeError(
        f"{type(net).__name__} is not a registered network (registered: "
        f"{sorted(c.__name__ for c in _NETWORKS.values())}); call register_network(name, cls) first"
    )


register_network("mlp", TimeMLP, aliases=("time_mlp",))
register_network("unet", UNet, aliases=("unet2d",))
register_network("autoencoder", AutoEncoder)
register_network("linear_autoencoder", LinearAutoEncoder)
register_network("hvae", HVAE)
register_network("simplex_mlp", SimplexMLP)
register_network("simplex_unet", SimplexUNet)
