"""The TensorBoard tracker writes events TensorBoard reads back (scalars, the sample picture, the config)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import genlab
from genlab.training.tracking import MultiTracker, TensorBoardTracker, make_tracker


def _read(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tracker_writes_readable_scalars_and_images(tmp_path: Path) -> None:
    from PIL import Image

    pic = tmp_path / "p.png"
    Image.new("RGB", (6, 4), (255, 0, 0)).save(pic)
    tracker = make_tracker(tmp_path, is_main=True, jsonl=True, tensorboard=True, config={"name": "x"})
    assert isinstance(tracker, MultiTracker)
    tracker.log({"loss": 0.5, "lr": 1e-3, "note": "text is skipped"}, 1)
    tracker.log({"loss": 0.25}, 2)
    tracker.log_image("samples", pic, 2)
    tracker.finish()
    acc = _read(tmp_path / "tensorboard")
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 0.5), (2, 0.25)]
    assert "note" not in acc.Tags()["scalars"]
    (image,) = acc.Images("samples")
    assert (image.width, image.height) == (6, 4)
    assert not isinstance(make_tracker(tmp_path, is_main=False, tensorboard=True), TensorBoardTracker)


def test_training_run_logs_to_tensorboard(tmp_path: Path) -> None:
    run = tmp_path / "run"
    genlab.train(
        "configs/moons_tiny.yaml",
        out=run,
        overrides=["train.steps=4", "train.log_every=2", "train.ckpt_every=4", "logging.tensorboard=true"],
    )
    acc = _read(run / "tensorboard")
    assert [e.step for e in acc.Scalars("loss")] == [2, 4]
