"""Metric trackers: JSON lines by default; TensorBoard and Weights & Biases on request (imported lazily, rank 0).

Every tracker has ``log(metrics, step)``, ``log_image(key, path, step)`` and ``finish()``. Only rank 0 builds
real trackers (:func:`make_tracker` returns a :class:`NullTracker` elsewhere).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "JsonlTracker",
    "MultiTracker",
    "NullTracker",
    "TensorBoardTracker",
    "Tracker",
    "WandbTracker",
    "make_tracker",
]


def _jsonable(value: Any) -> Any:
    """Numbers (0-d tensors included) as floats/ints, NaN/inf as strings (JSON has no such numbers)."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


class Tracker:
    """Interface: a sink for scalar metrics (and optionally images)."""

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Record ``metrics`` at training step ``step``."""

    def log_image(self, key: str, path: str | Path, step: int) -> None:
        """Record an image file written at ``step``."""

    def finish(self) -> None:
        """Flush and close."""


class NullTracker(Tracker):
    """Drops everything (non-zero ranks, or logging switched off)."""


class JsonlTracker(Tracker):
    """Appends one JSON object per record to a file: ``{"step": ..., "time": ..., **metrics}``.

    The file is opened (in append mode) at the first record and flushed after each one, so a resumed run
    continues the same file and a crash loses at most the record being written.

    Args:
        path: The ``metrics.jsonl`` file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh: Any = None

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in finish()
        record = {
            "step": int(step),
            "time": round(time.time(), 3),
            **{k: _jsonable(v) for k, v in metrics.items()},
        }
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def log_image(self, key: str, path: str | Path, step: int) -> None:
        self.log({key: str(path)}, step)

    def finish(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()


class WandbTracker(Tracker):
    """Weights & Biases run (``pip install 'genlab[track]'``), imported only when this class is built.

    ``WANDB_MODE`` from the environment is honoured (``offline``: write locally, ``wandb sync`` later;
    ``disabled``: no-op run). The run id is stored in ``<run_dir>/wandb_id.txt`` so a resumed training run
    logs into the same wandb run.

    Args:
        run_dir: The run folder.
        project: wandb project.
        name: Run name.
        config: Resolved config (plain dict) recorded with the run.
    """

    def __init__(
        self, run_dir: str | Path, *, project: str, name: str | None, config: Mapping[str, Any]
    ) -> None:
        try:
            import wandb
        except ImportError as err:
            raise ImportError(
                "logging.wandb=true needs wandb: pip install 'genlab[track]' (or set logging.wandb=false)"
            ) from err
        self._wandb = wandb
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        id_file = run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.is_file() else None
        kwargs: dict[str, Any] = {
            "project": project,
            "name": name,
            "config": dict(config),
            "dir": str(run_dir),
            "id": run_id,
            "resume": "allow",
        }
        mode = os.environ.get("WANDB_MODE")
        if mode:
            kwargs["mode"] = mode
        self.run = wandb.init(**kwargs)
        new_id = getattr(self.run, "id", None)
        if new_id and run_id is None:
            id_file.write_text(str(new_id) + "\n")

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        self.run.log({k: _jsonable(v) for k, v in metrics.items()}, step=int(step))

    def log_image(self, key: str, path: str | Path, step: int) -> None:
        self.run.log({key: self._wandb.Image(str(path))}, step=int(step))

    def finish(self) -> None:
        self.run.finish()


class TensorBoardTracker(Tracker):
    """TensorBoard event files through ``torch.utils.tensorboard`` (``pip install 'genlab[track]'``).

    Scalars go to ``<run_dir>/tensorboard`` (``tensorboard --logdir <run_dir>/tensorboard``); a resumed run
    appends a new event file to the same folder, which TensorBoard merges by step. Images written during
    training (sample grids) are logged as images; non-numeric values (e.g. file names) are skipped.

    Args:
        run_dir: The run folder.
        config: Resolved config, recorded once as text (``config``) at step 0.
    """

    def __init__(self, run_dir: str | Path, *, config: Mapping[str, Any] | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ImportError(
                "logging.tensorboard=true needs tensorboard: pip install 'genlab[track]' (or set "
                "logging.tensorboard=false)"
            ) from err
        self.log_dir = Path(run_dir) / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        if config:
            self.writer.add_text("config", "```\n" + json.dumps(_jsonable(dict(config)), indent=2) + "\n```", 0)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        for key, value in metrics.items():
            value = _jsonable(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, float(value), int(step))
        self.writer.flush()

    def log_image(self, key: str, path: str | Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
        self.writer.add_image(key, array, int(step), dataformats="HWC")
        self.writer.flush()

    def finish(self) -> None:
        self.writer.close()


class MultiTracker(Tracker):
    """Forwards every call to several trackers.

    Args:
        trackers: The trackers.
    """

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = list(trackers)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        for t in self.trackers:
            t.log(metrics, step)

    def log_image(self, key: str, path: str | Path, step: int) -> None:
        for t in self.trackers:
            t.log_image(key, path, step)

    def finish(self) -> None:
        for t in self.trackers:
            t.finish()


def make_tracker(
    run_dir: str | Path,
    *,
    is_main: bool,
    jsonl: bool = True,
    wandb: bool = False,
    tensorboard: bool = False,
    project: str = "genlab",
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Tracker:
    """The trackers a run asks for (a :class:`NullTracker` off rank 0).

    Args:
        run_dir: The run folder.
        is_main: Whether this is rank 0.
        jsonl: Write ``metrics.jsonl``.
        wandb: Also log to wandb (imported only here, only on rank 0).
        tensorboard: Also write TensorBoard events to ``<run_dir>/tensorboard`` (rank 0 only).
        project: wandb project.
        name: wandb run name.
        config: Resolved config for wandb.

    Returns:
        A tracker.
    """
    if not is_main:
        return NullTracker()
    trackers: list[Tracker] = []
    if jsonl:
        trackers.append(JsonlTracker(Path(run_dir) / "metrics.jsonl"))
    if wandb:
        trackers.append(WandbTracker(run_dir, project=project, name=name, config=config or {}))
    if tensorboard:
        trackers.append(TensorBoardTracker(run_dir, config=config))
    if not trackers:
        return NullTracker()
    return trackers[0] if len(trackers) == 1 else MultiTracker(trackers)
