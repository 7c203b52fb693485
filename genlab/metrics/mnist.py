"""MNIST Fréchet distance: features of a small CNN trained on the MNIST-5k training split, shipped in ``assets``.

The classifier is trained by ``experiments/train_mnist_classifier.py`` on the deterministic training split of
``mnist5k`` (``get_split("mnist5k", test_fraction=0.2, split_seed=0)``: 4,000 digits) and tested on the 1,000
held-out ones; its 64-d penultimate activations define the FD (as the Inception pool features define FID,
Heusel et al. 2017, here on a network small enough to ship, like genlab's digits FD). The weights
(``mnist_classifier.safetensors``) and metadata (``mnist_classifier.json``: accuracy, split, training) live in
``genlab/assets``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.metrics.digits import asset_path
from genlab.metrics.distances import GaussianMoments, frechet_distance, gaussian_moments

__all__ = [
    "MNIST_CLASSIFIER_FILE",
    "MNIST_METADATA_FILE",
    "MnistClassifier",
    "MnistFD",
    "mnist_classifier_metadata",
]

#: Weights of the shipped MNIST classifier inside ``genlab/assets``.
MNIST_CLASSIFIER_FILE = "mnist_classifier.safetensors"
#: Its metadata (accuracy, split, architecture).
MNIST_METADATA_FILE = "mnist_classifier.json"


def _asset(name: str) -> Path:
    return asset_path(name, regenerate_with="experiments/train_mnist_classifier.py")


def mnist_classifier_metadata() -> dict[str, Any]:
    """The metadata recorded with the shipped MNIST classifier."""
    return json.loads(_asset(MNIST_METADATA_FILE).read_text())


class MnistClassifier(nn.Module):
    """Small CNN for 28×28 digits in ``[-1, 1]``; its 64-d penultimate activations are the MNIST-FD features.

    ``x (1×28×28) → conv3×3(c₁) → ReLU → maxpool 2 → conv3×3(c₂) → ReLU → maxpool 2 → (c₂·7·7) →
    linear(feature_dim) → SiLU = features → linear(n_classes)``.

    Args:
        channels: Output channels of the two convolutions.
        feature_dim: Width of the feature layer.
        n_classes: Number of classes.
    """

    def __init__(self, *, channels: tuple[int, int] = (16, 32), feature_dim: int = 64, n_classes: int = 10):
        super().__init__()
        c1, c2 = (int(c) for c in channels)
        if min(c1, c2, feature_dim, n_classes) < 1:
            raise ValueError("MnistClassifier: channels, feature_dim and n_classes must be positive")
        self.config: dict[str, Any] = {"channels": [c1, c2], "feature_dim": int(feature_dim),
                                       "n_classes": int(n_classes)}
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc = nn.Linear(c2 * 7 * 7, feature_dim)
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Features ``(N, feature_dim)`` of ``(N, 1, 28, 28)`` images in ``[-1, 1]``."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"MnistClassifier takes images of shape (N, 1, 28, 28); got {tuple(x.shape)}")
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.silu(self.fc(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits."""
        return self.head(self.features(x))

    @classmethod
    def load_pretrained(cls, *, device: torch.device | str | None = None) -> MnistClassifier:
        """The shipped classifier, eval mode, frozen."""
        from safetensors.torch import load_file

        arch = mnist_classifier_metadata()["architecture"]
        model = cls(channels=tuple(arch["channels"]), feature_dim=int(arch["feature_dim"]),
                    n_classes=int(arch["n_classes"]))
        model.load_state_dict(load_file(str(_asset(MNIST_CLASSIFIER_FILE)), device="cpu"), strict=True)
        if device is not None:
            model = model.to(device)
        model.eval()
        model.requires_grad_(False)
        return model


class MnistFD:
    """Fréchet distance to a fixed set of reference digits in the MNIST-classifier feature space.

    Args:
        reference: ``(M, 1, 28, 28)`` digits in ``[-1, 1]``, ``M >= 2`` (e.g. the held-out split).
        classifier: Feature extractor (default: the shipped one).
        batch_size: Images per forward pass.
    """

    def __init__(self, reference: Tensor, *, classifier: MnistClassifier | None = None, batch_size: int = 500):
        if not isinstance(reference, Tensor):
            raise TypeError(f"MnistFD: reference must be a tensor of digits; got {type(reference).__name__}")
        self.classifier = classifier if classifier is not None else MnistClassifier.load_pretrained()
        self.batch_size = int(batch_size)
        self.n_reference = int(reference.shape[0])
        if self.n_reference < 2:
            raise ValueError("MnistFD: the reference needs at least 2 images")
        self.reference_moments: GaussianMoments = self.moments(reference)

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        """Features of ``x`` (float64)."""
        x = x.detach().float().cpu().clamp(-1.0, 1.0)
        return torch.cat([self.classifier.features(b) for b in x.split(self.batch_size)]).double()

    def moments(self, x: Tensor) -> GaussianMoments:
        """Gaussian fit of the features of ``x``."""
        return gaussian_moments(self.features(x))

    def score(self, samples: Tensor) -> float:
        """FD ``‖μ_s − μ_r‖² + tr(Σ_s + Σ_r − 2(Σ_s^{1/2} Σ_r Σ_s^{1/2})^{1/2})`` of ``samples`` to the reference."""
        m, r = self.moments(samples), self.reference_moments
        return float(frechet_distance(m.mean, m.cov, r.mean, r.cov))
