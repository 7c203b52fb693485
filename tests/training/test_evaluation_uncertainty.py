"""`genlab eval` / `evaluate`: every sample-set metric over several seeds, against a multi-draw floor, with a verdict."""

from __future__ import annotations

import json

import pytest
import torch

from genlab.cli import main
from genlab.data.toys import toy
from genlab.training import evaluate, train
from genlab.training.evaluation import (
    HIGHER_IS_BETTER,
    SET_METRICS,
    data_floors,
    format_reports,
    metric_reports,
    overall_verdict,
    set_metric,
)


def test_metric_reports_blurred_model_is_flagged_by_precision() -> None:
    train_x = toy("moons", 6000, generator=torch.Generator().manual_seed(1))
    held_out = toy("moons", 400, generator=torch.Generator().manual_seed(2))
    good = [toy("moons", 400, generator=torch.Generator().manual_seed(10 + s)) for s in range(3)]
    blurred = [x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(20 + i))
               for i, x in enumerate(good)]
    names = ["sw", "precision", "recall"]
    floors = data_floors(names, train_x, held_out, n=400, draws=5)
    ok = metric_reports(good, train_x, held_out, names, floors=floors)
    bad = metric_reports(blurred, train_x, held_out, names, floors=floors)
    assert all(r.verdict.within_noise for r in ok.values()), {k: r.verdict.text for k, r in ok.items()}
    assert overall_verdict(ok).startswith("within noise of the data")
    assert bad["precision"].verdict.text.startswith("worse")
    assert "precision" in overall_verdict(bad)
    table = format_reports(bad)
    assert "precision ↑" in table and "sw ↓" in table and "±" in table
    # the floor entries are shared, not recomputed
    assert ok["sw"].floor is floors["sw"]


def test_set_metric_names_and_directions() -> None:
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    for name in SET_METRICS:
        if name == "fd":
            with pytest.raises(ValueError, match="8x8"):
                set_metric(name, x, x)
            continue
        assert isinstance(set_metric(name, x, x), float)
    with pytest.raises(ValueError, match="unknown sample-set metric"):
        set_metric("nope", x, x)
    assert HIGHER_IS_BETTER <= set(SET_METRICS)


def test_digits_fd_metric_has_a_floor() -> None:
    from genlab.data import get_dataset
    from genlab.training.sampling import reference_data

    images = reference_data(get_dataset("digits"))
    floors = data_floors(["fd"], images[:1200], images[1200:1500], n=300, draws=3)
    assert floors["fd"].n == 3 and floors["fd"].mean > 0
    noisy = [images[1500:1800] + 0.6 * torch.randn(images[1500:1800].shape, generator=torch.Generator().manual_seed(s))
             for s in range(2)]
    rep = metric_reports([x.clamp(-1, 1) for x in noisy], images[:1200], images[1200:1500], ["fd"], floors=floors)
    assert rep["fd"].verdict.text.startswith("worse")


def test_evaluate_reports_intervals_and_cli_prints_the_table(tmp_path, tiny, capsys) -> None:
    run = tmp_path / "run"
    train(tiny(), out=run)
    res = evaluate(run, metrics=["sw", "precision", "c2st"], seeds=2)
    assert res.seeds == [0, 1]
    assert set(res.reports) == {"sw", "precision", "c2st"}
    assert res.reports["sw"].model.n == 2 and res.reports["sw"].floor.n == 5
    assert res.metrics["sw"] == pytest.approx(res.reports["sw"].model.mean)
    assert res.verdict
    saved = json.loads((run / "eval.json").read_text())
    assert saved["reports"]["sw"]["floor"]["n"] == 5 and "verdict" in saved["reports"]["sw"]
    assert main(["eval", "--run", str(run), "--metrics", "sw,recall", "--seeds", "2"]) == 0
    captured = capsys.readouterr()
    assert "data floor" in captured.err and "verdict:" in captured.err
    assert json.loads(captured.out)["seeds"] == [0, 1]
    assert main(["eval", "--run", str(run), "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_paired_metrics_are_estimated_over_seeds(tmp_path) -> None:
    """A conditional path (digits inpainting) reports mse/psnr against its exact paired targets over the seeds."""
    from pathlib import Path

    cfg = Path(__file__).resolve().parents[2] / "configs" / "digits_inpainting.yaml"
    overrides = ["train.steps=2", "train.batch_size=16", "train.sample_every=0", "train.eval_every=0",
                 "train.device=cpu", "logging.progress=false", "logging.stdout=false",
                 "model.block_out_channels=[8, 16]", "sample.steps=2"]
    train(cfg, out=tmp_path / "run", overrides=overrides)
    res = evaluate(tmp_path / "run", n=16, metrics=["mse", "psnr"], seeds=2)
    assert set(res.paired) == {"mse", "psnr"} and res.paired["mse"].n == 2
    assert res.metrics["mse"] == pytest.approx(res.paired["mse"].mean)
    assert res.paired["mse"].low <= res.paired["mse"].mean <= res.paired["mse"].high
    assert "vs the paired targets" in res.table()
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["paired"]["psnr"]["n"] == 2
