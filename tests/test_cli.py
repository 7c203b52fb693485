"""The command line: train → sample → eval round trip on moons, config commands, errors, the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from genlab.cli import SUBCOMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "moons_tiny.yaml")


def test_train_sample_eval_round_trip(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "genlab",
            "train",
            TINY,
            "--set",
            "train.steps=50",
            "--set",
            "train.ckpt_every=25",
            "--out",
            str(run),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["step"] == 50 and Path(summary["checkpoint"]).name == "ckpt_00000050.pt"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "metrics.jsonl"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "ckpt_00000025.pt",
        "ckpt_00000050.pt",
        "latest",
    ]
    assert "steps: 50" in (run / "config.yaml").read_text() and "dim: 2" in (run / "config.yaml").read_text()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [25, 50]

    assert (
        main(
            [
                "sample",
                "--run",
                str(run),
                "--sampler",
                "heun",
                "--steps",
                "4",
                "--n",
                "100",
                "--seed",
                "3",
                "--out",
                str(tmp_path / "s.png"),
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["nfe"] == 8  # Heun: 2 evaluations per step, counted by the sampler
    dump = torch.load(tmp_path / "s.pt", weights_only=True)
    assert dump["x"].shape == (100, 2) and dump["sampler"] == "heun" and dump["step"] == 50
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert (
        main(
            [
                "sample",
                "--run",
                str(run),
                "--sampler",
                "heun",
                "--steps",
                "4",
                "--n",
                "100",
                "--seed",
                "3",
                "--out",
                str(tmp_path / "again.pt"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert torch.equal(torch.load(tmp_path / "again.pt", weights_only=True)["x"], dump["x"])  # seeded

    assert main(["eval", "--run", str(run), "--n", "200", "--metrics", "sw,mmd,val_loss"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert set(ev["metrics"]) == {"sw", "sw_ref", "mmd", "mmd_ref", "val_loss"}
    assert json.loads((run / "eval.json").read_text())["metrics"] == ev["metrics"]

    # resume with more steps, config taken from the run folder
    assert main(["train", "--resume", "--out", str(run), "--set", "train.steps=60"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 60


def test_config_commands_and_errors(tmp_path, capsys) -> None:
    assert main(["config", "show", TINY, "--set", "train.lr=1e-4"]) == 0
    shown = capsys.readouterr().out
    assert "lr: 0.0001" in shown and "name: moons_tiny" in shown
    assert main(["config", "validate", TINY]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["config", "validate", TINY, "--set", "train.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'train.lrr'" in err and "'lr'" in err
    assert main(["train", TINY, "--set", "train.steps=oops", "--out", str(tmp_path / "x")]) == 2
    assert "train.steps: expected an integer, got 'oops'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["train"]) == 2 and "give a CONFIG" in capsys.readouterr().err
    assert main(["eval", "--run", str(tmp_path / "nothing")]) == 2


def test_parser_lists_every_command() -> None:
    names = set(build_parser()._subparsers._group_actions[0].choices)
    assert {"demo", "train", "sample", "eval", "config", "list", "bench"} <= names
    assert len(SUBCOMMANDS) == len(names)


def test_training_demo_writes_picture_and_summary(tmp_path, capsys) -> None:
    assert (
        main(["demo", "--out", str(tmp_path / "demo"), "--train-steps", "30", "--n", "200", "--nfe", "6"])
        == 0
    )
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["train_steps"] == 30 and (tmp_path / "demo" / "samples.png").stat().st_size > 1000
    rows = {r["sampler"]: r for r in summary["rows"]}
    assert {"heun", "euler"} <= set(rows) and len(rows) == 3
    assert all(r["nfe"] <= 6 and r["sw"] > 0 for r in rows.values())
    assert "data floor" in capsys.readouterr().out
