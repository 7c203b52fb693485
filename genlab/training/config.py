"""The run config: one dataclass per YAML section, strict loading, overrides and component checks.

.. code-block:: yaml

    name: moons_si
    data: {name: moons, n: 20000, seed: 0}               # + any get_dataset() argument
    interpolant: {name: stochastic, path: trig, gamma: zero}   # + any build_interpolant() argument
    coupling: {name: independent}                        # + any get_coupling() argument
    model: {name: mlp, kind: velocity, hidden: 128}      # + any build_network() argument (dims inferred)
    train: {steps: 3000, batch_size: 512, lr: 2.0e-3, schedule: cosine, ema_decay: 0.999}
    sample: {sampler: heun, steps: 20}
    eval: {n: 2000, metrics: [sw, mmd, energy, val_loss]}
    logging: {jsonl: true, wandb: false, tensorboard: false}
    objective: {name: interpolant}                       # optional; + any registered objective's arguments

Sections ``data``, ``interpolant``, ``coupling``, ``model`` and ``objective`` are "name + constructor arguments": keys that
are not fields of the section are collected in ``kwargs`` and passed to the constructor (checked against its
signature where it has a fixed one). Everything else is strict: an unknown key or a badly typed value raises
:class:`~genlab.config.ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from genlab.config import ConfigError, apply_overrides, dump_yaml, from_dict, load_yaml, to_dict

__all__ = [
    "EVAL_METRICS",
    "CouplingConfig",
    "DataConfig",
    "EvalConfig",
    "InterpolantConfig",
    "LoggingConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "RunConfig",
    "SampleConfig",
    "TrainConfig",
    "check_components",
    "load_config",
]

#: Metrics :func:`genlab.training.evaluate` knows.
EVAL_METRICS: tuple[str, ...] = (
    "sw", "mmd", "energy", "precision", "recall", "density", "coverage", "c2st", "fd", "val_loss", "mse", "psnr",
)

Kind = Literal["velocity", "x1", "x0", "noise", "score", "drift_fwd", "drift_bwd"]


def _positive(where: str, value: float, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{where}: must be {bound}, got {value!r}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@dataclass
class DataConfig:
    """``data``: the dataset (built with ``genlab.data.get_dataset(name, **kwargs)``) and its held-out split.

    Attributes:
        name: Registered dataset name (``moons``, ``digits``, ``masked_digits``, ...).
        test_fraction: Fraction held out for evaluation (deterministic split).
        split_seed: Seed of the split permutation.
        num_workers: DataLoader workers (0: batches are indexed straight from in-memory tensors).
        kwargs: Further arguments of the dataset constructor (``n``, ``seed``, ``size``, ...), written inline.
    """

    __extra_field__: ClassVar[str] = "kwargs"
    name: str = "moons"
    test_fraction: float = 0.1
    split_seed: int = 0
    num_workers: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        """Range checks."""
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"{_join(path, 'test_fraction')}: must lie in (0, 1), got {self.test_fraction}")
        _positive(_join(path, "num_workers"), self.num_workers, allow_zero=True)


@dataclass
class InterpolantConfig:
    """``interpolant``: ``genlab.interpolants.build_interpolant(name, **kwargs)``.

    Attributes:
        name: ``stochastic``, ``rectified_flow``, ``alpha_blending``, ``vp``, ``ve``, ``diffusion_bridge``,
            ``brownian_bridge``.
        kwargs: Constructor arguments (``path``, ``gamma``, ``source``, ``sigma_max``, ...), written inline.
    """

    __extra_field__: ClassVar[str] = "kwargs"
    name: str = "rectified_flow"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class CouplingConfig:
    """``coupling``: ``genlab.couplings.get_coupling(name, **kwargs)``.

    Attributes:
        name: ``independent``, ``paired``, ``masked``/``inpainting``, ``super_resolution``, ``minibatch_ot``,
            ``minibatch_sb``.
        kwargs: Constructor arguments, written inline.
    """

    __extra_field__: ClassVar[str] = "kwargs"
    name: str = "independent"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ObjectiveConfig:
    """``objective``: ``genlab.training.build_objective`` (a registered objective and its keyword arguments).

    Attributes:
        name: Registered objective name (default ``interpolant``: the interpolant regression loss).
        kwargs: Arguments of the objective's factory, written inline.
    """

    __extra_field__: ClassVar[str] = "kwargs"
    name: str = "interpolant"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """``model``: the network (``genlab.models.build_network(name, **kwargs)``) and what it predicts.

    Data-dependent sizes the user leaves out are inferred from one batch: ``dim``/``cond_dim`` for ``mlp``;
    ``sample_size``, ``in_channels``, ``out_channels``, ``cond_channels`` for ``unet``.

    Attributes:
        name: Registered network name (``mlp``, ``unet``).
        kind: Prediction kind of the network output.
        precond: ``"none"``, ``"edm"`` (EDM preconditioning of a data prediction, ``kind: x1`` on a
            Gaussian-source path; :class:`genlab.models.EDMPrecond`) or ``"ddbm"`` (DDBM's bridge
            preconditioning, ``kind: x1`` on a bridge; :class:`genlab.models.DDBMPrecond`: its
            ``bridge_karras`` loss weight, and τ ~ U[τ_min, T] training times when ``train.t_sampling`` is
            ``uniform``).
        sigma_data: σ_data of the EDM / DDBM preconditioning (DDBM uses it for both ends).
        eps: Diffusion coefficient the SDE-drift kinds (``drift_fwd``/``drift_bwd``) are defined with.
        x1_range: ``[low, high]`` of the data: the Field clamps its implied data prediction to it at inference
            (DDPM's ``clip_sample``; see :class:`genlab.models.Field`). Pixel-space ε-networks need it.
        kwargs: Network constructor arguments, written inline.
    """

    __extra_field__: ClassVar[str] = "kwargs"
    name: str = "mlp"
    kind: Kind = "velocity"
    precond: Literal["none", "edm", "ddbm"] = "none"
    sigma_data: float = 0.5
    eps: float | None = None
    x1_range: list[float] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        """Range checks."""
        _positive(_join(path, "sigma_data"), self.sigma_data)
        if self.x1_range is not None and (
            len(self.x1_range) != 2 or not float(self.x1_range[0]) < float(self.x1_range[1])
        ):
            raise ConfigError(f"{_join(path, 'x1_range')}: give [low, high] with low < high; got {self.x1_range}")
        if self.precond in ("edm", "ddbm") and self.kind != "x1":
            raise ConfigError(
                f"{_join(path, 'precond')}: {self.precond!r} preconditions a data prediction; set kind: x1 "
                f"(got kind: {self.kind})"
            )
        if self.kind in ("drift_fwd", "drift_bwd") and self.eps is None:
            raise ConfigError(
                f"{_join(path, 'eps')}: kind {self.kind!r} needs eps (the SDE diffusion coefficient)"
            )


@dataclass
class TrainConfig:
    """``train``: optimisation, EMA, schedule of logs/checkpoints/samples, and time sampling.

    Attributes:
        steps: Total optimiser steps.
        batch_size: Batch size per process.
        lr: Peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        warmup: Linear learning-rate warm-up steps.
        schedule: ``constant`` or ``cosine`` decay after the warm-up.
        min_lr_ratio: Floor of the cosine schedule as a fraction of ``lr``.
        grad_clip: Max global gradient norm (``null``: no clipping).
        ema_decay: EMA decay (upper bound when ``ema_warmup``).
        ema_warmup: Use the warm-up decay ``min(ema_decay, 1 − (1 + k)^(−ema_power))`` at update ``k``.
        ema_power: Exponent of the warm-up (2/3 suits short runs, 3/4 long ones).
        ema_backend: ``genlab`` (fused multi-tensor update) or ``diffusers`` (``diffusers.training_utils.EMAModel``
            behind the same interface; same weights up to rounding, needs ``ema_warmup``).
        seed: Seed of the model initialisation, data order and training noise (rank ``r`` adds ``r``).
        amp: Autocast dtype for the network call: ``none``, ``bf16`` or ``fp16`` (CUDA only).
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:<i>``.
        engine: ``auto`` (DDP when launched by torchrun with several processes), ``local`` or ``ddp``.
        log_every: Steps between metric records.
        ckpt_every: Steps between checkpoints (0: only at the end).
        keep_last: Number of checkpoints kept.
        sample_every: Steps between sample pictures in ``samples/`` (0: never).
        eval_every: Steps between evaluations (0: never during training).
        antithetic: Antithetic pairs ``±z`` (or ``±x0`` for a Gaussian source), Albergo et al. 2023 §6.1.
        t_sampling: ``uniform`` on ``[t_eps, 1 − t_eps]``, or ``logit_normal`` (σ(N(t_mean, t_std²)) mapped
            there).
        t_eps: Distance kept from the ends ``t = 0`` and ``t = 1``.
        t_mean: Mean of the logit-normal time law.
        t_std: Std of the logit-normal time law.
        accumulate: Gradient accumulation: each step's batch (``batch_size``) is split into ``accumulate``
            micro-batches whose losses are back-propagated one after the other (weighted by their share of the
            batch) before one optimiser step, so memory goes down and the update is that of the whole batch.
        compile: Wrap every trained module in ``torch.compile`` (opt-in; needs a working compiler toolchain for
            the inductor backend; the checkpoints hold the uncompiled modules' weights).
    """

    steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True
    ema_power: float = 2.0 / 3.0
    ema_backend: Literal["genlab", "diffusers"] = "genlab"
    seed: int = 0
    amp: Literal["none", "bf16", "fp16"] = "none"
    device: str = "auto"
    engine: Literal["auto", "local", "ddp"] = "auto"
    log_every: int = 50
    ckpt_every: int = 500
    keep_last: int = 3
    sample_every: int = 0
    eval_every: int = 0
    antithetic: bool = False
    t_sampling: Literal["uniform", "logit_normal"] = "uniform"
    t_eps: float = 1e-3
    t_mean: float = 0.0
    t_std: float = 1.0
    accumulate: int = 1
    compile: bool = False

    def validate(self, path: str) -> None:
        """Range checks."""
        for key in ("steps", "batch_size", "log_every", "keep_last", "accumulate"):
            _positive(_join(path, key), getattr(self, key))
        for key in ("warmup", "ckpt_every", "sample_every", "eval_every", "weight_decay"):
            _positive(_join(path, key), getattr(self, key), allow_zero=True)
        _positive(_join(path, "lr"), self.lr)
        _positive(_join(path, "t_std"), self.t_std)
        _positive(_join(path, "ema_power"), self.ema_power)
        if self.grad_clip is not None:
            _positive(_join(path, "grad_clip"), self.grad_clip)
        if self.accumulate > self.batch_size:
            raise ConfigError(
                f"{_join(path, 'accumulate')}: {self.accumulate} micro-batches do not fit in batch_size="
                f"{self.batch_size}; use accumulate <= batch_size"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"{_join(path, 'ema_decay')}: must lie in [0, 1), got {self.ema_decay}")
        if self.ema_backend == "diffusers" and not self.ema_warmup:
            raise ConfigError(
                f"{_join(path, 'ema_backend')}: 'diffusers' needs ema_warmup=true (diffusers' EMAModel ramps the "
                "decay as (1 + k)/(10 + k) without warm-up; genlab keeps it constant): use ema_backend=genlab"
            )
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"{_join(path, 'min_lr_ratio')}: must lie in [0, 1], got {self.min_lr_ratio}")
        if not 0.0 <= self.t_eps < 0.5:
            raise ConfigError(f"{_join(path, 't_eps')}: must lie in [0, 0.5), got {self.t_eps}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"{_join(path, 'betas')}: both must lie in [0, 1), got {list(self.betas)}")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError(
                f"{_join(path, 'device')}: {dev!r} is not allowed; choose 'auto', 'cpu', 'cuda', "
                "'cuda:<index>' or 'mps'"
            )


@dataclass
class SampleConfig:
    """``sample``: how samples are drawn (periodic pictures, ``genlab sample`` and ``genlab eval`` defaults).

    Attributes:
        sampler: Registered sampler name (``genlab.samplers.available_samplers()``).
        steps: Grid steps.
        grid: Grid name (``uniform``, ``power``, ``log_snr``, ``karras``, ...); ``null`` (the default): the
            sampler's recommended grid (``Sampler.default_grid`` with the ends its conversions allow).
        grid_options: Options of the grid (``t_start``, ``t_end``, ``kappa``, ``rho``).
        options: Constructor options of the sampler (e.g. ``eta``).
        n: Number of samples in pictures.
        seed: Seed of the initial noise.
        ema: Sample the EMA weights (else the raw weights).
    """

    sampler: str = "heun"
    steps: int = 20
    grid: str | None = None
    grid_options: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    n: int = 1000
    seed: int = 0
    ema: bool = True

    def validate(self, path: str) -> None:
        """Range checks."""
        _positive(_join(path, "steps"), self.steps)
        _positive(_join(path, "n"), self.n)


@dataclass
class EvalConfig:
    """``eval``: metrics of samples against held-out data.

    Attributes:
        n: Number of generated samples (capped by nothing; the held-out set is reused cyclically for
            conditional paths).
        metrics: Subset of :data:`EVAL_METRICS`: the sample-set metrics ``sw`` (sliced W2), ``mmd``,
            ``energy``, ``precision``/``recall``, ``density``/``coverage``, ``c2st`` (see
            :mod:`genlab.training.evaluation`), ``val_loss``, and for paths started from a data-dependent source
            ``mse``/``psnr`` against the paired target.
        n_projections: Directions of the sliced Wasserstein distance.
        seed: Seed of the samples and projections (``genlab eval`` uses seeds ``seed .. seed + seeds - 1``).
        seeds: Sample sets ``genlab eval`` draws for the model's mean ± 95 % interval (periodic evaluation during
            training uses one).
        floor_draws: Disjoint training subsets behind the data floor's mean ± interval.
    """

    n: int = 2000
    metrics: list[str] = field(
        default_factory=lambda: ["sw", "mmd", "energy", "precision", "recall", "c2st", "val_loss"]
    )
    n_projections: int = 256
    seed: int = 0
    seeds: int = 3
    floor_draws: int = 5

    def validate(self, path: str) -> None:
        """Range checks."""
        _positive(_join(path, "n"), self.n)
        _positive(_join(path, "n_projections"), self.n_projections)
        _positive(_join(path, "seeds"), self.seeds)
        _positive(_join(path, "floor_draws"), self.floor_draws)
        bad = [m for m in self.metrics if m not in EVAL_METRICS]
        if bad:
            raise ConfigError(
                f"{_join(path, 'metrics')}: unknown metric(s) {bad}; allowed: {list(EVAL_METRICS)}"
            )


@dataclass
class LoggingConfig:
    """``logging``: where metrics go.

    Attributes:
        jsonl: Append records to ``metrics.jsonl`` in the run folder.
        wandb: Also log to Weights & Biases (rank 0 only; honours ``WANDB_MODE=offline``/``disabled``).
        tensorboard: Also write TensorBoard events to ``<run>/tensorboard`` (rank 0 only; needs the
            ``track`` extra).
        project: wandb project.
        run_name: wandb run name (default: the config's ``name``).
        progress: Show a tqdm bar (only on rank 0 and when stderr is a terminal).
        stdout: Print a one-line record to stderr every ``log_every`` steps when the bar is off.
    """

    jsonl: bool = True
    wandb: bool = False
    tensorboard: bool = False
    project: str = "genlab"
    run_name: str | None = None
    progress: bool = True
    stdout: bool = True


@dataclass
class RunConfig:
    """A whole training run.

    Attributes:
        name: Run name (default run folder ``runs/<name>``).
        out: Run folder (overrides the default; ``genlab train --out`` overrides this).
        data: :class:`DataConfig`.
        interpolant: :class:`InterpolantConfig`.
        coupling: :class:`CouplingConfig`.
        model: :class:`ModelConfig`.
        train: :class:`TrainConfig`.
        sample: :class:`SampleConfig`.
        eval: :class:`EvalConfig`.
        logging: :class:`LoggingConfig`.
        objective: :class:`ObjectiveConfig` (optional; default: the interpolant objective).
    """

    name: str = "run"
    out: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    interpolant: InterpolantConfig = field(default_factory=InterpolantConfig)
    coupling: CouplingConfig = field(default_factory=CouplingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, overrides: Iterable[str] = ()) -> RunConfig:
        """Strictly build a config from a plain mapping plus dotted overrides."""
        return from_dict(cls, apply_overrides(dict(data or {}), list(overrides)))

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (what ``config.yaml`` and checkpoints hold)."""
        return to_dict(self)

    def to_yaml(self) -> str:
        """The resolved config as YAML text."""
        return dump_yaml(self.to_dict())

    def run_dir(self, out: str | Path | None = None) -> Path:
        """The run folder: ``out`` if given, else ``self.out``, else ``runs/<name>``."""
        return Path(out if out is not None else (self.out or Path("runs") / self.name))


def load_config(
    source: RunConfig | Mapping[str, Any] | str | Path, *, overrides: Iterable[str] = ()
) -> RunConfig:
    """Load a :class:`RunConfig` from a YAML file, a mapping or a config (copied), then apply overrides.

    A YAML file without a ``name`` takes the file's stem as its name.

    Args:
        source: Path of a YAML file, a plain mapping, or a :class:`RunConfig`.
        overrides: ``"section.key=value"`` strings.

    Returns:
        The validated config.

    Raises:
        ConfigError: Unknown keys, bad types or values.
        FileNotFoundError: Missing file.
    """
    if isinstance(source, RunConfig):
        data = source.to_dict()
    elif isinstance(source, (str, Path)):
        data = load_yaml(source)
        data.setdefault("name", Path(source).stem)
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        raise TypeError(f"config must be a RunConfig, a mapping or a YAML path; got {type(source).__name__}")
    return RunConfig.from_dict(data, overrides=overrides)


def _check_signature(
    fn: Callable[..., Any], kwargs: Mapping[str, Any], where: str, section: type, *, skip: Iterable[str] = ()
) -> None:
    """Unknown keyword arguments of ``fn`` raise a ConfigError naming them and the section's allowed keys."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [
        n
        for n, p in params.items()
        if n not in ("self", *skip)
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY)
    ]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        own = [f.name for f in dataclasses.fields(section) if f.name != "kwargs"]
        raise ConfigError(
            f"unknown key(s) {[f'{where}.{k}' for k in unknown]}; allowed keys: {own + allowed}"
        )


def _check_toy_kwargs(data: DataConfig) -> None:
    """A 2-D toy (``moons``, ``toy``, ...) passes its extra keys to the toy sampler: check them there."""
    from genlab.data import toys as _toys

    samplers = getattr(_toys, "_TOYS", {})
    if data.name == "toy":
        toy_name = data.kwargs.get("name")
        extra = {k: v for k, v in data.kwargs.items() if k not in ("name", "n", "seed")}
    else:
        toy_name = data.name
        extra = {k: v for k, v in data.kwargs.items() if k not in ("n", "seed")}
    key = str(toy_name).replace("8gaussians", "eight_gaussians") if toy_name is not None else None
    if key in samplers:
        _check_signature(samplers[key], extra, "data", DataConfig, skip=("n", "generator", "dtype", "device"))


def check_components(config: RunConfig) -> None:
    """Check the named components without building data or networks.

    Checks: the dataset, interpolant, coupling, network and sampler names exist; the inline arguments of the
    dataset, interpolant, coupling and network fit their constructors; ``model.kind`` is defined on the
    interpolant; the EDM preconditioning sits on a Gaussian-source path.

    Args:
        config: The config.

    Raises:
        ConfigError: Naming the bad key or value and the allowed ones.
    """
    from genlab.couplings import COUPLINGS
    from genlab.data import DATASET_NAMES
    from genlab.data import datasets as _datasets
    from genlab.interpolants import INTERPOLANTS, build_interpolant
    from genlab.models import available_networks
    from genlab.samplers import available_samplers

    if config.data.name not in DATASET_NAMES:
        from genlab.data.user import load_factory, registered_datasets

        try:
            user_factory = load_factory(config.data.name)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if user_factory is None:
            raise ConfigError(
                f"data.name: unknown dataset {config.data.name!r}; choose one of "
                f"{[*DATASET_NAMES, *registered_datasets()]}, register one with "
                "genlab.data.register_dataset(name, factory), or name a factory as 'package.module:function'"
            )
    registry = getattr(_datasets, "_REGISTRY", {})
    if config.data.name in registry:
        _check_signature(registry[config.data.name], config.data.kwargs, "data", DataConfig, skip=("dtype",))
        _check_toy_kwargs(config.data)
    if config.interpolant.name not in INTERPOLANTS:
        raise ConfigError(
            f"interpolant.name: unknown interpolant {config.interpolant.name!r}; choose one of "
            f"{sorted(INTERPOLANTS)}"
        )
    _check_signature(
        INTERPOLANTS[config.interpolant.name], config.interpolant.kwargs, "interpolant", InterpolantConfig
    )
    if config.coupling.name not in COUPLINGS:
        raise ConfigError(
            f"coupling.name: unknown coupling {config.coupling.name!r}; choose one of {sorted(COUPLINGS)}"
        )
    _check_signature(COUPLINGS[config.coupling.name], config.coupling.kwargs, "coupling", CouplingConfig)
    if config.model.name not in available_networks():
        raise ConfigError(
            f"model.name: unknown network {config.model.name!r}; choose one of {available_networks()}"
        )
    from genlab.models import registry as _networks

    _, net_cls = _networks._resolve(config.model.name)  # no public name -> class accessor yet
    _check_signature(net_cls.__init__, config.model.kwargs, "model", ModelConfig)
    try:
        interpolant = build_interpolant(config.interpolant.name, **config.interpolant.kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"interpolant: {err}") from None
    if config.model.kind not in interpolant.kinds():
        raise ConfigError(
            f"model.kind: {config.model.kind!r} is not defined on {interpolant.name}; choose one of "
            f"{list(interpolant.kinds())}"
        )
    if config.model.precond == "edm" and not interpolant.gaussian_source:
        raise ConfigError(
            "model.precond: 'edm' needs a Gaussian-source path (vp, ve, rectified_flow, one-sided "
            f"stochastic); {interpolant.name} has a data source"
        )
    if config.model.precond == "ddbm" and not interpolant.conditional_source:
        raise ConfigError(
            "model.precond: 'ddbm' needs a bridge whose source is the known condition (interpolant.name: "
            f"diffusion_bridge); {interpolant.name} is not one"
        )
    from genlab.training.objective import OBJECTIVES, available_objectives

    if config.objective.name not in OBJECTIVES:
        raise ConfigError(
            f"objective.name: unknown objective {config.objective.name!r}; choose one of "
            f"{available_objectives()}"
        )
    _check_signature(
        OBJECTIVES[config.objective.name],
        config.objective.kwargs,
        "objective",
        ObjectiveConfig,
        skip=("config", "components"),
    )
    from genlab.samplers.registry import resolve_name

    samplers = available_samplers()
    name = config.sample.sampler
    if resolve_name(name) not in samplers and ":" not in name:
        raise ConfigError(f"sample.sampler: unknown sampler {name!r}; choose one of {samplers} (or an alias)")
    _check_sample_section(config.sample, interpolant)


def _check_sample_section(scfg: SampleConfig, interpolant: Any) -> None:
    """Build the ``sample`` section's sampler and grid once, so a typo fails at start-up, not mid-training."""
    from genlab.samplers import get_sampler
    from genlab.samplers.grids import GRIDS, make_grid

    try:
        sampler = get_sampler(scfg.sampler, **scfg.options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"sample.options: {err}") from None
    grid_name = scfg.grid if scfg.grid is not None else getattr(sampler, "default_grid", "uniform")
    if grid_name not in GRIDS:
        raise ConfigError(f"sample.grid: unknown grid {scfg.grid!r}; choose one of {sorted(GRIDS)}")
    grid_params = inspect.signature(GRIDS[grid_name]).parameters
    allowed = [k for k in grid_params if k not in ("steps", "interpolant", "device")]
    unknown = sorted(set(scfg.grid_options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {[f'sample.grid_options.{k}' for k in unknown]}; grid {grid_name!r} takes {allowed}"
        )
    if scfg.grid is None and not scfg.grid_options:
        return  # the recommended grid's ends depend on the trained field; genlab.sample builds it
    try:
        make_grid(grid_name, scfg.steps, interpolant, **scfg.grid_options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"sample.grid_options: {err}") from None
