"""The Trainer: one loop for every interpolant, coupling and prediction kind.

Per step: the rank's batch for this step (:class:`~genlab.training.batches.StepBatches`), the interpolant loss
(:class:`~genlab.training.objective.Objective`), backward / clip / AdamW step through the engine, LR schedule,
EMA update. Every ``log_every`` steps the loss (averaged over the interval and the ranks), learning rate,
gradient norm, EMA decay and it/s go to the trackers; every ``sample_every`` steps rank 0 writes a picture;
every ``eval_every`` steps it evaluates; every ``ckpt_every`` steps (and at the end) it writes a checkpoint.

Reproducibility: the data order is a function of ``(seed, step)``, the training noise comes from a generator
seeded with ``seed + rank``, and checkpoints hold model, EMA, optimiser, scheduler, step and every random
state, so a resumed run continues bit for bit (on CPU). Sampling and evaluation inside the loop run under
``torch.random.fork_rng`` and never touch the training random state.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.config import ConfigError
from genlab.training.batches import StepBatches
from genlab.training.checkpoint import (
    CheckpointManager,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)
from genlab.training.components import Components, build_components, make_field
from genlab.training.config import RunConfig, check_components, load_config
from genlab.training.ema import EMA
from genlab.training.engines import Engine, get_engine
from genlab.training.evaluation import sample_metrics, validation_loss
from genlab.training.objective import Objective
from genlab.training.sampling import Samples, draw_samples, reference_data, save_picture
from genlab.training.tracking import Tracker, make_tracker
from genlab.utils import atomic_write

__all__ = ["RESUMABLE_CHANGES", "Hook", "TrainResult", "Trainer", "lr_factor"]

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
    """Train a Field on a run config.

    Args:
        config: The run config (copied; data-dependent network sizes are filled in).
        run_dir: The run folder (``config.yaml``, ``metrics.jsonl``, ``checkpoints/``, ``samples/``).
        engine: Engine (default: from ``train.engine``/``device``/``amp``).
        hooks: Callables run after every step, before its record is logged and its checkpoint written; see
            :data:`Hook`.
        tracker: Tracker (default: from the ``logging`` section, rank 0 only).

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
    ) -> None:
        self.config = load_config(config)
        check_components(self.config)
        tcfg = self.config.train
        self.run_dir = Path(run_dir)
        self._own_engine = engine is None
        self.engine = engine or get_engine(tcfg.engine, device=tcfg.device, amp=tcfg.amp)
        self.hooks = list(hooks)
        self._tracker = tracker
        self.device = self.engine.device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tcfg.seed)  # the same initial weights on every rank
            self.components: Components = build_components(self.config)
        self.net = self.components.net.to(self.device)
        self.field = make_field(self.net, self.config, self.components)
        self.model = self.engine.prepare(self.field)
        self.ema = EMA(self.net, decay=tcfg.ema_decay, warmup=tcfg.ema_warmup, power=tcfg.ema_power)
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=tcfg.lr, betas=tuple(tcfg.betas), weight_decay=tcfg.weight_decay
        )

        def schedule(step: int) -> float:
            return lr_factor(
                step,
                steps=tcfg.steps,
                warmup=tcfg.warmup,
                schedule=tcfg.schedule,
                min_ratio=tcfg.min_lr_ratio,
            )

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        gen_device = self.device if self.device.type == "cuda" else torch.device("cpu")
        self.generator = torch.Generator(device=gen_device).manual_seed(tcfg.seed + self.engine.rank)
        self.objective = Objective(self.config, self.components)
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

    # ------------------------------------------------------------------ fields
    def ema_field(self) -> torch.nn.Module:
        """The Field with the EMA weights (what sampling and evaluation use by default)."""
        return make_field(self.ema.module, self.config, self.components)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The checkpoint of this process (random states of this rank only; see :meth:`save_checkpoint`)."""
        from genlab import __version__

        return {
            "format": 1,
            "genlab_version": str(__version__),
            "torch_version": str(torch.__version__),
            "step": self.step,
            "loss": self.last_loss,
            "elapsed": self.elapsed + (time.perf_counter() - self._t_fit if self._t_fit is not None else 0.0),
            "model": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.engine.scaler.state_dict() if self.engine.scaler is not None else {},
            "world_size": self.engine.world_size,
            "rng": [capture_rng_state(generators={"train": self.generator})],
            "config": self.config.to_dict(),
            "network": dict(self.components.network),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` (random states of this rank included)."""
        self.net.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
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
        if resume and latest is not None:
            state = load_checkpoint(latest, map_location=self.device)
            diff = [
                k
                for k in _diff_keys(state["config"], self.config.to_dict())
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
        """One optimisation step on ``batch``. Returns ``(loss, gradient norm)``."""
        self.model.train()
        out = self.objective(self.model, batch, generator=self.generator, autocast=self.engine.autocast)
        grad_norm = self.engine.step(
            out.loss, self.optimizer, list(self.net.parameters()), grad_clip=self.config.train.grad_clip
        )
        self.scheduler.step()
        self.ema.update(self.net)
        return float(out.loss.detach()), grad_norm

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
                out.update(
                    sample_metrics(
                        smp,
                        self.components.split.train,
                        self.components.split.test,
                        dist_metrics,
                        n_projections=ecfg.n_projections,
                        seed=ecfg.seed,
                    )
                )
            if "val_loss" in ecfg.metrics:
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

        Raises:
            ValueError: If the folder holds checkpoints and ``resume`` is false, or a loss is not finite.
        """
        tcfg, lcfg = self.config.train, self.config.logging
        main = self.engine.is_main
        tracker = self._tracker or make_tracker(  # wandb is imported here, before anything is written
            self.run_dir,
            is_main=main,
            jsonl=lcfg.jsonl,
            wandb=lcfg.wandb,
            project=lcfg.project,
            name=lcfg.run_name or self.config.name,
            config=self.config.to_dict(),
        )
        show_bar = main and lcfg.progress and sys.stderr.isatty()
        from tqdm.auto import tqdm

        bar = None
        loss_sum, loss_n = 0.0, 0
        t_start = time.perf_counter()
        try:
            state = self._prepare_run_dir(resume)
            if state is not None:
                self.load_state_dict(state)
                self.last_checkpoint = self.ckpts.latest() if main else None
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
                    pic = self.save_samples()
                    if pic is not None:
                        tracker.log_image("samples", pic, self.step)
                if main and tcfg.eval_every and self.step % tcfg.eval_every == 0:
                    record.update(self.evaluate_now())
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
        finally:
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
