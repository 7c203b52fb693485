"""Issue 16 (reliability), CLI half: no silent results, clear errors instead of tracebacks, and a CLI that
reaches what the API can. Each test failed before the fix it guards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import genlab
from genlab.cli import LIST_TOPICS, build_parser, main, parse_options
from genlab.training import check_components, evaluate, load_config, sample_run, train

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "moons_tiny.yaml")
FAST = ["train.steps=6", "train.ckpt_every=3", "train.log_every=3", "eval.n=64", "sample.n=64"]
SETS = [arg for o in FAST for arg in ("--set", o)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 6-step moons run (shared, read-only for the tests below)."""
    out = tmp_path_factory.mktemp("cli_rel") / "run"
    train(TINY, out=out, overrides=FAST)
    return out


# ------------------------------------------------------------------------------------------- silent results
@pytest.mark.parametrize("metrics", ["foo", "foo,sw", "sw,,typo", ","])
def test_eval_unknown_metric_is_an_error_and_writes_nothing(run_dir, capsys, metrics) -> None:
    marker = '{"kept": true}'
    (run_dir / "eval.json").write_text(marker)
    assert main(["eval", "--run", str(run_dir), "--n", "32", "--metrics", metrics]) == 2
    err = capsys.readouterr().err
    assert "--metrics" in err and "'sw'" in err and "val_loss" in err  # names the allowed ones
    assert (run_dir / "eval.json").read_text() == marker


def test_evaluate_accepts_a_string_and_rejects_unknown_names(run_dir) -> None:
    one = evaluate(run_dir, n=32, metrics="sw", write=False)
    assert set(one.metrics) == {"sw", "sw_ref"}
    two = evaluate(run_dir, n=32, metrics="sw, mmd", write=False)
    assert set(two.metrics) == {"sw", "sw_ref", "mmd", "mmd_ref"}
    assert two.metrics["sw"] == one.metrics["sw"]
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['foo'\]; allowed"):
        evaluate(run_dir, metrics=["sw", "foo"])
    with pytest.raises(TypeError, match="metrics"):
        evaluate(run_dir, metrics=3)  # type: ignore[arg-type]


def test_sample_never_replaces_files_it_was_not_told_to(run_dir, tmp_path, capsys) -> None:
    png, pt = tmp_path / "x.png", tmp_path / "x.pt"
    png.write_bytes(b"user picture")
    args = ["sample", "--run", str(run_dir), "--steps", "2", "--n", "16", "--out", str(png)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "x.png" in err
    assert png.read_bytes() == b"user picture" and not pt.exists()
    # a .pt the user did not name is protected too
    png.unlink()
    pt.write_bytes(b"user tensors")
    assert main(args) == 2 and "x.pt" in capsys.readouterr().err
    assert pt.read_bytes() == b"user tensors" and not png.exists()
    # --overwrite replaces both and names every file written
    assert main([*args, "--overwrite"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(Path(f).name for f in out["files"]) == ["x.png", "x.pt"]
    assert torch.load(pt, weights_only=True)["x"].shape == (16, 2)


def test_sample_run_api_refuses_existing_outputs(run_dir, tmp_path) -> None:
    target = tmp_path / "s.pt"
    target.write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        sample_run(run_dir, steps=2, n=8, out=target)
    assert target.read_bytes() == b"keep"
    res = sample_run(run_dir, steps=2, n=8, out=target, overwrite=True)
    assert res.files == [target] and torch.load(target, weights_only=True)["x"].shape == (8, 2)


def test_train_refuses_a_folder_with_an_earlier_runs_files(tmp_path, capsys) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "config.yaml").write_text("name: earlier\n")
    (folder / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    assert main(["train", TINY, "--out", str(folder), *SETS]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "config.yaml" in err
    assert (folder / "config.yaml").read_text() == "name: earlier\n"
    assert (folder / "metrics.jsonl").read_text() == '{"step": 1, "loss": 1.0}\n'
    assert main(["train", TINY, "--out", str(folder), "--overwrite", *SETS]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == 6 and str(folder / "config.yaml") in out["files"]
    assert "name: moons_tiny" in (folder / "config.yaml").read_text()


def test_resume_of_a_finished_run_says_already_complete(tmp_path, capsys) -> None:
    out_dir = tmp_path / "done"
    train(TINY, out=out_dir, overrides=FAST)
    assert main(["train", "--resume", "--out", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert "already complete" in captured.err
    summary = json.loads(captured.out)
    assert summary["status"] == "already complete" and summary["step"] == 6


# --------------------------------------------------------------------------------- clear errors, no tracebacks
@pytest.mark.parametrize("n", ["0", "-5"])
def test_sample_bad_n_is_refused_before_anything_is_written(run_dir, tmp_path, capsys, n) -> None:
    out = tmp_path / "s.png"
    assert main(["sample", "--run", str(run_dir), "--n", n, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--n must be a positive integer" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_sample_steps_and_options_are_checked(run_dir, tmp_path, capsys) -> None:
    base = ["sample", "--run", str(run_dir), "--n", "8", "--out", str(tmp_path / "a.pt")]
    assert main([*base, "--steps", "0"]) == 2 and "--steps" in capsys.readouterr().err
    assert main([*base, "--option", "nokey"]) == 2 and "key=value" in capsys.readouterr().err
    assert main([*base, "--option", "foo=1"]) == 2 and "foo" in capsys.readouterr().err
    assert main([*base, "--grid", "nosuch"]) == 2 and "unknown grid" in capsys.readouterr().err
    assert main(["sample", "--run", str(run_dir), "--out", str(tmp_path / "a.txt")]) == 2
    assert ".png" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_sample_on_missing_cuda_names_the_flag(run_dir, tmp_path, capsys) -> None:
    assert main(["sample", "--run", str(run_dir), "--device", "cuda", "--out", str(tmp_path / "a.pt")]) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "train.device" not in err
    assert main(["eval", "--run", str(run_dir), "--device", "meta"]) == 2
    assert "--device meta" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------- the CLI reaches the API
def test_sample_grid_and_sampler_options(run_dir, tmp_path, capsys) -> None:
    common = ["sample", "--run", str(run_dir), "--sampler", "heun", "--steps", "3", "--n", "16", "--seed", "1"]
    assert main([*common, "--grid", "power", "--out", str(tmp_path / "power.pt")]) == 0
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "uniform.pt")]) == 0
    capsys.readouterr()
    power = torch.load(tmp_path / "power.pt", weights_only=True)["x"]
    uniform = torch.load(tmp_path / "uniform.pt", weights_only=True)["x"]
    assert not torch.equal(power, uniform)  # the grid reached the sampler
    api = sample_run(run_dir, sampler="heun", steps=3, n=16, seed=1, grid="power")
    assert torch.equal(api.samples.x, power)
    # a sampler option reaches the constructor: DDIM with eta=1 is stochastic, eta=0 is not
    for eta in ("0.0", "1.0"):
        args = ["sample", "--run", str(run_dir), "--sampler", "ddim", "--steps", "3", "--n", "16", "--seed", "1"]
        assert main([*args, "--option", f"eta={eta}", "--out", str(tmp_path / f"ddim{eta}.pt")]) == 0
        capsys.readouterr()
    a = torch.load(tmp_path / "ddim0.0.pt", weights_only=True)["x"]
    b = torch.load(tmp_path / "ddim1.0.pt", weights_only=True)["x"]
    assert not torch.equal(a, b)


def test_parse_options() -> None:
    assert parse_options(["eta=1.0", "order=3", "preset=fast", "flag=true"]) == {
        "eta": 1.0,
        "order": 3,
        "preset": "fast",
        "flag": True,
    }
    for bad in (["eta"], ["=1"], ["a.b=1"], ["x=1", "x=2"]):
        with pytest.raises(ValueError):
            parse_options(bad)


@pytest.mark.parametrize("topic", sorted(LIST_TOPICS))
def test_list_prints_the_names(topic, capsys) -> None:
    assert main(["list", topic]) == 0
    names = capsys.readouterr().out.split()
    expected = {
        "samplers": "euler",
        "methods": "dps",
        "configs": "configs/moons_tiny.yaml",
        "datasets": "moons",
        "grids": "karras",
    }[topic]
    assert expected in names and len(names) == len(set(names))


def test_version_bench_and_help(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"genlab {genlab.__version__}"
    assert main(["bench"]) == 0
    out = capsys.readouterr().out
    assert "genlab bench SUITE" in out and "samplers" in out
    parser = build_parser()
    actions = parser._subparsers._group_actions[0].choices
    for command in ("sample", "eval", "demo"):
        opts = {a.dest: a for a in actions[command]._actions}
        assert opts["seed"].help and "seed" in opts["seed"].help
        if command != "demo":
            assert opts["device"].help and "cuda" in opts["device"].help


def test_load_diffusers_field_is_top_level() -> None:
    from genlab.samplers import load_diffusers_field

    assert genlab.load_diffusers_field is load_diffusers_field and "load_diffusers_field" in genlab.__all__


# ------------------------------------------------------------------------------------------- config checks
@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("sample.options.foo=1", "sample.options"),
        ("sample.grid=nosuch", "sample.grid"),
        ("data.foo=1", "data.foo"),
        ("sample.grid_options.foo=1", "sample.grid_options.foo"),
        ("sample.grid_options.t_end=2", "sample.grid_options"),
    ],
)
def test_config_typos_are_rejected_up_front(tmp_path, capsys, override, needle) -> None:
    assert main(["config", "validate", TINY, "--set", override]) == 2
    assert needle in capsys.readouterr().err
    out = tmp_path / "never"
    assert main(["train", TINY, "--out", str(out), "--set", override, "--set", "train.sample_every=1"]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()  # refused at start-up, before the folder is written


def test_good_sample_options_still_validate() -> None:
    check_components(load_config(TINY, overrides=["sample.sampler=ddim", "sample.options.eta=1.0"]))
    check_components(load_config(TINY, overrides=["sample.grid=power", "sample.grid_options.kappa=3"]))
    check_components(load_config(TINY, overrides=["data.noise=0.05"]))


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path, capsys) -> None:
    assert main(["config", "validate", str(path)]) == 0, capsys.readouterr().err
    check_components(load_config(path))


# ---------------------------------------------------------------------------------------------------- demo
def test_demo_never_reuses_a_run_trained_with_other_options(tmp_path, capsys) -> None:
    from genlab.demo import run_training_demo, stale_options

    out = tmp_path / "demo"
    first = run_training_demo(out, train_steps=4, nfe=4, n=64)
    assert first.train_steps == 4 and not first.reused
    again = run_training_demo(out, train_steps=4, nfe=4, n=64)
    assert again.reused and again.train_steps == 4  # same options: the finished run is re-sampled, and says so
    assert stale_options({"train": {"steps": 4}}, tmp_path / "nothing") == []
    saved = (out / "run" / "config.yaml").read_text()
    args = ["demo", "--out", str(out), "--train-steps", "5", "--n", "64", "--nfe", "4"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "train.steps: 4 -> 5" in err and "--overwrite" in err
    assert (out / "run" / "config.yaml").read_text() == saved
    assert main([*args, "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "summary.json" in printed and "checkpoints" in printed
    assert json.loads((out / "summary.json").read_text())["train_steps"] == 5
