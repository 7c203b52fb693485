"""Engines: where a training step runs. :class:`LocalEngine` (one device) and :class:`DDPEngine`
(``torch.distributed`` + ``DistributedDataParallel``, launched by ``torchrun``).

Both expose one small interface used by the :class:`~genlab.training.trainer.Trainer`: ``device``, ``rank``,
``world_size``, ``is_main``, ``prepare``/``unwrap`` a module (the Trainer prepares each trainable module of
its objective), ``autocast()`` around the network call, ``step(loss, optimizer(s), params, grad_clip)``
(backward, unscale, clip, optimiser steps), ``all_reduce_mean``,
``gather_object``, ``barrier`` and ``close``. Launch several processes with::

    torchrun --nproc_per_node=2 -m genlab train configs/moons_si.yaml --out runs/x

(gloo on CPU, nccl on GPU; rank ``r`` drives ``cuda:<LOCAL_RANK>``).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from genlab.training.fastpath import can_step_directly, clear_grads, clip_grad_norm, optimizer_step

__all__ = ["DDPEngine", "Engine", "LocalEngine", "get_engine", "resolve_device"]

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:<i>"``, ``"mps"`` into a
    device.

    Raises:
        ValueError: If the requested device is not available here.
    """
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {spec!r} was requested but CUDA is not available; use train.device=cpu or auto"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device {spec!r} was requested but MPS is not available; use train.device=cpu or auto"
        )
    return dev


class Engine(ABC):
    """Common interface of the training engines.

    Args:
        device: The device of this process.
        amp: ``"none"``, ``"bf16"`` or ``"fp16"`` (fp16 needs CUDA and uses a gradient scaler).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __init__(self, device: torch.device, *, amp: str = "none") -> None:
        if amp not in ("none", *_AMP_DTYPES):
            raise ValueError(f"amp must be 'none', 'bf16' or 'fp16', got {amp!r}")
        if amp == "fp16" and device.type != "cuda":
            raise ValueError(
                "amp='fp16' needs a CUDA device (its gradient scaler is CUDA-only here); use "
                "amp='bf16' on CPU or amp='none'"
            )
        self.device = device
        self.amp = amp
        self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        # per optimiser: whether fastpath.optimizer_step may call the fused AdamW kernel itself
        self._direct: weakref.WeakKeyDictionary[torch.optim.Optimizer, bool] = weakref.WeakKeyDictionary()

    @property
    def is_main(self) -> bool:
        """Whether this process logs and writes files (rank 0)."""
        return self.rank == 0

    @abstractmethod
    def prepare(self, module: nn.Module) -> nn.Module:
        """Move ``module`` to the device and wrap it for this engine (DDP for :class:`DDPEngine`)."""

    def unwrap(self, module: nn.Module) -> nn.Module:
        """The module inside a wrapper made by :meth:`prepare`."""
        return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Mixed precision around the network call only (a no-op with ``amp="none"``)."""
        if self.amp == "none":
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=_AMP_DTYPES[self.amp]):
            yield

    def step(
        self,
        loss: Tensor,
        optimizer: torch.optim.Optimizer | Sequence[torch.optim.Optimizer],
        params: list[nn.Parameter],
        *,
        grad_clip: float | None,
    ) -> float:
        """Backward pass, (unscale,) clip the global gradient norm, optimiser step(s), zero the gradients.

        Args:
            loss: Scalar loss.
            optimizer: The optimiser, or one per trained module (all step on the same backward pass).
            params: Parameters whose global gradient norm is measured/clipped.
            grad_clip: Max norm, or ``None``.

        Returns:
            The global gradient norm before clipping.
        """
        optimizers = [optimizer] if isinstance(optimizer, torch.optim.Optimizer) else list(optimizer)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            for opt in optimizers:
                self.scaler.unscale_(opt)
        else:
            loss.backward()
        max_norm = float("inf") if grad_clip is None else float(grad_clip)
        norm = clip_grad_norm(params, max_norm)  # = torch.nn.utils.clip_grad_norm_, less overhead
        for opt in optimizers:
            if self.scaler is not None:
                self.scaler.step(opt)
            else:
                self._optimizer_step(opt)  # = opt.step(), less overhead (fastpath.optimizer_step)
        if self.scaler is not None:
            self.scaler.update()
        clear_grads(optimizers)  # = opt.zero_grad(set_to_none=True)
        return float(norm)

    def _optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()`` through :func:`~genlab.training.fastpath.optimizer_step` (checks kept per optimiser)."""
        direct = self._direct.get(optimizer)
        if direct is None:
            direct = self._direct[optimizer] = can_step_directly(optimizer)
        optimizer_step(optimizer, direct=direct)

    def all_reduce_mean(self, values: Tensor) -> Tensor:
        """Mean of ``values`` over processes (identity for one process)."""
        return values

    def gather_object(self, obj: Any) -> list[Any]:
        """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` for one process)."""
        return [obj]

    def barrier(self) -> None:
        """Wait for every process (no-op for one process)."""

    def close(self) -> None:
        """Release process-group resources (no-op for one process)."""


class LocalEngine(Engine):
    """One process, one device.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:<i>"``, ``"mps"`` or a ``torch.device``.
        amp: Autocast dtype (``"none"``, ``"bf16"``, ``"fp16"``).
    """

    def __init__(self, device: str | torch.device = "auto", *, amp: str = "none") -> None:
        super().__init__(resolve_device(device), amp=amp)

    def prepare(self, module: nn.Module) -> nn.Module:
        return module.to(self.device)


class DDPEngine(Engine):
    """Data-parallel training over the processes started by ``torchrun``.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment (torchrun sets them, together with
    ``MASTER_ADDR``/``MASTER_PORT``), initialises the default process group (``nccl`` on CUDA, ``gloo`` on
    CPU) unless one exists, and wraps the model in ``DistributedDataParallel`` (gradients are averaged in
    backward, so the replicas stay identical). Rank 0 logs and saves; data shards and noise differ per rank.

    Args:
        device: ``"auto"`` (``cuda:<LOCAL_RANK>`` when CUDA is available, else CPU), ``"cpu"`` or ``"cuda"``.
        amp: Autocast dtype.
        backend: Override the process-group backend.
        timeout_s: Collective timeout in seconds.

    Raises:
        ValueError: If the torchrun environment variables are missing.
    """

    def __init__(
        self,
        device: str | torch.device = "auto",
        *,
        amp: str = "none",
        backend: str | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        import torch.distributed as dist

        missing = [k for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK") if k not in os.environ]
        if missing:
            raise ValueError(
                f"DDP needs the torchrun environment ({missing} unset); launch with "
                "`torchrun --nproc_per_node=N -m genlab train CONFIG` or use train.engine=local"
            )
        if not dist.is_available():  # pragma: no cover - depends on the torch build
            raise ValueError("this torch build has no torch.distributed; use train.engine=local")
        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        use_cuda = (device == "auto" and torch.cuda.is_available()) or str(device).startswith("cuda")
        dev = (
            torch.device("cuda", self.local_rank)
            if use_cuda
            else resolve_device("cpu" if device == "auto" else device)
        )
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        super().__init__(dev, amp=amp)
        self._owns_group = False
        if not dist.is_initialized():
            dist.init_process_group(
                backend or ("nccl" if dev.type == "cuda" else "gloo"),
                timeout=datetime.timedelta(seconds=timeout_s),
            )
            self._owns_group = True
        self._dist = dist

    def prepare(self, module: nn.Module) -> nn.Module:
        module = module.to(self.device)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def all_reduce_mean(self, values: Tensor) -> Tensor:
        out = values.detach().clone().to(self.device)
        self._dist.all_reduce(out, op=self._dist.ReduceOp.SUM)
        return (out / self.world_size).to(values.device)

    def gather_object(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        self._dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        self._dist.barrier()

    def close(self) -> None:
        if self._owns_group and self._dist.is_initialized():
            self._dist.destroy_process_group()
            self._owns_group = False


def get_engine(name: str = "auto", *, device: str | torch.device = "auto", amp: str = "none") -> Engine:
    """Build an engine by name.

    Args:
        name: ``"auto"`` (DDP when ``WORLD_SIZE > 1`` is set by a launcher, else local), ``"local"`` or
            ``"ddp"``.
        device: Device spec (see :func:`resolve_device`).
        amp: Autocast dtype.

    Returns:
        The engine.
    """
    if name == "auto":
        name = "ddp" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "local"
    if name == "local":
        return LocalEngine(device, amp=amp)
    if name == "ddp":
        return DDPEngine(device, amp=amp)
    raise ValueError(f"unknown engine {name!r}; choose 'auto', 'local' or 'ddp'")
