"""DDP on CPU: two torchrun processes (gloo) stay in sync, see different data, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from genlab.training import load_checkpoint

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_stay_in_sync(tmp_path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(HERE / "ddp_worker.py"),
        str(ROOT / "configs" / "moons_tiny.yaml"),
        str(run),
        str(reports),
        "train.steps=12",
        "train.batch_size=32",
        "train.log_every=4",
        "train.ckpt_every=6",
        "train.device=cpu",
        "logging.progress=false",
        "logging.stdout=false",
    ]
    proc = subprocess.run(
        cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (json.loads((reports / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["engine"] == r1["engine"] == "DDPEngine" and r0["world_size"] == 2
    # gradients are all-reduced, so the replicas stay identical although their data and noise differ
    assert r0["params"] == r1["params"] and r0["ema"] == r1["ema"]
    assert set(r0["first_batch"]).isdisjoint(r1["first_batch"])  # DistributedSampler shards
    assert r0["noise"] != r1["noise"]  # per-rank seeds
    assert r0["checkpoint"] is not None and r1["checkpoint"] is None
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "metrics.jsonl"]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [4, 8, 12]  # one writer
    ckpt = load_checkpoint(run)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2  # every rank's random state, for resume
