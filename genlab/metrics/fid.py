"""Image FID and KID through torchmetrics, with a feature extractor that never downloads.

torchmetrics (``pip install 'genlab[metrics]'``) computes the Fréchet Inception Distance (Heusel et al., NeurIPS'17,
Eq. 6) and the Kernel Inception Distance (Bińkowski et al., ICLR'18: the unbiased MMD² with the cubic polynomial
kernel ``k(x, y) = (xᵀy/d + 1)³``, averaged over random subsets). Its default Inception network downloads weights,
which genlab never does at run time, so the features come from one of:

* ``"digits"`` / ``"mnist"``: genlab's shipped classifiers (8×8 / 16×16 digits, 28×28 MNIST), the same features
  as :class:`~genlab.metrics.DigitsFD` / :class:`~genlab.metrics.MnistFD` (so ``image_fid`` with these equals
  genlab's own FD up to the covariance normalisation, checked in the tests);
* a local file: a TorchScript module (``torch.jit.save``; e.g. an Inception-v3 pool3 extractor you exported
  yourself), loaded with ``torch.jit.load``; it receives images in ``[-1, 1]`` and returns ``(N, d)`` features;
* any ``torch.nn.Module`` with that contract.

Images are ``(N, C, H, W)`` floats in ``[-1, 1]`` (genlab's convention) on any device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["FeatureNet", "KIDResult", "image_fid", "image_kid", "load_feature_net"]


def _torchmetrics_image() -> tuple[type, type]:
    """torchmetrics' FID and KID classes (their modules import without torch-fidelity)."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError as err:
        raise ImportError("image_fid / image_kid need torchmetrics: pip install 'genlab[metrics]'") from err
    return FrechetInceptionDistance, KernelInceptionDistance


class FeatureNet(nn.Module):
    """A feature extractor in torchmetrics' custom-``feature`` contract (``num_features``; float input).

    torchmetrics hands the images through unchanged when a custom module is given and ``normalize=True``; this
    wrapper takes them in ``[0, 1]`` (what it passes) and maps back to genlab's ``[-1, 1]``.

    Args:
        features: ``images in [-1, 1] → (N, d) features``.
        num_features: ``d``.
    """

    def __init__(self, features: Callable[[Tensor], Tensor] | nn.Module, num_features: int) -> None:
        super().__init__()
        self.fn = features
        self.num_features = int(num_features)

    def forward(self, images01: Tensor) -> Tensor:
        return self.fn(images01 * 2.0 - 1.0).reshape(images01.shape[0], -1)


def load_feature_net(features: str | Path | nn.Module, *, example: Tensor) -> FeatureNet:
    """Resolve ``features`` (``"digits"``, ``"mnist"``, a TorchScript file, or a module) to a :class:`FeatureNet`.

    Args:
        features: See the module docstring.
        example: A few images of the kind that will be scored (``(N, C, H, W)`` in ``[-1, 1]``) to find ``d``.

    Returns:
        The feature net on ``example``'s device, in eval mode.

    Raises:
        FileNotFoundError: If a path is given that does not exist.
        ValueError: If a name is unknown or the extractor does not return ``(N, d)`` features.
    """
    device = example.device
    if isinstance(features, str) and features in ("digits", "mnist"):
        if features == "digits":
            from genlab.metrics.digits import DigitsClassifier, prepare_digits

            clf = DigitsClassifier.load_pretrained(device=device).eval()

            def fn(x: Tensor) -> Tensor:
                return clf.features(prepare_digits(x))
        else:
            from genlab.metrics.mnist import MnistClassifier

            mclf = MnistClassifier.load_pretrained(device=device).eval()

            def fn(x: Tensor) -> Tensor:
                return mclf.features(x.clamp(-1.0, 1.0))

        module: Callable[[Tensor], Tensor] | nn.Module = fn
    elif isinstance(features, nn.Module):
        module = features.to(device).eval()
    elif isinstance(features, (str, Path)):
        path = Path(features)
        if not path.is_file():
            raise FileNotFoundError(
                f"features: {str(path)!r} does not exist; give 'digits', 'mnist', a TorchScript file or a module "
                "(genlab downloads nothing: export e.g. an Inception pool3 extractor with torch.jit.save)"
            )
        module = torch.jit.load(str(path), map_location=device).eval()
    else:
        raise ValueError(f"features must be 'digits', 'mnist', a file path or an nn.Module; got {features!r}")
    with torch.no_grad():
        out = module(example[:2])
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != min(2, example.shape[0]):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the feature extractor must map (N, C, H, W) images to (N, d) features; got {shape}")
    return FeatureNet(module, out.shape[1]).to(device)


def _check_images(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"{name} must be float images (N, C, H, W) in [-1, 1]; got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 images; got {x.shape[0]}")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.5 or hi > 1.5:
        raise ValueError(f"{name} spans [{lo:.3g}, {hi:.3g}]; images must lie in [-1, 1] (genlab's convention)")


def _feed(metric: object, x: Tensor, *, real: bool, batch_size: int) -> None:
    for b in x.split(batch_size):
        metric.update(((b.clamp(-1.0, 1.0) + 1.0) / 2.0).float(), real=real)  # type: ignore[attr-defined]


@torch.no_grad()
def image_fid(
    real: Tensor, fake: Tensor, *, features: str | Path | nn.Module = "digits", batch_size: int = 256
) -> float:
    """FID between two image sets through ``torchmetrics.image.FrechetInceptionDistance``.

    Args:
        real: Reference images ``(N, C, H, W)`` in ``[-1, 1]``.
        fake: Generated images, same per-image shape.
        features: Feature extractor (see the module docstring); nothing is downloaded.
        batch_size: Images per forward pass.

    Returns:
        The FID (in the extractor's feature units).
    """
    _check_images(real, "real")
    _check_images(fake, "fake")
    fid_cls, _ = _torchmetrics_image()
    net = load_feature_net(features, example=real)
    metric = fid_cls(feature=net, normalize=True).to(real.device)
    _feed(metric, real, real=True, batch_size=batch_size)
    _feed(metric, fake.to(real.device), real=False, batch_size=batch_size)
    return float(metric.compute())


@dataclass(frozen=True)
class KIDResult:
    """KID over random subsets: mean and standard deviation (torchmetrics' convention)."""

    mean: float
    std: float
    subsets: int
    subset_size: int


@torch.no_grad()
def image_kid(
    real: Tensor,
    fake: Tensor,
    *,
    features: str | Path | nn.Module = "digits",
    subsets: int = 50,
    subset_size: int = 100,
    seed: int = 0,
    batch_size: int = 256,
) -> KIDResult:
    """KID between two image sets through ``torchmetrics.image.KernelInceptionDistance``.

    Args:
        real: Reference images ``(N, C, H, W)`` in ``[-1, 1]``.
        fake: Generated images.
        features: Feature extractor (see the module docstring).
        subsets: Number of random subsets (Bińkowski et al. use 100 of 1000).
        subset_size: Images per subset (capped at the smaller set's size).
        seed: Seed of the subset draws (torchmetrics draws them from torch's global generator; it is forked).
        batch_size: Images per forward pass.

    Returns:
        :class:`KIDResult`.
    """
    _check_images(real, "real")
    _check_images(fake, "fake")
    _, kid_cls = _torchmetrics_image()
    size = int(min(subset_size, real.shape[0], fake.shape[0]))
    net = load_feature_net(features, example=real)
    metric = kid_cls(feature=net, normalize=True, subsets=int(subsets), subset_size=size).to(real.device)
    _feed(metric, real, real=True, batch_size=batch_size)
    _feed(metric, fake.to(real.device), real=False, batch_size=batch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        mean, std = metric.compute()
    return KIDResult(float(mean), float(std), int(subsets), size)
