"""Worker of test_ddp.py (under torchrun): train a tiny run with the DDP engine, report hashes per rank."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    torch.set_num_threads(1)
    from genlab.training import Trainer, load_config

    config, run_dir, report_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    trainer = Trainer(load_config(config, overrides=sys.argv[4:]), run_dir)
    first = {"batch": trainer.batches.indices(0).tolist()}
    result = trainer.fit()
    rank = trainer.engine.rank
    report = {
        "rank": rank,
        "world_size": trainer.engine.world_size,
        "engine": type(trainer.engine).__name__,
        "params": _digest(trainer.net.parameters()),
        "ema": _digest(trainer.ema.module.parameters()),
        "first_batch": first["batch"],
        "noise": _digest([torch.rand(4, generator=trainer.generator)]),
        "step": result.step,
        "checkpoint": None if result.checkpoint is None else str(result.checkpoint),
    }
    (report_dir / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
