"""genlab-native pretrained folders: a :class:`~genlab.models.Field` as ``config`` (JSON) + weights (safetensors).

Layout of a folder written by :func:`save_field` (``Field.save_pretrained``)::

    genlab_field.json     {"format": "genlab.field", "version": 1, "network": {"name": ..., **architecture},
                           "interpolant": {"name": ..., **kwargs}, "kind": ..., "eps": ..., "precond": ...,
                           "dtype": ..., "metadata": {...}}
    model.safetensors     the network's state dict (tensors only: loads without pickle)

:func:`load_field` (``Field.from_pretrained``) rebuilds the network with
:func:`~genlab.models.registry.build_network`, the path with :func:`~genlab.interpolants.build_interpolant` and
the optional EDM preconditioning, so any path and any prediction kind round-trips, including bridges and SDE
drift fields. The interpolant is stored by *spec* (constructor name + arguments, as in a run config): at save time
the spec is rebuilt and its coefficients are checked against the field's own path on a grid of times, so a spec
that does not describe the field is refused instead of written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.interpolants import Interpolant, build_interpolant
from genlab.models.field import Field
from genlab.models.precond import EDMPrecond
from genlab.models.registry import build_network, network_config

__all__ = ["FIELD_CONFIG", "FIELD_WEIGHTS", "check_interpolant_spec", "load_field", "save_field"]

#: Config file of a genlab pretrained folder.
FIELD_CONFIG = "genlab_field.json"
#: Weights file of a genlab pretrained folder.
FIELD_WEIGHTS = "model.safetensors"
_FORMAT, _VERSION = "genlab.field", 1
_COEFFS = ("alpha", "beta", "gamma", "d_alpha", "d_beta", "gamma_dgamma")


def check_interpolant_spec(interpolant: Interpolant, spec: Mapping[str, Any]) -> Interpolant:
    """Rebuild ``spec`` and check that it is ``interpolant``: same source flags and coefficients on 65 times.

    Args:
        interpolant: The field's path.
        spec: ``{"name": <constructor in genlab.interpolants.INTERPOLANTS>, **kwargs}``.

    Returns:
        The rebuilt interpolant.

    Raises:
        TypeError: ``spec`` is not a mapping with a ``name``.
        ValueError: The rebuilt path differs (the message names the first differing coefficient).
    """
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise TypeError(
            "interpolant_spec must be a dict {'name': <interpolant constructor>, **kwargs}, as in a run config "
            f"(e.g. {{'name': 'vp', 'kind': 'cosine'}}); got {spec!r}"
        )
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    rebuilt = build_interpolant(spec["name"], **kwargs)
    for attr in ("source", "conditional_source"):
        if getattr(rebuilt, attr) != getattr(interpolant, attr):
            raise ValueError(
                f"interpolant_spec {dict(spec)} builds a path with {attr}={getattr(rebuilt, attr)!r} but the field's "
                f"path has {attr}={getattr(interpolant, attr)!r}; pass the spec the field was built from"
            )
    t = torch.linspace(0.0, 1.0, 65, dtype=torch.float64)
    a, b = rebuilt.schedule.coeffs(t), interpolant.schedule.coeffs(t)
    for name in _COEFFS:
        x, y = getattr(a, name), getattr(b, name)
        finite = torch.isfinite(x) & torch.isfinite(y)
        if not torch.equal(torch.isfinite(x), torch.isfinite(y)) or not torch.allclose(
            x[finite], y[finite], rtol=1e-9, atol=1e-12
        ):
            raise ValueError(
                f"interpolant_spec {dict(spec)} does not describe the field's path {interpolant!r}: coefficient "
                f"{name!r} differs; pass the spec the field was built from (a run's config.interpolant)"
            )
    return rebuilt


def _precond_spec(field: Field) -> dict[str, Any] | None:
    if field.precond is None:
        return None
    if isinstance(field.precond, EDMPrecond):
        return {"name": "edm", "sigma_data": field.precond.sigma_data}
    raise TypeError(
        f"save_pretrained stores no preconditioning (None) or EDMPrecond; this field has "
        f"{type(field.precond).__name__}: wrap it into the network instead"
    )


def save_field(
    field: Field,
    path: str | Path,
    *,
    interpolant_spec: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``field`` as a genlab pretrained folder (``genlab_field.json`` + ``model.safetensors``).

    Args:
        field: A :class:`Field` whose ``net`` is a registered genlab network (``network_config`` works on it).
        path: Folder to write (created; existing files of the two names are replaced atomically).
        interpolant_spec: ``{"name": ..., **kwargs}`` that :func:`~genlab.interpolants.build_interpolant` turns
            into the field's path (a run's ``config.interpolant``); checked by :func:`check_interpolant_spec`.
            Defaults to ``field.interpolant.spec`` when the interpolant carries one.
        metadata: JSON-serialisable provenance (run folder, step, ...).

    Returns:
        The folder.
    """
    from safetensors.torch import save_file

    from genlab.utils import atomic_write

    if not isinstance(field, Field):
        raise TypeError(f"save_field: field must be a genlab Field; got {type(field).__name__}")
    spec = interpolant_spec if interpolant_spec is not None else getattr(field.interpolant, "spec", None)
    if spec is None:
        raise TypeError(
            "save_pretrained needs interpolant_spec={'name': ..., **kwargs} (the interpolant constructor and "
            "arguments the field's path was built with, e.g. a run's config.interpolant)"
        )
    check_interpolant_spec(field.interpolant, spec)
    net = field.net
    if not isinstance(net, nn.Module):
        raise TypeError(f"save_pretrained needs an nn.Module network; got {type(net).__name__}")
    arch = network_config(net)  # raises for unregistered networks, with the fix
    params = list(net.parameters())
    config = {
        "format": _FORMAT,
        "version": _VERSION,
        "network": arch,
        "interpolant": dict(spec),
        "kind": field.kind,
        "eps": field.eps,
        "x1_range": list(field.x1_range) if field.x1_range is not None else None,
        "precond": _precond_spec(field),
        "dtype": str(params[0].dtype).removeprefix("torch.") if params else "float32",
        "metadata": dict(metadata or {}),
    }
    text = json.dumps(config, indent=1)  # fails here (before writing) if something is not serialisable
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    tmp = folder / f".{FIELD_WEIGHTS}.tmp"
    save_file(state, str(tmp), metadata={"format": _FORMAT})
    tmp.replace(folder / FIELD_WEIGHTS)
    with atomic_write(folder / FIELD_CONFIG, "w") as fh:
        fh.write(text)
    return folder


def load_field(path: str | Path, *, device: torch.device | str | None = None) -> Field:
    """Read a folder written by :func:`save_field` back into a :class:`Field` (eval mode).

    Args:
        path: The folder.
        device: Device for the network (default: CPU).

    Returns:
        The :class:`Field`; ``field.interpolant.spec`` holds the stored spec.

    Raises:
        FileNotFoundError: The folder or one of its two files is missing.
        ValueError: The config is not a genlab field config, or the weights do not fit the architecture.
    """
    from safetensors.torch import load_file

    folder = Path(path)
    cfg_file, weights = folder / FIELD_CONFIG, folder / FIELD_WEIGHTS
    for f in (cfg_file, weights):
        if not f.is_file():
            raise FileNotFoundError(f"{f} is missing; pass a folder written by Field.save_pretrained")
    config = json.loads(cfg_file.read_text())
    if config.get("format") != _FORMAT or int(config.get("version", 0)) > _VERSION:
        raise ValueError(
            f"{cfg_file} is not a genlab field config of version <= {_VERSION} (format={config.get('format')!r}, "
            f"version={config.get('version')!r})"
        )
    net = build_network(dict(config["network"]))
    state = load_file(str(weights), device="cpu")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{weights} does not fit the architecture in {cfg_file}: {err}") from None
    net = net.to(dtype=getattr(torch, config.get("dtype", "float32")))
    if device is not None:
        net = net.to(device)
    net.eval()
    spec = dict(config["interpolant"])
    interpolant = build_interpolant(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
    interpolant.spec = spec  # type: ignore[attr-defined]
    pre = config.get("precond")
    precond = None
    if pre is not None:
        if pre.get("name") != "edm":
            raise ValueError(f"{cfg_file}: unknown precond {pre!r} (genlab stores None or edm)")
        precond = EDMPrecond(interpolant, sigma_data=float(pre["sigma_data"]))
    x1_range = config.get("x1_range")
    return Field(net, interpolant, config["kind"], precond=precond, eps=config.get("eps"),
                 x1_range=tuple(x1_range) if x1_range is not None else None)
