"""Loaders for the peer libraries the benchmarks compare against (the ``bench`` extra).

On a CPU-only torch the registries only offer a CUDA build of torchvision, whose compiled ops fail to load; some
peers import torchvision at module level without using it. The shims needed to import them live here, in the
benchmarks' loader, never on genlab's import path, and every loader reports whether it used one so the benchmark
can print it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PeerModule", "load_k_diffusion_sampling"]

_TORCHVISION_NAMES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


@dataclass
class PeerModule:
    """A loaded peer module and how it was loaded.

    Attributes:
        module: The module.
        version: The installed distribution's version (or ``"unknown"``).
        shims: Human-readable descriptions of the shims that were needed (empty when none).
    """

    module: types.ModuleType
    version: str
    shims: list[str]


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001 - metadata lookups fail in many harmless ways
        return "unknown"


def load_k_diffusion_sampling() -> PeerModule:
    """Load ``k_diffusion/sampling.py`` (and the ``k_diffusion/utils.py`` it imports) without the package ``__init__``.

    ``import k_diffusion`` pulls in its training and evaluation helpers, which need torchvision (and clean-fid, CLIP,
    ...). The samplers need only scipy, torchdiffeq, torchsde, tqdm and ``k_diffusion.utils``; ``utils`` imports
    ``torchvision.transforms.functional`` at top level without using it in any sampler. So: an empty package object
    stands in for ``k_diffusion``, and, when ``import torchvision`` fails (or is absent), an empty stand-in
    ``torchvision`` module is placed in ``sys.modules`` while the two files execute, then removed again. The loaded
    modules stay registered as ``k_diffusion.utils`` and ``k_diffusion.sampling``, so
    ``genlab.samplers.adapters.KDiffusionSampler("dpmpp_2m")`` finds them afterwards.

    Returns:
        :class:`PeerModule` with ``module = k_diffusion.sampling``.

    Raises:
        ImportError: k-diffusion is not installed (``pip install --no-deps k-diffusion==0.1.1.post1``).
    """
    loaded = sys.modules.get("k_diffusion.sampling")
    if loaded is not None and hasattr(loaded, "sample_euler"):
        return PeerModule(loaded, _version("k-diffusion"), list(getattr(loaded, "_genlab_shims", [])))
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("k-diffusion is not installed: pip install --no-deps k-diffusion==0.1.1.post1")
    root = Path(next(iter(spec.submodule_search_locations)))
    shims = ["k_diffusion/__init__.py skipped (sampling.py and utils.py loaded from their files)"]
    package = types.ModuleType("k_diffusion")
    package.__path__ = [str(root)]
    package.__spec__ = importlib.util.spec_from_loader("k_diffusion", loader=None, is_package=True)
    saved = {name: sys.modules.get(name) for name in _TORCHVISION_NAMES}
    stand_in = False
    if "torchvision" not in sys.modules:
        try:
            importlib.import_module("torchvision.transforms.functional")
        except Exception as err:  # noqa: BLE001 - a CUDA torchvision on a CPU torch raises RuntimeError
            for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                del sys.modules[name]
            tv = types.ModuleType("torchvision")
            tv.transforms = types.ModuleType("torchvision.transforms")
            tv.transforms.functional = types.ModuleType("torchvision.transforms.functional")
            sys.modules["torchvision"] = tv
            sys.modules["torchvision.transforms"] = tv.transforms
            sys.modules["torchvision.transforms.functional"] = tv.transforms.functional
            stand_in = True
            shims.append(f"stand-in torchvision module while loading (import torchvision failed: "
                         f"{type(err).__name__}: {str(err).splitlines()[0][:80]})")
    sys.modules["k_diffusion"] = package
    try:
        for sub in ("utils", "sampling"):
            name = f"k_diffusion.{sub}"
            sub_spec = importlib.util.spec_from_file_location(name, root / f"{sub}.py")
            module = importlib.util.module_from_spec(sub_spec)
            sys.modules[name] = module
            sub_spec.loader.exec_module(module)
            setattr(package, sub, module)
    finally:
        if stand_in:
            for name in _TORCHVISION_NAMES:
                if saved[name] is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = saved[name]
    sampling = sys.modules["k_diffusion.sampling"]
    sampling._genlab_shims = list(shims)  # type: ignore[attr-defined]
    return PeerModule(sampling, _version("k-diffusion"), shims)
