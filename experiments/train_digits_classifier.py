"""Train the digits classifier whose features define the digits FD (``genlab.metrics.digits``).

Trains :class:`genlab.metrics.DigitsClassifier` on the deterministic digits **training** split
(``get_split("digits", split_seed=0, test_fraction=0.2)``: 1438 images in ``[-1, 1]``, shape ``(N, 1, 8, 8)``)
with Adam and random ±1-pixel shifts (background −1 filled in), then measures its accuracy on the held-out
**test** split (359 images) and writes, atomically:

* ``genlab/assets/digits_classifier.safetensors``: the weights (float32, ``safetensors`` format);
* ``genlab/assets/digits_classifier.json``: test/train accuracy, split seed and fraction, architecture,
  feature dimension, training hyper-parameters, date, torch version and the command line.

CPU only, single thread, fixed seed, well under two minutes::

    python experiments/train_digits_classifier.py            # writes into genlab/assets
    python experiments/train_digits_classifier.py --out /tmp/clf --epochs 5
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

from genlab.data import get_split
from genlab.metrics.digits import (
    DIGITS_CLASSIFIER_FILE,
    DIGITS_METADATA_FILE,
    DigitsClassifier,
    classifier_accuracy,
)
from genlab.utils import atomic_write

ASSETS = Path(__file__).resolve().parents[1] / "genlab" / "assets"


def random_shift(x: Tensor, *, max_shift: int, generator: torch.Generator) -> Tensor:
    """Shift each image by an integer offset in ``[-max_shift, max_shift]²``, filling with background −1."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    return torch.stack(
        [padded[i, :, int(r) : int(r) + h, int(c) : int(c) + w] for i, (r, c) in enumerate(offsets)]
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ASSETS, help="output folder (default: genlab/assets)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--max-shift", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()

    split = get_split("digits", split_seed=args.split_seed, test_fraction=args.test_fraction)
    x_train, y_train = split.train.tensors
    x_test, y_test = split.test.tensors

    model = DigitsClassifier(channels=(16, 32), feature_dim=64, n_classes=10)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = -(-x_train.shape[0] // args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(x_train.shape[0], generator=gen)
        total = 0.0
        for idx in perm.split(args.batch_size):
            xb = random_shift(x_train[idx], max_shift=args.max_shift, generator=gen)
            loss = F.cross_entropy(model(xb), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * idx.numel()
        if (epoch + 1) % 10 == 0 or epoch + 1 == args.epochs:
            model.eval()
            acc = classifier_accuracy(x_test, y_test, classifier=model)
            print(
                f"epoch {epoch + 1:3d}  loss {total / x_train.shape[0]:.4f}  test acc {acc:.4f}", flush=True
            )

    model.eval()
    test_acc = classifier_accuracy(x_test, y_test, classifier=model)
    train_acc = classifier_accuracy(x_train, y_train, classifier=model)
    wall = time.perf_counter() - start

    from safetensors.torch import save

    state = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    blob = save(state, metadata={"format": "pt", "model": "genlab.metrics.DigitsClassifier"})
    meta = {
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
        "n_train": int(x_train.shape[0]),
        "n_test": int(x_test.shape[0]),
        "dataset": "digits",
        "split_seed": args.split_seed,
        "test_fraction": args.test_fraction,
        "architecture": model.config,
        "architecture_description": (
            "conv3x3(1->16)-ReLU-conv3x3(16->32)-ReLU-maxpool2-linear(512->64)-SiLU [features]-linear(64->10)"
        ),
        "feature_dim": model.feature_dim,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "training": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": "AdamW",
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "lr_schedule": "cosine",
            "augmentation": f"random integer shift in [-{args.max_shift}, {args.max_shift}]^2, fill -1",
            "seed": args.seed,
            "num_threads": 1,
            "wall_time_s": round(wall, 2),
        },
        "torch_version": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "command": " ".join(
            ["python", "experiments/train_digits_classifier.py", *(sys.argv[1:] if argv is None else argv)]
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out / DIGITS_CLASSIFIER_FILE, "wb") as f:
        f.write(blob)
    with atomic_write(args.out / DIGITS_METADATA_FILE, "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    for name in (DIGITS_CLASSIFIER_FILE, DIGITS_METADATA_FILE):
        os.chmod(args.out / name, 0o644)  # package data: world-readable (the temp file was 0600)
    print(
        f"test accuracy {test_acc:.4f}  train accuracy {train_acc:.4f}  "
        f"({len(blob) / 1024:.1f} KiB, {wall:.1f} s) -> {args.out}"
    )
    return meta


if __name__ == "__main__":
    main()
