"""Training objectives: the :class:`Objective` protocol the one :class:`~genlab.training.trainer.Trainer` runs,
today's interpolant regression as :class:`InterpolantObjective`, and the objective registry.

An objective owns its trainable modules (the Trainer keeps one optimiser, one LR schedule and one EMA per
module and checkpoints them under the module's name), computes its loss on a batch, exposes the Fields that
sampling and evaluation use, and keeps its own state (phase, round, cached pairs ...) in a plain
``state_dict`` that the Trainer writes into every checkpoint. A stateful objective (IMF/DSBM rounds and
directions, several networks) is therefore trained, checkpointed and resumed by the same loop as a plain
flow-matching run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from genlab.models import Field
from genlab.training.components import Components, make_cond, make_field, make_precond, split_labels
from genlab.training.config import RunConfig
from genlab.utils import check_finite

__all__ = [
    "OBJECTIVES",
    "InterpolantObjective",
    "LossOutput",
    "Objective",
    "ObjectiveBase",
    "ObjectiveFactory",
    "available_objectives",
    "build_objective",
    "register_objective",
    "sample_times",
]

#: Context-manager factory around network calls (mixed precision); ``None`` means no autocast.
Autocast = Callable[[], AbstractContextManager[Any]]


def sample_times(
    n: int,
    *,
    law: str = "uniform",
    eps: float = 1e-3,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Training times in ``[eps, 1 − eps]`` (float64).

    Args:
        n: Number of times.
        law: ``"uniform"``, or ``"logit_normal"`` (``sigmoid(N(mean, std²))``, Esser et al. 2024, §3.1).
        eps: Distance kept from both ends.
        mean: Logit-normal mean.
        std: Logit-normal std.
        generator: Random generator (draws happen on its device).
        device: Device of the result.

    Returns:
        ``(n,)`` float64 times.
    """
    gdev = generator.device if generator is not None else device
    if law == "uniform":
        u = torch.rand(n, generator=generator, device=gdev, dtype=torch.float64)
    elif law == "logit_normal":
        u = torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=gdev, dtype=torch.float64))
    else:
        raise ValueError(f"unknown time law {law!r}; choose 'uniform' or 'logit_normal'")
    return (eps + (1.0 - 2.0 * eps) * u).to(device if device is not None else u.device)


@dataclass
class LossOutput:
    """One loss evaluation.

    Attributes:
        loss: Scalar loss (differentiable).
        batch_size: Number of samples it averages (doubled with antithetic pairs).
        trained: Names of the modules this loss trains (their optimisers step, their LR schedules and EMAs
            advance); ``None`` means every module of the objective. Call the other modules under
            ``torch.no_grad()`` (under DDP a module run with gradients must contribute to the loss).
        logs: Extra numbers to log at this step (e.g. ``{"round": 2}``).
    """

    loss: Tensor
    batch_size: int
    trained: tuple[str, ...] | None = None
    logs: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Objective(Protocol):
    """What the Trainer runs (DESIGN.md, "Where the next families go").

    The Trainer calls, in this order: :meth:`modules` (once; moves each module to the device, wraps it for the
    engine, builds its optimiser, schedule and EMA), :meth:`bind` (once; hands back the wrapped training
    modules, their EMA copies and the autocast factory), then :meth:`loss` every step; :meth:`state_dict` at
    every checkpoint and :meth:`load_state_dict` on resume; :meth:`fields` for sampling and evaluation.
    """

    def modules(self) -> dict[str, nn.Module]:
        """The trainable modules by name (names key the checkpoint entries; the first one is the primary)."""

    def bind(
        self,
        *,
        train: Mapping[str, nn.Module],
        ema: Mapping[str, nn.Module],
        autocast: Autocast | None = None,
    ) -> None:
        """Receive the engine-wrapped training modules (e.g. DDP), their EMA copies and the autocast."""

    def loss(self, batch: Any, *, step: int, generator: torch.Generator | None) -> LossOutput:
        """The loss of one training batch at optimiser step ``step``."""

    def fields(self, *, ema: bool = True) -> dict[str, Field]:
        """The Fields that sampling and evaluation use (EMA or raw weights); the first is the primary."""

    def state_dict(self) -> dict[str, Any]:
        """The objective's own state (plain: tensors, numbers, strings, lists, dicts)."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class ObjectiveBase:
    """Convenience base of objectives: stores what :meth:`bind` hands over and keeps an empty state.

    Attributes:
        train_modules: Engine-wrapped training modules by name (after :meth:`bind`; before it, the raw ones).
        ema_modules: EMA copies by name (after :meth:`bind`; before it, the raw modules).
        autocast: Autocast factory (``None``: none).
    """

    train_modules: dict[str, nn.Module]
    ema_modules: dict[str, nn.Module]
    autocast: Autocast | None = None

    def modules(self) -> dict[str, nn.Module]:  # pragma: no cover - subclasses define it
        raise NotImplementedError(f"{type(self).__name__} must define modules()")

    def bind(
        self,
        *,
        train: Mapping[str, nn.Module],
        ema: Mapping[str, nn.Module],
        autocast: Autocast | None = None,
    ) -> None:
        """Store the wrapped training modules, their EMA copies and the autocast factory.

        Raises:
            ValueError: If ``train`` or ``ema`` does not name exactly the objective's modules.
        """
        names = set(self.modules())
        for what, given in (("train", train), ("ema", ema)):
            if set(given) != names:
                raise ValueError(
                    f"bind({what}=...) names {sorted(given)} but {type(self).__name__} owns {sorted(names)}"
                )
        self.train_modules = dict(train)
        self.ema_modules = dict(ema)
        self.autocast = autocast

    def module(self, name: str, *, ema: bool = False) -> nn.Module:
        """The training (possibly wrapped) or EMA module ``name`` (the raw module before :meth:`bind`)."""
        bound = getattr(self, "ema_modules" if ema else "train_modules", None)
        return (bound or self.modules())[name]

    def state_dict(self) -> dict[str, Any]:
        """No state by default."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore by default.

        Raises:
            ValueError: If ``state`` is not empty.
        """
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state but the checkpoint holds {sorted(state)}")


def _twice(x: Any) -> Any:
    if isinstance(x, Tensor):
        return torch.cat([x, x])
    if isinstance(x, dict):
        return {k: _twice(v) for k, v in x.items()}
    return x


class InterpolantObjective(ObjectiveBase):
    """``L(θ) = E_{(x0,x1)~π, t, z} w(t)·½|f_θ(x_t, t) − target_kind|²`` for the run's components.

    One evaluation: pair the batch with the coupling, draw times, sample the path, evaluate the Field and take
    the interpolant's quadratic loss (``Interpolant.loss``, reference/interpolants.md §1.3) of the Field's
    kind. The coupling's mask (inpainting) restricts the loss to the generated pixels; a preconditioning
    (``model.precond``, the one the Field carries) brings its loss weight: EDM's λ = 1/c_out² (Karras et al.
    2022, Table 1), DDBM's ``bridge_karras`` λ = 1/c_out² (Zhou et al. 2024, App. A.4), and DDBM's also its
    training times τ ~ U[τ_min, T] when ``train.t_sampling`` is ``uniform``. One module, ``"model"`` (the run's
    network), and no state of its own.

    Args:
        config: Run config (``train.t_sampling``, ``t_eps``, ``antithetic``, ``model.precond``).
        components: Built components (interpolant, coupling, kind, network, dataset for label lookup).

    Attributes:
        coupling: The coupling the loss pairs batches with (``components.coupling``; a subclass may swap it,
            e.g. for a re-pairing :class:`~genlab.couplings.ModelCoupling`).
    """

    #: The name of the one module (checkpoint keys ``model``, ``ema``, ``optimizer``, ``scheduler``).
    module_name: str = "model"

    def __init__(self, config: RunConfig, components: Components) -> None:
        self.config = config
        self.components = components
        self.coupling = components.coupling
        # the run's preconditioning (its loss weight and, for DDBM, its training-time law), built once
        self.precond = make_precond(config, components)

    def modules(self) -> dict[str, nn.Module]:
        """``{"model": components.net}``."""
        return {self.module_name: self.components.net}

    def fields(self, *, ema: bool = True) -> dict[str, Field]:
        """``{"model": Field}`` of the EMA (or raw) network with the run's preconditioning and masking."""
        net = self.module(self.module_name, ema=ema)
        if not ema:
            net = self.components.net  # the raw module, not its engine wrapper
        return {self.module_name: make_field(net, self.config, self.components)}

    def bind(
        self,
        *,
        train: Mapping[str, nn.Module],
        ema: Mapping[str, nn.Module],
        autocast: Autocast | None = None,
    ) -> None:
        """Store the modules (see :meth:`ObjectiveBase.bind`) and build the training Field once."""
        super().bind(train=train, ema=ema, autocast=autocast)
        self._train_field = make_field(self.train_modules[self.module_name], self.config, self.components)

    def loss(self, batch: Any, *, step: int, generator: torch.Generator | None) -> LossOutput:
        """The loss of the (engine-wrapped) training network on ``batch``; ``step`` is not used."""
        model = getattr(self, "_train_field", None)
        if model is None:
            model = make_field(self.components.net, self.config, self.components)
        return self(model, batch, generator=generator, autocast=self.autocast)

    def __call__(
        self,
        model: nn.Module | Callable[..., Tensor],
        batch: Any,
        *,
        generator: torch.Generator | None,
        antithetic: bool | None = None,
        autocast: Autocast | None = None,
    ) -> LossOutput:
        """Evaluate the loss of any ``model`` (a Field, possibly DDP-wrapped; or an oracle) on one data batch.

        Args:
            model: Called as ``model(x_t, t, cond)``; returns the prediction of ``components.kind``.
            batch: A batch of the training dataset (already on the device).
            generator: Generator for the coupling, the times and the path noise.
            antithetic: Override ``train.antithetic``.
            autocast: Context-manager factory wrapped around the model call (mixed precision).

        Returns:
            :class:`LossOutput`.
        """
        comp, tcfg = self.components, self.config.train
        anti = tcfg.antithetic if antithetic is None else antithetic
        data, labels = split_labels(batch, comp.split.train)
        if not comp.needs_labels:
            labels = None
        pair = self.coupling.sample(data, generator=generator)
        x1 = pair.x1
        precond = self.precond
        if tcfg.t_sampling == "uniform" and hasattr(precond, "train_times"):
            # the preconditioning's own law (DDBM: τ ~ U[τ_min, T], "real-uniform")
            t = precond.train_times(x1.shape[0], generator=generator, device=x1.device)
        else:
            t = sample_times(
                x1.shape[0],
                law=tcfg.t_sampling,
                eps=tcfg.t_eps,
                mean=tcfg.t_mean,
                std=tcfg.t_std,
                generator=generator,
                device=x1.device,
            )
        path = comp.interpolant.sample(
            pair.x0, x1, t, generator=generator, antithetic=anti, targets=(comp.kind,)
        )
        cond = make_cond(comp.interpolant, pair, labels)
        mask = pair.mask
        if anti:
            cond, mask = _twice(cond), _twice(mask)
        if autocast is None:
            pred = model(path.x_t, path.t, cond)
        else:
            with autocast():
                pred = model(path.x_t, path.t, cond)
        weight = None if precond is None else precond.loss_weight(path.t, path.x_t)
        loss_mask = None if mask is None else (1.0 - mask.to(path.x_t.dtype)).expand_as(path.x_t)
        loss = comp.interpolant.loss(pred.to(path.x_t.dtype), path, comp.kind, weight=weight, mask=loss_mask)
        check_finite(loss, name="training loss")
        return LossOutput(loss=loss, batch_size=int(path.x_t.shape[0]))


#: ``factory(config, components, **kwargs) -> Objective``; ``kwargs`` are the config's ``objective`` keys.
ObjectiveFactory = Callable[..., Objective]

OBJECTIVES: dict[str, ObjectiveFactory] = {"interpolant": InterpolantObjective}
"""Name → factory ``(config, components, **kwargs) -> Objective``; ``"interpolant"`` is the default."""


def register_objective(name: str, factory: ObjectiveFactory, *, overwrite: bool = False) -> ObjectiveFactory:
    """Register an objective factory under ``name`` (then ``objective: {name: <name>, ...}`` in configs).

    Args:
        name: Registry name.
        factory: Called as ``factory(config, components, **kwargs)``.
        overwrite: Replace an existing entry.

    Returns:
        ``factory`` (so this works as a plain call next to the class).

    Raises:
        ValueError: If ``name`` is taken and ``overwrite`` is false.
        TypeError: If ``factory`` is not callable.
    """
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"objective name must be a non-empty string, got {name!r}")
    if name in OBJECTIVES and not overwrite and OBJECTIVES[name] is not factory:
        raise ValueError(f"objective {name!r} is already registered; pass overwrite=True to replace it")
    OBJECTIVES[name] = factory
    return factory


def available_objectives() -> list[str]:
    """Registered objective names, sorted."""
    return sorted(OBJECTIVES)


def build_objective(config: RunConfig, components: Components) -> Objective:
    """The objective of ``config.objective`` (``name`` + keyword arguments) over ``components``.

    Args:
        config: Run config.
        components: Its built components.

    Returns:
        The objective.

    Raises:
        ValueError: If the name is unknown.
        TypeError: If the keyword arguments do not fit the factory, or its result lacks part of the
            :class:`Objective` protocol.
    """
    ocfg = config.objective
    if ocfg.name not in OBJECTIVES:
        raise ValueError(
            f"objective.name: unknown objective {ocfg.name!r}; choose one of {available_objectives()}"
        )
    try:
        objective = OBJECTIVES[ocfg.name](config, components, **ocfg.kwargs)
    except TypeError as err:
        raise TypeError(f"objective {ocfg.name!r}: bad arguments {sorted(ocfg.kwargs)}: {err}") from err
    if not isinstance(objective, Objective):
        missing = [
            m
            for m in ("modules", "bind", "loss", "fields", "state_dict", "load_state_dict")
            if not callable(getattr(objective, m, None))
        ]
        raise TypeError(f"objective {ocfg.name!r} built a {type(objective).__name__} lacking {missing}")
    return objective
