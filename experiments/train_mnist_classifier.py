"""Train the MNIST classifier whose features define the MNIST FD (``genlab.metrics.mnist``).

Trains :class:`genlab.metrics.mnist.MnistClassifier` on the deterministic MNIST-5k **training** split
(``get_split("mnist5k", split_seed=0, test_fraction=0.2)``: 4,000 digits in ``[-1, 1]``, ``(N, 1, 28, 28)``)
with AdamW, a cosine schedule and random ±2-pixel shifts (background −1 filled in), measures its accuracy on the
1,000 held-out digits and writes, atomically, ``genlab/assets/mnist_classifier.safetensors`` (float32 weights)
and ``genlab/assets/mnist_classifier.json`` (accuracies, split, architecture, training, date, command).

CPU, one thread, fixed seed, about a minute::

    python experiments/train_mnist_classifier.py            # writes into genlab/assets
    python experiments/train_mnist_classifier.py --out /tmp/clf --epochs 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from train_digits_classifier import random_shift  # the same shift augmentation as the digits classifier

from genlab.data import get_split
from genlab.metrics.mnist import MNIST_CLASSIFIER_FILE, MNIST_METADATA_FILE, MnistClassifier
from genlab.utils import atomic_write

ASSETS = Path(__file__).resolve().parents[1] / "genlab" / "assets"


@torch.no_grad()
def accuracy(model: MnistClassifier, x: Tensor, y: Tensor) -> float:
    pred = torch.cat([model(b).argmax(1) for b in x.split(500)])
    return float((pred == y).double().mean())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ASSETS)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--max-shift", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    split = get_split("mnist5k", split_seed=0, test_fraction=0.2, labels=True)
    x_train, y_train = split.train.tensors
    x_test, y_test = split.test.tensors
    model = MnistClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * -(-x_train.shape[0] // args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for epoch in range(args.epochs):
        model.train()
        total = 0.0
        for idx in torch.randperm(x_train.shape[0], generator=gen).split(args.batch_size):
            loss = F.cross_entropy(model(random_shift(x_train[idx], max_shift=args.max_shift, generator=gen)),
                                   y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * idx.numel()
        model.eval()
        print(f"epoch {epoch + 1:3d}  loss {total / x_train.shape[0]:.4f}  test acc "
              f"{accuracy(model, x_test, y_test):.4f}", flush=True)
    model.eval()
    test_acc, train_acc = accuracy(model, x_test, y_test), accuracy(model, x_train, y_train)
    wall = time.perf_counter() - start
    from safetensors.torch import save

    blob = save({k: v.detach().float().contiguous() for k, v in model.state_dict().items()},
                metadata={"format": "pt", "model": "genlab.metrics.mnist.MnistClassifier"})
    meta = {
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
        "n_train": int(x_train.shape[0]),
        "n_test": int(x_test.shape[0]),
        "dataset": "mnist5k",
        "split_seed": 0,
        "test_fraction": 0.2,
        "architecture": model.config,
        "architecture_description": "conv3x3(1->16)-ReLU-maxpool2-conv3x3(16->32)-ReLU-maxpool2-linear(1568->64)-"
        "SiLU [features]-linear(64->10)",
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "optimizer": "AdamW", "lr": args.lr,
                     "weight_decay": args.weight_decay, "lr_schedule": "cosine",
                     "augmentation": f"random integer shift in [-{args.max_shift}, {args.max_shift}]^2, fill -1",
                     "seed": args.seed, "num_threads": 1, "wall_time_s": round(wall, 2)},
        "torch_version": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python", "experiments/train_mnist_classifier.py",
                             *(sys.argv[1:] if argv is None else argv)]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out / MNIST_CLASSIFIER_FILE, "wb") as f:
        f.write(blob)
    with atomic_write(args.out / MNIST_METADATA_FILE, "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    for name in (MNIST_CLASSIFIER_FILE, MNIST_METADATA_FILE):
        os.chmod(args.out / name, 0o644)
    print(f"test accuracy {test_acc:.4f}  train accuracy {train_acc:.4f}  ({wall:.1f} s) -> {args.out}")
    return meta


if __name__ == "__main__":
    main()
