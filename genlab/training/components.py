"""Build what a run needs from its config: data split, interpolant, coupling, network and Field.

The same builders serve training (:class:`~genlab.training.trainer.Trainer`) and loading a finished run
(:func:`~genlab.training.api.load_run`), so a checkpoint always rebuilds the exact objects it was trained
with.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, default_collate

from genlab.couplings import Coupling, CouplingSample, Independent, MaskedCoupling, Paired, get_coupling
from genlab.data import ArrayDataset, Split, get_split
from genlab.interpolants import Interpolant, build_interpolant
from genlab.models import Field, build_network, network_config
from genlab.models.bridge_precond import DDBMPrecond
from genlab.models.precond import EDMPrecond, MaskedOutput
from genlab.training.config import RunConfig

__all__ = [
    "Components",
    "build_components",
    "collate",
    "item_index",
    "make_cond",
    "make_field",
    "make_precond",
    "network_inputs",
    "split_labels",
    "to_device",
]

#: Constructor arguments inferred from the data when the config leaves them out.
_INFERRED = ("dim", "cond_dim", "sample_size", "in_channels", "out_channels", "cond_channels")


@dataclass
class Components:
    """Everything built from a config except the optimisation state.

    Attributes:
        split: Train/held-out split of the dataset.
        interpolant: The path.
        coupling: The coupling.
        net: The raw network (what checkpoints store).
        network: ``network_config(net)``: the flat dict that rebuilds its architecture.
        kind: Prediction kind of the network.
        data_shape: Per-sample shape of ``x1``.
        needs_labels: The network takes class labels (``num_classes`` set).
        masked_output: The network output is masked by the coupling's mask (inpainting velocity).
    """

    split: Split
    interpolant: Interpolant
    coupling: Coupling
    net: nn.Module
    network: dict[str, Any]
    kind: str
    data_shape: tuple[int, ...]
    needs_labels: bool
    masked_output: bool


def item_index(dataset: Dataset, name: str) -> int | None:
    """Position of item ``name`` (``"x1"``, ``"label"``, ...) in the dataset's items, if it says."""
    names = getattr(dataset, "item_names", None)
    if names is None:
        return None
    return list(names).index(name) if name in names else None


def collate(dataset: Dataset, indices: Tensor) -> Tensor | tuple[Tensor, ...]:
    """The batch of rows ``indices`` (tensor indexing for :class:`ArrayDataset`, else ``default_collate``)."""
    if isinstance(dataset, ArrayDataset):
        parts = tuple(t[indices.to(t.device)] for t in dataset.tensors)
        return parts[0] if len(parts) == 1 else parts
    batch = default_collate([dataset[int(i)] for i in indices])
    return tuple(batch) if isinstance(batch, list) else batch


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tensor or a tuple of tensors to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    return batch


def split_labels(batch: Any, dataset: Dataset) -> tuple[Any, Tensor | None]:
    """``(batch without labels, labels or None)``: the ``"label"`` item, or a trailing integer tensor."""
    if not isinstance(batch, (tuple, list)):
        return batch, None
    idx = item_index(dataset, "label")
    if idx is None and not torch.is_floating_point(batch[-1]):
        idx = len(batch) - 1
    if idx is None:
        return batch, None
    rest = tuple(b for i, b in enumerate(batch) if i != idx)
    return (rest[0] if len(rest) == 1 else rest), batch[idx]


def make_cond(
    interpolant: Interpolant, pair: CouplingSample, labels: Tensor | None
) -> dict[str, Tensor] | None:
    """The Field's conditioning: known source ``x0`` (bridges), the coupling's ``cond``, class ``labels``."""
    cond: dict[str, Tensor] = {}
    if interpolant.conditional_source:
        cond["x0"] = pair.x0
    if pair.cond is not None:
        cond["cond"] = pair.cond
    if labels is not None:
        cond["labels"] = labels
    return cond or None


def network_inputs(interpolant: Interpolant, pair: CouplingSample) -> Tensor | None:
    """The network's ``cond`` input: the coupling's cond, else a known x0 (bridges), else ``None``."""
    if pair.cond is not None:
        return pair.cond
    return pair.x0 if interpolant.conditional_source else None


def _infer_kwargs(name: str, given: dict[str, Any], x1: Tensor, cond_input: Tensor | None) -> dict[str, Any]:
    """Fill data-dependent constructor arguments the config left out (by parameter name)."""
    from genlab.models import registry as _registry

    _, net_cls = _registry._resolve(name)  # the registry has no public name -> class accessor yet
    params = inspect.signature(net_cls.__init__).parameters
    shape = tuple(x1.shape[1:])
    inferred: dict[str, Any] = {}

    def want(key: str) -> bool:
        return key in params and key not in given

    if want("dim"):
        if len(shape) != 1:
            raise ValueError(
                f"model {name!r} takes vectors but the data has per-sample shape {shape}; use "
                "model.name=unet for images"
            )
        inferred["dim"] = shape[0]
    if want("cond_dim"):
        inferred["cond_dim"] = 0 if cond_input is None else int(cond_input.flatten(1).shape[1])
    if len(shape) == 3:
        if want("sample_size"):
            inferred["sample_size"] = shape[1] if shape[1] == shape[2] else [shape[1], shape[2]]
        if want("in_channels"):
            inferred["in_channels"] = shape[0]
        if want("out_channels"):
            inferred["out_channels"] = shape[0]
    if want("cond_channels"):
        inferred["cond_channels"] = 0 if cond_input is None else int(cond_input.shape[1])
    return inferred


def make_precond(config: RunConfig, components: Components) -> EDMPrecond | DDBMPrecond | None:
    """The run's preconditioning (``model.precond``): EDM's, DDBM's bridge one, or ``None``.

    It owns the training law that goes with it (``loss_weight``; DDBM also ``train_times``), which the
    objective reads from here rather than from the config.
    """
    model = config.model
    if model.precond == "edm":
        return EDMPrecond(components.interpolant, sigma_data=model.sigma_data)
    if model.precond == "ddbm":
        return DDBMPrecond(components.interpolant, sigma_data=model.sigma_data)
    return None


def make_field(net: nn.Module, config: RunConfig, components: Components) -> Field:
    """The Field of ``net`` (raw or EMA weights) with the run's output masking and preconditioning.

    The EDM or DDBM preconditioning (``model.precond: edm | ddbm``) enters as ``Field(precond=...)``
    (:func:`make_precond`), so sampling and guidance call the same function training fitted.
    """
    model = config.model
    if components.masked_output:
        net = MaskedOutput(net)
    precond = make_precond(config, components)
    x1_range = tuple(model.x1_range) if model.x1_range is not None else None
    return Field(net, components.interpolant, model.kind, precond=precond, eps=model.eps, x1_range=x1_range)


def _check_bridge_source(config: RunConfig, interpolant: Interpolant, coupling: Coupling, dataset: Dataset) -> None:
    """A bridge's x0 is the known condition: it must come from the data (a paired dataset or a data map)."""
    if not interpolant.conditional_source:
        return
    if isinstance(coupling, Independent):
        raise ValueError(  # noqa: TRY004 - a config problem (which coupling), not a wrong argument type
            f"interpolant {interpolant.name!r} is a bridge from a known condition x0, but coupling 'independent' "
            "draws x0 as noise, not a condition; use coupling: paired with a paired dataset (edges_digits, "
            "lowres_digits, masked_digits)"
        )
    if isinstance(coupling, Paired) and item_index(dataset, "x0") is None:
        raise ValueError(
            f"interpolant {interpolant.name!r} is a bridge from a known condition x0, but data {config.data.name!r} "
            "yields no x0 (no condition); use a paired dataset (edges_digits, lowres_digits, masked_digits)"
        )


def _check_condition(config: RunConfig, interpolant: Interpolant, net: nn.Module, cond_input: Tensor | None) -> None:
    """A channel-conditioned network must take exactly the condition the coupling builds (bridges: x0)."""
    channels = getattr(net, "cond_channels", None)
    if channels is None:
        return
    given = 0 if cond_input is None or cond_input.ndim != 4 else int(cond_input.shape[1])
    if interpolant.conditional_source and given == 0:
        raise ValueError(
            f"interpolant {interpolant.name!r} is a bridge from a known condition x0, but the data "
            f"{config.data.name!r} with coupling {config.coupling.name!r} gives the network no condition image; "
            "use a paired dataset (edges_digits, lowres_digits, masked_digits) with coupling: paired"
        )
    if channels != given:
        raise ValueError(
            f"model.cond_channels={channels} but the coupling {config.coupling.name!r} gives a condition with "
            f"{given} channel(s); drop model.cond_channels (it is inferred) or set it to {given}"
        )


def build_components(config: RunConfig, *, network: dict[str, Any] | None = None) -> Components:
    """Build the data split, interpolant, coupling and network of ``config``.

    Missing data-dependent network arguments are inferred from one coupling sample of two training items,
    drawn with its own generator (the network's initial weights come from the global generator, which the
    Trainer seeds). ``config.model.kwargs`` is updated in place with the inferred values, so the resolved
    config rebuilds the same architecture.

    Args:
        config: The run config.
        network: A saved ``network_config`` to rebuild exactly (loading a checkpoint); skips inference.

    Returns:
        :class:`Components`.
    """
    data = config.data
    split = get_split(data.name, test_fraction=data.test_fraction, split_seed=data.split_seed, **data.kwargs)
    try:
        interpolant = build_interpolant(config.interpolant.name, **config.interpolant.kwargs)
    except TypeError as err:
        raise TypeError(f"interpolant: {err}") from None
    coupling = get_coupling(config.coupling.name, **config.coupling.kwargs)
    example = collate(split.train, torch.arange(min(2, len(split.train))))
    example, labels = split_labels(example, split.train)
    _check_bridge_source(config, interpolant, coupling, split.train)
    pair = coupling.sample(example, generator=torch.Generator().manual_seed(0))
    masked_output = (
        isinstance(coupling, MaskedCoupling)
        and coupling.cond != "none"
        and getattr(coupling, "coupled", True)
        and config.model.kind == "velocity"
    )
    if network is None:
        kwargs = dict(config.model.kwargs)
        kwargs.update(_infer_kwargs(config.model.name, kwargs, pair.x1, network_inputs(interpolant, pair)))
        config.model.kwargs = kwargs
        net = build_network(config.model.name, **kwargs)
    else:
        net = build_network(dict(network))
    _check_condition(config, interpolant, net, network_inputs(interpolant, pair))
    needs_labels = getattr(net, "num_classes", None) is not None
    if needs_labels and labels is None:
        raise ValueError(
            f"model.num_classes is set but dataset {data.name!r} yields no labels; use a labelled "
            "dataset (e.g. digits) or drop num_classes"
        )
    return Components(
        split=split,
        interpolant=interpolant,
        coupling=coupling,
        net=net,
        network=network_config(net),
        kind=config.model.kind,
        data_shape=tuple(pair.x1.shape[1:]),
        needs_labels=needs_labels,
        masked_output=masked_output,
    )
