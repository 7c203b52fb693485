"""A Fréchet distance for scikit-learn's 8×8 digits, computed in the features of a small shipped classifier.

FID (Heusel et al. 2017, Eq. 6) compares the Gaussian fits of Inception-v3 pool features of two image sets.
Inception features mean nothing on 8×8 greyscale digits, so genlab ships its own feature extractor: a
small CNN (:class:`DigitsClassifier`, two 3×3 convolutions + an MLP with a 64-d SiLU penultimate layer) trained
by ``experiments/train_digits_classifier.py`` on the deterministic digits **training** split
(``genlab.data.get_split("digits", split_seed=0, test_fraction=0.2)``). Its weights are
``genlab/assets/digits_classifier.safetensors``; ``digits_classifier.json`` next to them records the test
accuracy, the split, the architecture and the command that produced them.

The digits FD of a sample set is :func:`genlab.metrics.frechet_distance` between the Gaussian fit (mean and
unbiased covariance, :func:`genlab.metrics.gaussian_moments`) of its 64-d features and that of a reference
set, by default the held-out **test** split (359 images) that the classifier never saw. Values are only
comparable at equal sample sizes: like FID, the plug-in estimate is biased upwards for small sets.

Input convention (checked; a clear error otherwise):

* shape ``(N, 1, 8, 8)``, or ``(N, 1, 16, 16)`` which is reduced to 8×8 by 2×2 **average pooling** (so a
  16×16 image made by nearest upsampling an 8×8 digit gives back that digit exactly, and a bilinear
  upsample gives back a smoothed one);
* values in ``[-1, 1]`` (``genlab.data.load_digits``: background −1, ink +1). Values up to
  ``range_tolerance`` outside the interval are accepted and clamped to ``[-1, 1]`` (the range the classifier
  was trained on, as FID code clamps to ``[0, 255]``); values further out, or a set without any negative
  value (images in ``[0, 1]``?), raise a ``ValueError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.metrics.distances import GaussianMoments, frechet_distance, gaussian_moments

__all__ = [
    "DIGITS_CLASSIFIER_FILE",
    "DIGITS_METADATA_FILE",
    "DigitsClassifier",
    "DigitsFD",
    "classifier_accuracy",
    "digits_classifier_metadata",
    "digits_fd",
    "digits_features",
    "prepare_digits",
]

#: File name of the shipped classifier weights inside ``genlab/assets``.
DIGITS_CLASSIFIER_FILE = "digits_classifier.safetensors"
#: File name of the shipped classifier metadata (accuracy, split, architecture) inside ``genlab/assets``.
DIGITS_METADATA_FILE = "digits_classifier.json"


def asset_path(name: str, *, regenerate_with: str = "experiments/train_digits_classifier.py") -> Path:
    """The path of a file shipped in ``genlab/assets`` (a clear error naming the script that rebuilds it).

    Args:
        name: File name inside ``genlab/assets``.
        regenerate_with: The script that writes the file, named in the error.

    Returns:
        The path.
    """
    path = Path(str(resources.files("genlab").joinpath("assets", name)))
    if not path.is_file():
        raise FileNotFoundError(
            f"genlab asset {name!r} is missing at {path}; reinstall genlab or regenerate it with "
            f"`python {regenerate_with}`"
        )
    return path


def _asset(name: str) -> Path:
    return asset_path(name)


def digits_classifier_metadata() -> dict[str, Any]:
    """The metadata recorded with the shipped classifier (read from ``genlab/assets``, never cached).

    Returns:
        A dict with at least ``test_accuracy``, ``split_seed``, ``test_fraction``, ``architecture`` (the
        :class:`DigitsClassifier` keyword arguments), ``feature_dim``, ``date`` and ``command``.
    """
    with open(_asset(DIGITS_METADATA_FILE), encoding="utf-8") as f:
        return json.load(f)


def prepare_digits(images: Tensor, *, range_tolerance: float = 0.25, name: str = "images") -> Tensor:
    """Validate a batch of digits and bring it to ``(N, 1, 8, 8)`` float32 in ``[-1, 1]``.

    Args:
        images: ``(N, 1, 8, 8)`` or ``(N, 1, 16, 16)`` images in ``[-1, 1]``; 16×16 inputs are 2×2
            average-pooled to 8×8.
        range_tolerance: How far outside ``[-1, 1]`` values may lie before it is an error; accepted values
            are clamped to ``[-1, 1]``.
        name: Argument name used in error messages.

    Returns:
        ``(N, 1, 8, 8)`` float32 tensor on ``images``' device.

    Raises:
        TypeError: If ``images`` is not a floating tensor.
        ValueError: On a wrong shape, non-finite values or values outside ``[-1, 1]`` (± tolerance).
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor in [-1, 1]; got dtype {images.dtype} (for uint8 or 0..16 "
            "digits use x / 8 - 1 or genlab.data.load_digits)"
        )
    if images.ndim != 4 or images.shape[1] != 1 or tuple(images.shape[2:]) not in ((8, 8), (16, 16)):
        raise ValueError(
            f"{name} must have shape (N, 1, 8, 8) or (N, 1, 16, 16); got {tuple(images.shape)} "
            "(add the channel dimension with x.unsqueeze(1); other sizes are not digits)"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass at least one image")
    if not (isinstance(range_tolerance, (int, float)) and range_tolerance >= 0):
        raise ValueError(f"range_tolerance must be a float >= 0; got {range_tolerance!r}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1.0 - range_tolerance or hi > 1.0 + range_tolerance:
        raise ValueError(
            f"{name} must lie in [-1, 1] (background -1, ink +1); got values in [{lo:.4g}, {hi:.4g}], more "
            f"than range_tolerance={range_tolerance} outside. Rescale (x / 8 - 1 for raw 0..16 digits, "
            "2 x - 1 for [0, 1]) or raise range_tolerance"
        )
    if lo >= 0.0:
        raise ValueError(
            f"{name} has no negative value (range [{lo:.4g}, {hi:.4g}]): images in [0, 1]? The digits "
            "convention is [-1, 1] with background -1; pass 2 * x - 1"
        )
    x = images.to(torch.float32).clamp(-1.0, 1.0)
    if x.shape[-1] == 16:
        x = F.avg_pool2d(x, kernel_size=2)
    return x


class DigitsClassifier(nn.Module):
    """Small CNN for 8×8 digits whose 64-d penultimate activations are the digits-FD features.

    ``x (1×8×8) → conv3×3(c₁) → ReLU → conv3×3(c₂) → ReLU → maxpool 2 → (c₂·4·4) → linear(feature_dim) → SiLU
    = features → linear(n_classes) = logits``.

    The feature layer uses SiLU rather than ReLU: with ReLU, about half of the 64 units never fired on the
    test split (dead units give a rank-deficient feature covariance and a blind FD in those directions);
    with SiLU every unit varies, at the same accuracy level.

    Args:
        channels: Output channels ``(c₁, c₂)`` of the two convolutions.
        feature_dim: Width of the penultimate (feature) layer.
        n_classes: Number of classes.
    """

    def __init__(self, *, channels: tuple[int, int] = (16, 32), feature_dim: int = 64, n_classes: int = 10):
        super().__init__()
        c1, c2 = (int(c) for c in channels)
        if min(c1, c2, feature_dim, n_classes) < 1:
            raise ValueError(
                f"DigitsClassifier: channels, feature_dim and n_classes must be positive; got {channels}, "
                f"{feature_dim}, {n_classes}"
            )
        self.config: dict[str, Any] = {
            "channels": [c1, c2],
            "feature_dim": int(feature_dim),
            "n_classes": int(n_classes),
        }
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc = nn.Linear(c2 * 4 * 4, feature_dim)
        self.head = nn.Linear(feature_dim, n_classes)

    @property
    def feature_dim(self) -> int:
        """Dimension of :meth:`features`."""
        return self.fc.out_features

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations ``(N, feature_dim)`` of already prepared ``(N, 1, 8, 8)`` images."""
        h = F.relu(self.conv1(x))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.silu(self.fc(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(N, n_classes)`` of already prepared ``(N, 1, 8, 8)`` images (see :func:`prepare_digits`)."""
        return self.head(self.features(x))

    @classmethod
    def load_pretrained(cls, *, device: torch.device | str | None = None) -> DigitsClassifier:
        """The classifier shipped in ``genlab/assets``, in eval mode with frozen parameters.

        Args:
            device: Device to load it on (default: torch's default device).

        Returns:
            :class:`DigitsClassifier`.
        """
        from safetensors.torch import load_file

        meta = digits_classifier_metadata()
        arch: Mapping[str, Any] = meta["architecture"]
        model = cls(
            channels=tuple(arch["channels"]),
            feature_dim=int(arch["feature_dim"]),
            n_classes=int(arch["n_classes"]),
        )
        state = load_file(str(_asset(DIGITS_CLASSIFIER_FILE)), device="cpu")
        model.load_state_dict(state, strict=True)
        if device is not None:
            model = model.to(device)
        model.eval()
        model.requires_grad_(False)
        return model


def _classifier(classifier: DigitsClassifier | None, device: torch.device) -> DigitsClassifier:
    if classifier is None:
        return DigitsClassifier.load_pretrained(device=device)
    if not isinstance(classifier, DigitsClassifier):
        raise TypeError(f"classifier must be a DigitsClassifier or None; got {type(classifier).__name__}")
    return classifier


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")


@torch.no_grad()
def _run(classifier: DigitsClassifier, images: Tensor, batch_size: int, *, logits: bool) -> Tensor:
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    try:
        outs = []
        for chunk in images.split(batch_size):
            chunk = chunk.to(device)
            outs.append(classifier(chunk) if logits else classifier.features(chunk))
    finally:
        classifier.train(was_training)
    return torch.cat(outs).to(images.device)


def digits_features(
    images: Tensor,
    *,
    classifier: DigitsClassifier | None = None,
    batch_size: int = 512,
    range_tolerance: float = 0.25,
) -> Tensor:
    """64-d penultimate features of the digits classifier.

    Args:
        images: ``(N, 1, 8, 8)`` or ``(N, 1, 16, 16)`` in ``[-1, 1]`` (see :func:`prepare_digits`).
        classifier: Feature extractor (default: :meth:`DigitsClassifier.load_pretrained` on ``images``' device).
        batch_size: Images per forward pass.
        range_tolerance: See :func:`prepare_digits`.

    Returns:
        ``(N, feature_dim)`` float32 features on ``images``' device.
    """
    x = prepare_digits(images, range_tolerance=range_tolerance)
    _check_batch_size(batch_size)
    return _run(_classifier(classifier, x.device), x, batch_size, logits=False)


def classifier_accuracy(
    samples: Tensor,
    labels: Tensor,
    *,
    classifier: DigitsClassifier | None = None,
    batch_size: int = 512,
    range_tolerance: float = 0.25,
) -> float:
    """Fraction of class-conditional ``samples`` that the digits classifier assigns to their intended ``labels``.

    Args:
        samples: ``(N, 1, 8, 8)`` or ``(N, 1, 16, 16)`` in ``[-1, 1]``.
        labels: ``(N,)`` integer classes in ``0..9`` the samples were generated for.
        classifier: Classifier (default: the shipped one on ``samples``' device).
        batch_size: Images per forward pass.
        range_tolerance: See :func:`prepare_digits`.

    Returns:
        Accuracy in ``[0, 1]``.
    """
    x = prepare_digits(samples, range_tolerance=range_tolerance, name="samples")
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a torch.Tensor of class indices; got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor of class indices; got dtype {labels.dtype}")
    if labels.shape != (x.shape[0],):
        raise ValueError(
            f"labels must have shape ({x.shape[0]},) to match samples; got {tuple(labels.shape)}"
        )
    _check_batch_size(batch_size)
    clf = _classifier(classifier, x.device)
    n_classes = clf.head.out_features
    if bool(((labels < 0) | (labels >= n_classes)).any()):
        raise ValueError(
            f"labels must lie in 0..{n_classes - 1}; got values in [{int(labels.min())}, {int(labels.max())}]"
        )
    pred = _run(clf, x, batch_size, logits=True).argmax(dim=1)
    return float((pred == labels.to(pred.device)).to(torch.float64).mean())


class DigitsFD:
    """Fréchet distance to a fixed reference set in the digits-classifier feature space.

    The reference statistics are computed once, at construction, and kept on the object (no module-level
    cache): build one ``DigitsFD`` and call :meth:`score` on many sample sets.

    Args:
        reference: ``"test"`` (default: the held-out test split the classifier never saw, 359 images),
            ``"train"`` (the classifier's own training split, 1438 images) or a tensor of digits
            ``(M, 1, 8|16, 8|16)`` in ``[-1, 1]``, ``M >= 2``. The split is the one recorded in the
            classifier metadata.
        classifier: Feature extractor (default: the shipped one, loaded on ``device``).
        device: Device for the classifier and the reference images (default: the reference tensor's
            device, else torch's default device).
        batch_size: Images per forward pass.
        range_tolerance: See :func:`prepare_digits`.

    Attributes:
        classifier: The feature extractor.
        reference_moments: :class:`~genlab.metrics.GaussianMoments` of the reference features (float64).
        n_reference: Number of reference images.
    """

    def __init__(
        self,
        reference: Literal["test", "train"] | Tensor = "test",
        *,
        classifier: DigitsClassifier | None = None,
        device: torch.device | str | None = None,
        batch_size: int = 512,
        range_tolerance: float = 0.25,
    ):
        _check_batch_size(batch_size)
        self.batch_size = batch_size
        self.range_tolerance = range_tolerance
        if isinstance(reference, str):
            if reference not in ("test", "train"):
                raise ValueError(
                    f"DigitsFD: reference must be 'test', 'train' or a tensor; got {reference!r}"
                )
            from genlab.data import get_split

            meta = digits_classifier_metadata()
            split = get_split(
                "digits", split_seed=int(meta["split_seed"]), test_fraction=float(meta["test_fraction"])
            )
            ref = (split.test if reference == "test" else split.train).tensors[0]
            dev = torch.device(device) if device is not None else torch.empty(0).device
        elif isinstance(reference, Tensor):
            ref = reference
            dev = torch.device(device) if device is not None else reference.device
        else:
            raise TypeError(
                f"DigitsFD: reference must be 'test', 'train' or a tensor of digits; got {type(reference).__name__}"
            )
        ref = ref.to(dev)
        self.classifier = _classifier(classifier, dev)
        feats = digits_features(
            ref, classifier=self.classifier, batch_size=batch_size, range_tolerance=range_tolerance
        )
        if feats.shape[0] < 2:
            raise ValueError(f"DigitsFD: reference needs at least 2 images; got {feats.shape[0]}")
        self.n_reference: int = feats.shape[0]
        self.reference_moments: GaussianMoments = gaussian_moments(feats)

    def moments(self, samples: Tensor) -> GaussianMoments:
        """Gaussian fit of the features of ``samples`` (``(N, 1, 8|16, 8|16)`` in ``[-1, 1]``, ``N >= 2``)."""
        feats = digits_features(
            samples,
            classifier=self.classifier,
            batch_size=self.batch_size,
            range_tolerance=self.range_tolerance,
        )
        if feats.shape[0] < 2:
            raise ValueError(f"DigitsFD.score: samples needs at least 2 images; got {feats.shape[0]}")
        return gaussian_moments(feats)

    def score(self, samples: Tensor) -> float:
        """Digits FD ``‖μ_s − μ_r‖² + tr Σ_s + tr Σ_r − 2 tr (Σ_s^{1/2} Σ_r Σ_s^{1/2})^{1/2}`` to the reference.

        Args:
            samples: ``(N, 1, 8, 8)`` or ``(N, 1, 16, 16)`` digits in ``[-1, 1]``, ``N >= 2`` (use the same
                ``N`` when comparing models: the estimate is biased upwards for small ``N``).

        Returns:
            The Fréchet distance (squared-feature units), ``>= 0``.
        """
        m = self.moments(samples)
        ref = self.reference_moments
        return float(frechet_distance(m.mean, m.cov, ref.mean.to(m.mean.device), ref.cov.to(m.cov.device)))


def digits_fd(
    samples: Tensor,
    reference: Literal["test", "train"] | Tensor | None = None,
    *,
    classifier: DigitsClassifier | None = None,
    batch_size: int = 512,
    range_tolerance: float = 0.25,
) -> float:
    """One-shot digits FD: ``DigitsFD(reference, device=samples.device).score(samples)``.

    Builds the reference statistics on every call; keep a :class:`DigitsFD` to score several sets.

    Args:
        samples: ``(N, 1, 8, 8)`` or ``(N, 1, 16, 16)`` digits in ``[-1, 1]``.
        reference: ``"test"`` (default when ``None``), ``"train"`` or a tensor of digits.
        classifier: Feature extractor (default: the shipped one).
        batch_size: Images per forward pass.
        range_tolerance: See :func:`prepare_digits`.

    Returns:
        The Fréchet distance.
    """
    if not isinstance(samples, Tensor):
        raise TypeError(f"digits_fd: samples must be a torch.Tensor; got {type(samples).__name__}")
    fd = DigitsFD(
        "test" if reference is None else reference,
        classifier=classifier,
        device=samples.device,
        batch_size=batch_size,
        range_tolerance=range_tolerance,
    )
    return fd.score(samples)
