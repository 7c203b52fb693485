"""The Trainer: one loop for every :class:`~genlab.training.objective.Objective`.

The objective owns its modules, loss and state; the Trainer keeps, per module, one AdamW optimiser, one LR
schedule and one EMA, and checkpoints them under the module's name (the module ``"model"`` under the keys
``model``, ``ema``, ``optimizer``, ``scheduler``; a module ``"<name>"`` under ``model.<name>``, ``ema.<name>``,
...), together with the objective's own ``state_dict``. Today's regression loss is the default
:class:`~genlab.training.objective.InterpolantObjective` (one module, ``"model"``).

Per step: the rank's batch for this step (:class:`~genlab.training.batches.StepBatches`), the objective's loss,
backward / clip / AdamW step of the modules it trains through the engine, their LR schedules and EMA updates. Every ``log_every`` steps the loss (averaged over the interval and the ranks), learning rate,
gradient norm, EMA decay and it/s go to the trackers; every ``sample_every`` steps rank 0 writes a picture;
every ``eval_every`` steps it evaluates; every ``ckpt_every`` steps (and at the end) it writes a checkpoint.
The step's bookkeeping is :mod:`genlab.training.fastpath`: fused AdamW where PyTorch has the kernel (else the
multi-tensor one), a multi-tensor gradient clip and EMA update (bit for bit the per-tensor versions).

Reproducibility: the data order is a function of ``(seed, step)``, the training noise comes from a generator
seeded with ``seed + rank``, and checkpoints hold model, EMA, optimiser, scheduler, step and every random
state, so a resumed run continues bit for bit (on CPU). Sampling and evaluation inside the loop run under
``torch.random.fork_rng`` and never touch the training random state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.config import ConfigError
from genlab.metrics import Estimate
from genlab.training.accumulate import no_sync, split_batch
from genlab.training.batches import StepBatches
from genlab.training.checkpoint import (
    CheckpointManager,
    RunLock,
    capture_rng_state,
    clean_stale_temporaries,
    restore_rng_state,
)
from genlab.training.components import Components, build_components
from genlab.training.config import RunConfig, check_components, load_config
from genlab.training.ema import make_ema
from genlab.training.engines import Engine, get_engine
from genlab.training.evaluation import data_floors, sample_metrics, validation_loss
from genlab.training.fastpath import TrainMode, make_adamw
from genlab.training.objective import Objective, build_objective
from genlab.training.sampling import Samples, draw_samples, reference_data, save_picture
from genlab.training.tracking import Tracker, make_tracker
from genlab.utils import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "RESUMABLE_CHANGES",
    "Hook",
    "TrainResult",
    "Trainer",
    "TrainingInterrupted",
    "checkpoint_key",
    "lr_factor",
]

#: Checkpoint layout version (1: one network; 2: per-module entries plus the objective's state; the module
#: ``"model"`` keeps the layout of version 1, so version-1 checkpoints load unchanged).
CHECKPOINT_FORMAT = 2

#: Per-module checkpoint entries.
_MODULE_ENTRIES = ("model", "ema", "optimizer", "scheduler")


def checkpoint_key(entry: str, module: str) -> str:
    """Checkpoint key of ``entry`` (``model``, ``ema``, ``optimizer``, ``scheduler``) of module ``module``.

    The module named ``"model"`` (the one network of an interpolant run) uses the bare entry name, so its
    checkpoints read as before; any other module ``m`` uses ``"<entry>.<m>"``.
    """
    return entry if module == "model" else f"{entry}.{module}"


#: A hook is called after every step with the trainer (before that step's record is logged and its checkpoint
#: is written); a returned dict of numbers is logged at that step.
Hook = Callable[["Trainer"], "dict[str, float] | None"]

#: Config keys that may change when a run is resumed (everything else must match the saved config).
RESUMABLE_CHANGES: tuple[str, ...] = (
    "name",
    "out",
    "train.steps",
    "train.log_every",
    "train.ckpt_every",
    "train.keep_last",
    "train.sample_every",
    "train.eval_every",
    "train.device",
    "train.engine",
    "sample.",
    "eval.",
    "logging.",
    "data.num_workers",
)


def lr_factor(step: int, *, steps: int, warmup: int, schedule: str, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up to 1 over ``warmup`` steps, then constant or
    cosine.

    The cosine decays from 1 at the end of the warm-up to ``min_ratio`` at ``steps``:
    ``min_ratio + (1 − min_ratio)·½(1 + cos(π·p))`` with ``p`` the fraction of the post-warm-up steps done.

    Args:
        step: Optimiser steps taken.
        steps: Total steps.
        warmup: Warm-up steps.
        schedule: ``"constant"`` or ``"cosine"``.
        min_ratio: Cosine floor.

    Returns:
        The multiplier.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(steps - warmup, 1)
        p = min(max(step - warmup, 0) / span, 1.0)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))
    raise ValueError(f"unknown lr schedule {schedule!r}; choose 'constant' or 'cosine'")


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` (and :func:`genlab.train`) return.

    Attributes:
        run_dir: The run folder.
        step: Final step.
        loss: Last logged mean training loss.
        checkpoint: Last checkpoint written (``None`` off rank 0).
        seconds: Wall time of the loop in this call.
        elapsed: Training wall time of the run so far, summed over resumed sessions.
        history: Every logged record of this process's run (rank 0; empty elsewhere).
    """

    run_dir: Path
    step: int
    loss: float
    checkpoint: Path | None
    seconds: float
    elapsed: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


class TrainingInterrupted(KeyboardInterrupt):
    """``Trainer.fit`` stopped on SIGINT or SIGTERM after saving a checkpoint at the current step.

    It derives from ``KeyboardInterrupt`` so that ``except Exception`` handlers in user code do not swallow a
    stop request. ``genlab train`` prints its message and exits with :attr:`exit_code` (130 for SIGINT, 143
    for SIGTERM); ``--resume`` continues bit for bit from the checkpoint.

    Attributes:
        signum: The signal number.
        step: The step at which training stopped (that of the checkpoint).
        checkpoint: The checkpoint written (``None`` off rank 0).
        run_dir: The run folder.
    """

    def __init__(self, signum: int, step: int, checkpoint: Path | None, run_dir: Path) -> None:
        self.signum, self.step, self.checkpoint, self.run_dir = signum, step, checkpoint, run_dir
        where = f"checkpoint {str(checkpoint)!r} saved" if checkpoint is not None else "checkpoint saved"
        super().__init__(
            f"training stopped by {signal.Signals(signum).name} at step {step}; {where}; continue it with "
            f"genlab train --out {run_dir} --resume"
        )

    @property
    def exit_code(self) -> int:
        """The shell convention for death by this signal: ``128 + signum``."""
        return 128 + self.signum

    def __str__(self) -> str:
        return str(self.args[0])


#: The signals that stop ``fit`` gracefully (a checkpoint at the current step, then :class:`TrainingInterrupted`).
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


def _record_step(line: str) -> float:
    """Step of a ``metrics.jsonl`` line (``inf`` for a blank or torn line, so it is dropped on resume)."""
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


class Trainer:
    """Train any :class:`~genlab.training.objective.Objective` on a run config.

    Args:
        config: The run config (copied; data-dependent network sizes are filled in).
        run_dir: The run folder (``config.yaml``, ``metrics.jsonl``, ``checkpoints/``, ``samples/``).
        engine: Engine (default: from ``train.engine``/``device``/``amp``).
        hooks: Callables run after every step, before its record is logged and its checkpoint written; see
            :data:`Hook`.
        tracker: Tracker (default: from the ``logging`` section, rank 0 only).
        objective: A ready objective, or a factory ``(config, components) -> Objective`` called with the
            run's components under the run's seed (default: the config's ``objective`` section, built from
            the registry).

    Attributes:
        objective: The objective.
        nets, emas, optimizers, schedulers: Per-module raw modules, EMAs, AdamW optimisers, LR schedules.
        net, ema, optimizer, scheduler, model: Those of the primary (first) module; ``model`` is its engine
            wrapper (DDP or the module itself).
        field: The primary raw-weight Field (``None`` if the objective exposes no Field).

    Example:
        .. code-block:: python

            trainer = Trainer(load_config("configs/moons_si.yaml"), "runs/moons")
            result = trainer.fit()
    """

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path,
        *,
        engine: Engine | None = None,
        hooks: Sequence[Hook] = (),
        tracker: Tracker | None = None,
        objective: Objective | Callable[[RunConfig, Components], Objective] | None = None,
    ) -> None:
        self.config = load_config(config)
        check_components(self.config)
        tcfg = self.config.train
        self.run_dir = Path(run_dir)
        self._own_engine = engine is None
        self.engine = engine or get_engine(tcfg.engine, device=tcfg.device, amp=tcfg.amp)
        self.hooks = list(hooks)
        self._tracker = tracker
        self._eval_floors: dict[str, Estimate] | None = None  # data floors of periodic evaluation (computed once)
        self.device = self.engine.device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tcfg.seed)  # the same initial weights on every rank
            self.components: Components = build_components(self.config)
            if objective is None:
                objective = build_objective(self.config, self.components)
            elif isinstance(objective, type) or (
                callable(objective) and not isinstance(objective, Objective)
            ):
                objective = objective(self.config, self.components)
        if isinstance(objective, type) or not isinstance(objective, Objective):
            raise TypeError(
                f"objective must implement the Objective protocol (modules, bind, loss, fields, state_dict, "
                f"load_state_dict); got {type(objective).__name__}"
            )
        self.objective: Objective = objective
        modules = objective.modules()
        if not modules:
            raise ValueError(
                f"{type(objective).__name__}.modules() returned no module; it must own one to train"
            )
        self.nets: dict[str, torch.nn.Module] = {}
        for name, module in modules.items():
            if not isinstance(name, str) or not name or "." in name or "/" in name:
                raise ValueError(f"module name {name!r} must be a non-empty string without '.' or '/'")
            if not isinstance(module, torch.nn.Module):
                raise TypeError(f"module {name!r} is a {type(module).__name__}, not a torch.nn.Module")
            if not any(p.requires_grad for p in module.parameters()):
                raise ValueError(
                    f"module {name!r} has no trainable parameters; keep frozen parts in the objective's "
                    "state_dict, not in modules()"
                )
            self.nets[name] = module.to(self.device)
        self.primary = next(iter(self.nets))
        self.prepared = {name: self.engine.prepare(m) for name, m in self.nets.items()}
        if tcfg.compile:  # opt-in; the raw modules (self.nets) stay what checkpoints and EMAs hold
            self.prepared = {name: torch.compile(m) for name, m in self.prepared.items()}
        self.emas = {
            name: make_ema(m, backend=tcfg.ema_backend, decay=tcfg.ema_decay, warmup=tcfg.ema_warmup,
                           power=tcfg.ema_power)
            for name, m in self.nets.items()
        }
        self.optimizers = {  # fused AdamW where PyTorch has the kernel (fastpath.make_adamw), else foreach
            name: make_adamw(m.parameters(), lr=tcfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay)
            for name, m in self.nets.items()
        }
        self._train_mode = TrainMode(self.prepared.values())
        self._trained_params: dict[tuple[str, ...], list[torch.nn.Parameter]] = {}

        def schedule(step: int) -> float:
            return lr_factor(
                step,
                steps=tcfg.steps,
                warmup=tcfg.warmup,
                schedule=tcfg.schedule,
                min_ratio=tcfg.min_lr_ratio,
            )

        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(opt, schedule) for name, opt in self.optimizers.items()
        }
        objective.bind(
            train=self.prepared,
            ema={name: e.module for name, e in self.emas.items()},
            autocast=self.engine.autocast,
        )
        self.net = self.nets[self.primary]
        self.ema = self.emas[self.primary]
        self.optimizer = self.optimizers[self.primary]
        self.scheduler = self.schedulers[self.primary]
        raw_fields = objective.fields(ema=False)
        self.field = next(iter(raw_fields.values())) if raw_fields else None
        self.model = self.prepared[self.primary]
        gen_device = self.device if self.device.type == "cuda" else torch.device("cpu")
        self.generator = torch.Generator(device=gen_device).manual_seed(tcfg.seed + self.engine.rank)
        self.batches = StepBatches(
            self.components.split.train,
            batch_size=tcfg.batch_size,
            seed=tcfg.seed,
            rank=self.engine.rank,
            world_size=self.engine.world_size,
            num_workers=self.config.data.num_workers,
            device=self.device,
        )
        self.step = 0
        self.ckpts = CheckpointManager(self.run_dir / "checkpoints", keep_last=tcfg.keep_last)
        self.last_checkpoint: Path | None = None
        self.last_loss = float("nan")
        self.elapsed = 0.0  # training wall time of earlier sessions of this run
        self._t_fit: float | None = None  # start of the current loop
        self.history: list[dict[str, Any]] = []
        self._step_logs: dict[str, float] = {}
        self._saved_step: int | None = None  # step of the last checkpoint written or resumed from
        self._stop_signal: int | None = None  # set by the SIGINT/SIGTERM handler of fit()

    # ------------------------------------------------------------------ fields
    def ema_field(self) -> torch.nn.Module:
        """The primary Field with the EMA weights (what sampling and evaluation use by default).

        Raises:
            ValueError: If the objective exposes no Field.
        """
        fields = self.objective.fields(ema=True)
        if not fields:
            raise ValueError(
                f"{type(self.objective).__name__}.fields() is empty: nothing to sample or evaluate"
            )
        return next(iter(fields.values()))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The checkpoint of this process (random states of this rank only; see :meth:`save_checkpoint`)."""
        from genlab import __version__

        state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "genlab_version": str(__version__),
            "torch_version": str(torch.__version__),
            "step": self.step,
            "loss": self.last_loss,
            "elapsed": self.elapsed + (time.perf_counter() - self._t_fit if self._t_fit is not None else 0.0),
            "modules": list(self.nets),
        }
        for name in self.nets:
            state[checkpoint_key("model", name)] = self.nets[name].state_dict()
            state[checkpoint_key("ema", name)] = self.emas[name].state_dict()
            state[checkpoint_key("optimizer", name)] = self.optimizers[name].state_dict()
            state[checkpoint_key("scheduler", name)] = self.schedulers[name].state_dict()
        state.update(
            {
                "objective": self.objective.state_dict(),
                "scaler": self.engine.scaler.state_dict() if self.engine.scaler is not None else {},
                "world_size": self.engine.world_size,
                "rng": [capture_rng_state(generators={"train": self.generator})],
                "config": self.config.to_dict(),
                "network": dict(self.components.network),
            }
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` (random states of this rank included).

        Format-1 checkpoints (one network, no objective state) load into an objective whose one module is
        named ``"model"``.

        Raises:
            ValueError: If the checkpoint's modules are not the objective's.
        """
        saved = list(state.get("modules", ["model"]))
        if saved != list(self.nets):
            raise ValueError(
                f"the checkpoint holds modules {saved} but {type(self.objective).__name__} owns "
                f"{list(self.nets)}; resume with the objective that wrote it"
            )
        for name in self.nets:
            self.nets[name].load_state_dict(state[checkpoint_key("model", name)])
            self.emas[name].load_state_dict(state[checkpoint_key("ema", name)])
            self.optimizers[name].load_state_dict(state[checkpoint_key("optimizer", name)])
            self.schedulers[name].load_state_dict(state[checkpoint_key("scheduler", name)])
        self.objective.load_state_dict(state.get("objective", {}))
        if self.engine.scaler is not None and state.get("scaler"):
            self.engine.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.last_loss = float(state.get("loss", float("nan")))
        self.elapsed = float(state.get("elapsed", 0.0))
        rngs = state["rng"]
        if len(rngs) == self.engine.world_size:
            restore_rng_state(rngs[self.engine.rank], generators={"train": self.generator})
        else:
            print(
                f"genlab: checkpoint was written by {len(rngs)} process(es), resuming with "
                f"{self.engine.world_size}; training noise is re-seeded from (seed, rank, step)",
                file=sys.stderr,
            )
            self._seed_everything(self.config.train.seed + 7919 * self.step)

    def save_checkpoint(self) -> Path | None:
        """Gather every rank's random state and write the checkpoint on rank 0 (atomic; keeps the last K)."""
        state = self.state_dict()
        state["rng"] = self.engine.gather_object(state["rng"][0])
        path = None
        if self.engine.is_main:
            path = self.ckpts.save(self.step, state)
            self.last_checkpoint = path
        self.engine.barrier()
        self._saved_step = self.step
        return path

    def _seed_everything(self, base: int) -> None:
        seed = base + self.engine.rank
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        self.generator.manual_seed(seed)

    # ------------------------------------------------------------------ run folder
    def _prepare_run_dir(self, resume: bool) -> dict[str, Any] | None:
        """Check the folder, load the checkpoint to resume from, write the resolved config (rank 0)."""
        state = None
        latest = self.ckpts.latest()
        if resume and (latest is not None or (self.ckpts.folder / "latest").is_file()):
            found = self.ckpts.load_latest(map_location=self.device, announce=self.engine.is_main)
            state = found.state
            self.last_checkpoint = found.path if self.engine.is_main else None
            self.engine.barrier()
            if self.engine.is_main:
                # damaged newer files would otherwise be listed and pruned in place of good ones
                for bad, _ in found.skipped:
                    moved = self.ckpts.quarantine(bad)
                    if moved is not None:
                        print(f"genlab: moved the damaged {bad.name} aside to {moved.name}", file=sys.stderr)
            saved_config = dict(state["config"])
            saved_config.setdefault("objective", {"name": "interpolant"})  # format-1 checkpoints
            diff = [
                k
                for k in _diff_keys(saved_config, self.config.to_dict())
                if not any(k == p or (p.endswith(".") and k.startswith(p)) for p in RESUMABLE_CHANGES)
            ]
            if diff:
                raise ConfigError(
                    f"cannot resume {str(self.run_dir)!r}: the config differs from the saved one at "
                    f"{diff}; only {list(RESUMABLE_CHANGES)} may change on resume"
                )
        elif resume and self.engine.is_main:
            print(f"genlab: no checkpoint in {str(self.run_dir)!r}; starting from step 0", file=sys.stderr)
        elif latest is not None:
            raise ValueError(
                f"run folder {str(self.run_dir)!r} already holds checkpoints; pass resume=True "
                "(--resume) to continue it, or choose another --out"
            )
        if self.engine.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.run_dir / "config.yaml", "w") as fh:
                fh.write(self.config.to_yaml())
            metrics = self.run_dir / "metrics.jsonl"
            if metrics.exists():
                keep_upto = int(state["step"]) if state is not None else -1
                lines = [ln for ln in metrics.read_text().splitlines() if _record_step(ln) <= keep_upto]
                with atomic_write(metrics, "w") as fh:
                    fh.write("".join(ln + "\n" for ln in lines))
        self.engine.barrier()
        return state

    # ------------------------------------------------------------------ loop
    def train_step(self, batch: Any) -> tuple[float, float]:
        """One optimisation step on ``batch``. Returns ``(loss, gradient norm)``.

        The objective's loss says which modules it trains (default: all); only their optimisers step and
        only their LR schedules and EMAs advance. The gradient norm is the global one over those modules.
        """
        self._train_mode()  # module.train() on each, without walking the module trees every step
        parts = split_batch(batch, self.config.train.accumulate)
        scaler = getattr(self.engine, "scaler", None)
        total = 0.0
        for micro, weight in parts[:-1]:  # gradient accumulation: every micro-batch but the last
            with no_sync(self.prepared.values()):
                part = self.objective.loss(micro, step=self.step, generator=self.generator)
                scaled = part.loss * weight
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            total += float(scaled.detach())
        batch, weight = parts[-1]
        out = self.objective.loss(batch, step=self.step, generator=self.generator)
        if len(parts) > 1:
            out = dataclasses.replace(out, loss=out.loss * weight)
        trained = list(self.nets) if out.trained is None else list(out.trained)
        unknown = sorted(set(trained) - set(self.nets))
        if unknown or not trained:
            raise ValueError(
                f"{type(self.objective).__name__}.loss() trains {trained}; name some of its modules {list(self.nets)}"
            )
        params = self._trained_params.get(tuple(trained))
        if params is None:
            params = self._trained_params[tuple(trained)] = [p for n in trained for p in self.nets[n].parameters()]
        grad_norm = self.engine.step(
            out.loss,
            [self.optimizers[name] for name in trained],
            params,
            grad_clip=self.config.train.grad_clip,
        )
        for name in trained:
            self.schedulers[name].step()
            self.emas[name].update(self.nets[name])
        for name, opt in self.optimizers.items():  # a module the loss touched but does not train
            if name not in trained:
                opt.zero_grad(set_to_none=True)
        self._step_logs = dict(out.logs)
        return total + float(out.loss.detach()), grad_norm

    def _fork_rng(self) -> AbstractContextManager[None]:
        """Fork the global CPU (and this run's CUDA) random state, so evaluation leaves training's untouched."""
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    def _draw(self, field_: torch.nn.Module, *, n: int, seed: int) -> Samples:
        """``n`` samples of ``field_`` with the run's sampling settings (``config.sample``) on the run's device."""
        scfg = self.config.sample
        return draw_samples(
            field_,
            self.components,
            sampler=scfg.sampler,
            steps=scfg.steps,
            n=n,
            seed=seed,
            grid=scfg.grid,
            grid_options=scfg.grid_options,
            options=scfg.options,
            device=self.device,
        )

    def evaluate_now(self) -> dict[str, float]:
        """Evaluate the EMA Field at the current step (rank 0; training random state untouched)."""
        ecfg = self.config.eval
        with self._fork_rng():
            fld = self.ema_field()
            out: dict[str, float] = {}
            dist_metrics = [m for m in ecfg.metrics if m != "val_loss"]
            if dist_metrics:
                smp = self._draw(fld, n=ecfg.n, seed=ecfg.seed)
                split = self.components.split
                if self._eval_floors is None:  # the data floor does not change during a run: compute it once
                    self._eval_floors = data_floors(
                        dist_metrics, split.train, reference_data(split.test), n=int(smp.x.shape[0]),
                        draws=ecfg.floor_draws, n_projections=ecfg.n_projections, seed=ecfg.seed,
                    )
                out.update(
                    sample_metrics(
                        smp,
                        split.train,
                        split.test,
                        dist_metrics,
                        n_projections=ecfg.n_projections,
                        seed=ecfg.seed,
                        floor_draws=ecfg.floor_draws,
                        floors=self._eval_floors,
                    )
                )
            if "val_loss" in ecfg.metrics:
                if not callable(self.objective):
                    raise ValueError(
                        f"eval.metrics has 'val_loss' but {type(self.objective).__name__} cannot evaluate a "
                        "given Field; drop val_loss from eval.metrics"
                    )
                out["val_loss"] = validation_loss(
                    self.objective,
                    fld,
                    self.components.split.test,
                    batch_size=self.config.train.batch_size,
                    seed=ecfg.seed,
                    device=self.device,
                )
        return {f"eval/{k}": v for k, v in out.items()}

    def save_samples(self) -> Path | None:
        """Write ``samples/step_<step>.png`` from the EMA Field (rank 0; training random state untouched)."""
        scfg = self.config.sample
        with self._fork_rng():
            smp = self._draw(self.ema_field(), n=scfg.n, seed=scfg.seed)
            ref = reference_data(self.components.split.test, scfg.n)
            return save_picture(
                smp.x.cpu(),
                self.run_dir / "samples" / f"step_{self.step:08d}.png",
                reference=ref,
                title=f"step {self.step} ({scfg.sampler}, {smp.nfe} NFE)",
            )

    def fit(self, *, resume: bool = False) -> TrainResult:
        """Run the loop up to ``train.steps``.

        Args:
            resume: Continue from the latest checkpoint in the run folder (bit for bit on CPU).

        Returns:
            :class:`TrainResult`.

        Fault handling (rank 0 owns the run folder):

        * the folder is locked (:class:`~genlab.training.checkpoint.RunLock`, ``<run>/.lock``) for the whole
          call, so a second run into the same folder is refused; stale temporaries of a killed checkpoint write
          are removed at start-up;
        * on resume, the newest intact checkpoint is used (damaged newer ones are named and moved aside);
        * SIGINT/SIGTERM finish the current step, save a checkpoint at it and raise
          :class:`TrainingInterrupted` (the same signal sent again aborts at once, without a checkpoint);
        * a failure of the periodic sampling or evaluation is reported and training goes on.

        Raises:
            ValueError: If the folder holds checkpoints and ``resume`` is false, or a loss is not finite.
            RunLockedError: If another live process trains into the same folder.
            CheckpointError: If resuming and no checkpoint of the folder is intact.
            TrainingInterrupted: On SIGINT/SIGTERM, after the checkpoint at the current step is written.
        """
        tcfg, lcfg = self.config.train, self.config.logging
        main = self.engine.is_main
        created = not self.run_dir.exists()
        lock = RunLock(self.run_dir).acquire() if main else None  # before anything is written
        try:
            if main:
                clean_stale_temporaries(self.ckpts.folder)
                clean_stale_temporaries(
                    self.run_dir, names=lambda n: n in ("config.yaml", "metrics.jsonl", "eval.json")
                )
            return self._fit_locked(resume=resume, tcfg=tcfg, lcfg=lcfg, main=main)
        finally:
            if lock is not None:
                lock.release()
                if created:  # a run refused before it wrote anything leaves no empty folder behind
                    with contextlib.suppress(OSError):
                        self.run_dir.rmdir()

    def _install_stop_handlers(self) -> dict[int, Any]:
        """Route SIGINT/SIGTERM to a flag checked after each step (main thread only; an ignored SIGINT stays
        ignored). Returns the previous handlers."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}

        def handler(signum: int, _frame: Any) -> None:
            if self._stop_signal is not None:
                if signum != self._stop_signal:  # e.g. torchrun's SIGTERM after a Ctrl-C: already stopping
                    return
                self._restore_handlers(previous)  # the same signal again: give up waiting for the checkpoint
                raise KeyboardInterrupt(
                    f"{signal.Signals(signum).name} received twice; stopped without a checkpoint"
                )
            self._stop_signal = signum
            if self.engine.is_main:
                print(
                    f"genlab: {signal.Signals(signum).name} received; saving a checkpoint after step "
                    f"{self.step + 1} and stopping (send it again to stop at once, without one)",
                    file=sys.stderr,
                    flush=True,
                )

        for sig in STOP_SIGNALS:
            current = signal.getsignal(sig)
            if sig == signal.SIGINT and current == signal.SIG_IGN:
                continue
            previous[sig] = current
            signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_handlers(previous: dict[int, Any]) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)

    def _stop_requested(self) -> bool:
        """Whether a stop signal arrived (on any rank: the ranks agree, so they stop at the same step)."""
        flag = 1.0 if self._stop_signal is not None else 0.0
        if self.engine.world_size > 1:
            flag = float(self.engine.all_reduce_mean(torch.tensor([flag], dtype=torch.float64))[0])
        return flag > 0.0

    def _periodic(self, what: str, action: Callable[[], Any]) -> Any:
        """Run the periodic sampling or evaluation; a failure is reported and training goes on (``None``)."""
        try:
            return action()
        except Exception as err:  # noqa: BLE001 - any failure of a side task must not lose the run
            print(
                f"genlab: {what} at step {self.step} failed ({type(err).__name__}: {err}); training goes on "
                f"(fix the config's sample/eval section and resume to get it back)",
                file=sys.stderr,
                flush=True,
            )
            return None

    def _fit_locked(self, *, resume: bool, tcfg: Any, lcfg: Any, main: bool) -> TrainResult:
        """The body of :meth:`fit`, run while the run folder is locked."""
        tracker = self._tracker or make_tracker(  # wandb is imported here, before anything is written
            self.run_dir,
            is_main=main,
            jsonl=lcfg.jsonl,
            wandb=lcfg.wandb,
            tensorboard=lcfg.tensorboard,
            project=lcfg.project,
            name=lcfg.run_name or self.config.name,
            config=self.config.to_dict(),
        )
        show_bar = main and lcfg.progress and sys.stderr.isatty()
        from tqdm.auto import tqdm

        bar = None
        loss_sum, loss_n = 0.0, 0
        t_start = time.perf_counter()
        self._stop_signal = None
        handlers = self._install_stop_handlers()
        try:
            state = self._prepare_run_dir(resume)
            if state is not None:
                self.load_state_dict(state)
                self._saved_step = self.step
            else:
                self._seed_everything(tcfg.seed)
            bar = tqdm(
                total=tcfg.steps,
                initial=self.step,
                disable=not show_bar,
                desc=self.config.name,
                dynamic_ncols=True,
            )
            t_start = self._t_fit = time.perf_counter()
            t_last, step_last, last_loss = t_start, self.step, self.last_loss
            batches = self.batches.iterate(self.step)
            while self.step < tcfg.steps:
                loss, grad_norm = self.train_step(next(batches))
                self.step += 1
                loss_sum, loss_n = loss_sum + loss, loss_n + 1
                bar.update(1)
                record: dict[str, Any] = {}
                if self.step % tcfg.log_every == 0 or self.step == tcfg.steps:
                    mean = self.engine.all_reduce_mean(torch.tensor([loss_sum / loss_n], dtype=torch.float64))
                    now = time.perf_counter()
                    last_loss = self.last_loss = float(mean[0])
                    record.update(
                        {
                            "loss": last_loss,
                            "lr": self.scheduler.get_last_lr()[0],
                            "grad_norm": grad_norm,
                            "ema_decay": self.ema.current_decay(),
                            "it_per_s": (self.step - step_last) / max(now - t_last, 1e-9),
                            **self._step_logs,  # the objective's own numbers at this step
                        }
                    )
                    t_last, step_last, loss_sum, loss_n = now, self.step, 0.0, 0
                    bar.set_postfix(loss=f"{last_loss:.4f}", refresh=False)
                    if main and lcfg.stdout and not show_bar:
                        print(
                            f"[{self.config.name}] step {self.step}/{tcfg.steps} loss {last_loss:.5f} "
                            f"lr {record['lr']:.3g} {record['it_per_s']:.1f} it/s",
                            file=sys.stderr,
                            flush=True,
                        )
                if main and tcfg.sample_every and self.step % tcfg.sample_every == 0:
                    pic = self._periodic("sampling", self.save_samples)
                    if pic is not None:
                        tracker.log_image("samples", pic, self.step)
                if main and tcfg.eval_every and self.step % tcfg.eval_every == 0:
                    record.update(self._periodic("evaluation", self.evaluate_now) or {})
                for hook in self.hooks:
                    extra = hook(self)
                    if extra:
                        record.update(extra)
                if record:
                    tracker.log(record, self.step)
                    if main:
                        self.history.append({"step": self.step, **record})
                if (tcfg.ckpt_every and self.step % tcfg.ckpt_every == 0) or self.step == tcfg.steps:
                    self.save_checkpoint()
                if self.step < tcfg.steps and self._stop_requested():
                    signum = self._stop_signal if self._stop_signal is not None else int(signal.SIGTERM)
                    if self._saved_step != self.step:
                        self.save_checkpoint()
                    raise TrainingInterrupted(signum, self.step, self.last_checkpoint, self.run_dir)
        finally:
            self._restore_handlers(handlers)
            seconds = time.perf_counter() - t_start
            if self._t_fit is not None:
                self.elapsed += seconds
                self._t_fit = None
            if bar is not None:
                bar.close()
            tracker.finish()
            if self._own_engine:
                self.engine.close()
        return TrainResult(
            run_dir=self.run_dir,
            step=self.step,
            loss=self.last_loss,
            checkpoint=self.last_checkpoint,
            seconds=seconds,
            elapsed=self.elapsed,
            history=list(self.history),
        )
