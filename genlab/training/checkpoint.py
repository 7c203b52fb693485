"""Checkpoints: atomic writes, a ``latest`` pointer, keep-last-K, ``weights_only`` loading, RNG states.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, written with ``torch.save`` to a
temp file next to the target and renamed onto it (``os.replace``), so a crash mid-write never leaves a partial
file at the final path. Everything loads with ``torch.load(weights_only=True)``: random states are stored as
tensors, the config as a plain dict, and no class is pickled.
"""

from __future__ import annotations

import os
import random
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.utils import atomic_write

__all__ = [
    "CheckpointManager",
    "capture_rng_state",
    "check_plain",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

_CKPT_RE = re.compile(r"^ckpt_(\d+)\.pt$")


_PLAIN = (int, float, bool, str, type(None))


def check_plain(obj: Any, where: str = "state") -> None:
    """Raise a ``TypeError`` naming the entry if ``obj`` holds anything but tensors, numbers, strings,
    ``None``, lists, tuples and string-keyed dicts (what ``torch.load(weights_only=True)`` accepts without
    allow-lists).

    Args:
        obj: The object to check.
        where: Its name in messages.
    """
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN:
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    if type(obj) in (dict, OrderedDict):
        for k, v in obj.items():
            if type(k) not in (str, int):
                raise TypeError(f"{where}: key {k!r} of type {type(k).__name__} is not a str/int")
            check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__name__}; checkpoints hold only tensors, "
        "numbers, strings, None, lists and dicts (so they load with weights_only=True)"
    )


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` atomically with ``torch.save`` (temp file + ``os.replace``).

    Args:
        path: Destination file.
        state: Plain dict (tensors, numbers, strings, lists, dicts); checked with :func:`check_plain` first.

    Returns:
        The written path.
    """
    check_plain(state)
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        torch.save(state, fh)
    return path


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    Args:
        path: A checkpoint file, or a run folder / ``checkpoints`` folder (its latest checkpoint is loaded).
        map_location: Where tensors are loaded.

    Returns:
        The state dict.

    Raises:
        FileNotFoundError: If there is no such file or the folder holds no checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        latest = CheckpointManager(folder).latest()
        if latest is None:
            raise FileNotFoundError(f"no checkpoint in {str(folder)!r}")
        path = latest
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    return torch.load(path, map_location=map_location, weights_only=True)


class CheckpointManager:
    """``ckpt_<step>.pt`` files in one folder, a ``latest`` pointer file, and pruning to the last
    ``keep_last``.

    Args:
        folder: The ``checkpoints`` folder.
        keep_last: Number of checkpoints kept after each save (``None``: keep all).
    """

    def __init__(self, folder: str | os.PathLike[str], *, keep_last: int | None = None) -> None:
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
        self.folder = Path(folder)
        self.keep_last = keep_last

    def path_for(self, step: int) -> Path:
        """File name of the checkpoint of ``step`` (zero-padded so names sort by step)."""
        return self.folder / f"ckpt_{int(step):08d}.pt"

    def list(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every complete checkpoint, sorted by step (temp files are ignored)."""
        if not self.folder.is_dir():
            return []
        found = []
        for p in self.folder.iterdir():
            m = _CKPT_RE.match(p.name)
            if m and p.is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self) -> Path | None:
        """The checkpoint named by the ``latest`` pointer, else the highest step, else ``None``."""
        pointer = self.folder / "latest"
        if pointer.is_file():
            target = self.folder / pointer.read_text().strip()
            if target.is_file():
                return target
        found = self.list()
        return found[-1][1] if found else None

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write the checkpoint of ``step``, point ``latest`` at it, then prune old ones.

        Args:
            step: Training step.
            state: Plain checkpoint dict.

        Returns:
            The checkpoint path.
        """
        path = save_checkpoint(self.path_for(step), state)
        with atomic_write(self.folder / "latest", "w") as fh:
            fh.write(path.name + "\n")
        if self.keep_last is not None:
            for _, old in self.list()[: -self.keep_last]:
                if old != path:
                    old.unlink(missing_ok=True)
        return path


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def capture_rng_state(*, generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Every random state that training touches, as tensors and plain numbers.

    Args:
        generators: Named ``torch.Generator`` objects to capture as well (e.g. the training-noise generator).

    Returns:
        ``{"torch": ByteTensor, "cuda": [ByteTensor, ...], "numpy": {...}, "python": {...},
        "generators": {name: ByteTensor}}``.
    """
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": _numpy_state(),
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    return state


def restore_rng_state(state: dict[str, Any], *, generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`capture_rng_state` captured (CUDA states only when the device count matches).

    Args:
        state: The captured state.
        generators: Generators to restore, by the names they were captured under.

    Raises:
        KeyError: If a requested generator has no saved state.
    """
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    npst = state["numpy"]
    np.random.set_state(
        (npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["gauss"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"]))
    for name, gen in (generators or {}).items():
        saved = state["generators"][name]
        gen.set_state(saved.cpu())
