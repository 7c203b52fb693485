"""Loader for deepinv, the peer of the inverse-problem benchmarks (``bench`` extra), plus an exact-GMM denoiser in
deepinv's conventions.

deepinv imports torchvision at module level. On a CPU-only torch the registries only offer a CUDA build of
torchvision, whose compiled ops fail to load (``RuntimeError: operator torchvision::nms does not exist``). Two shims,
used only here (never on genlab's import path) and reported by :func:`load_deepinv`:

1. if torchvision is not importable from the environment, a side directory holding it is put on ``sys.path``
   (``$GENLAB_PEER_SITE``, default ``out/peer_site``: ``pip install --no-deps --target out/peer_site
   torchvision==0.28.0``). Installing torchvision into the project's venv is avoided on purpose: diffusers imports
   it whenever it is installed, so a CUDA torchvision there breaks ``genlab.models.UNet`` for every other user;
2. the schemas ``torchvision::nms`` / ``torchvision::qnms`` are declared with ``torch.library`` before the import
   (no kernels; deepinv's samplers call no torchvision operator).
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["DeepinvPeer", "GMMDenoiserDeepinv", "load_deepinv"]

_LIBS: list[torch.library.Library] = []  # dropping a Library object deregisters its definitions


@dataclass
class DeepinvPeer:
    """The loaded deepinv module, its version and the shims that were needed."""

    module: types.ModuleType
    version: str
    shims: list[str] = field(default_factory=list)


def _drop(prefix: str) -> None:
    for name in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
        del sys.modules[name]


def load_deepinv() -> DeepinvPeer:
    """Import deepinv with the shims described in the module docstring.

    Returns:
        :class:`DeepinvPeer`.

    Raises:
        ImportError: deepinv (or torchvision) is not available.
    """
    shims: list[str] = []
    if importlib.util.find_spec("torchvision") is None:
        site = Path(os.environ.get("GENLAB_PEER_SITE", Path(__file__).resolve().parents[1] / "out" / "peer_site"))
        if not (site / "torchvision").is_dir():
            raise ImportError(f"torchvision is needed by deepinv; install it with `pip install --no-deps --target "
                              f"{site} torchvision==0.28.0` (or set GENLAB_PEER_SITE)")
        sys.path.append(str(site))
        shims.append(f"torchvision loaded from the side directory {site} (kept out of the venv: diffusers would "
                     "import it)")
    try:
        importlib.import_module("torchvision")
    except RuntimeError as err:
        if "torchvision::nms" not in str(err):
            raise
        _drop("torchvision")
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _LIBS.append(lib)
        importlib.import_module("torchvision")
        shims.append("declared the torchvision::nms/qnms op schemas (the CUDA torchvision build cannot load its "
                     "C++ ops on this CPU torch)")
    module = importlib.import_module("deepinv")
    try:
        from importlib.metadata import version

        ver = version("deepinv")
    except Exception:  # noqa: BLE001
        ver = getattr(module, "__version__", "unknown")
    return DeepinvPeer(module, ver, shims)


class GMMDenoiserDeepinv(nn.Module):
    """The exact GMM denoiser in deepinv's convention: images in [0, 1], σ in image units.

    A vector ``x ∈ R^d`` is embedded as the ``(1, 1, d)`` image ``x_img = (x/S + 1)/2``, so a VE noise level ``σ`` on
    ``x`` is ``σ_img = σ/(2S)`` (``reference/bench-notes.md``).

    Args:
        denoiser: A :class:`genlab.inverse.GMMDenoiser` (its ``tweedie(x, a=1, s=σ)`` is the VE denoiser).
        scale: The embedding scale ``S``.
    """

    def __init__(self, denoiser: nn.Module, scale: float) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.scale = float(scale)
        self.nfe = 0

    def forward(self, x_img: Tensor, sigma: Tensor | float, *args, **kwargs) -> Tensor:
        self.nfe += 1
        b = x_img.shape[0]
        x = self.scale * (2 * x_img.reshape(b, -1).double() - 1)
        sig = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1)
        sig = (2 * self.scale * sig).expand(b) if sig.numel() == 1 else 2 * self.scale * sig
        out = self.denoiser.tweedie(x, torch.ones_like(sig), sig)
        return ((out / self.scale + 1) / 2).reshape(x_img.shape).to(x_img.dtype)
