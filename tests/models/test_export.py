"""Export: diffusers folder (UNet2DModel + scheduler) and genlab-native Field.save_pretrained/from_pretrained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import genlab
from genlab.interpolants import build_interpolant
from genlab.models import Field
from genlab.models.diffusers_export import diffusers_time_fold, export_diffusers
from genlab.models.mlp import TimeMLP
from genlab.models.unet import UNet
from genlab.samplers.adapters import load_diffusers_field

diffusers = pytest.importorskip("diffusers")
ROOT = Path(__file__).resolve().parents[2]


def _unet_field(kind: str = "noise", interp: str = "vp", **ikw) -> Field:
    torch.manual_seed(0)
    net = UNet(8, 1, 1, block_out_channels=(32, 64))
    with torch.no_grad():  # away from the (near-zero) initialisation so every weight matters
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return Field(net.eval(), build_interpolant(interp, **(ikw or {"kind": "cosine"})), kind)


def test_time_fold_is_the_reflection_of_the_sinusoidal_embedding() -> None:
    from diffusers.models.embeddings import Timesteps, get_timestep_embedding

    for flip, shift in ((True, 0.0), (False, 1.0)):
        proj = Timesteps(32, flip_sin_to_cos=flip, downscale_freq_shift=shift)
        n = torch.tensor([0.0, 3.5, 417.0, 998.0], dtype=torch.float64)
        m = diffusers_time_fold(proj, 999.0)
        emb = get_timestep_embedding(n, 32, flip_sin_to_cos=flip, downscale_freq_shift=shift)
        want = get_timestep_embedding(999.0 - n, 32, flip_sin_to_cos=flip, downscale_freq_shift=shift)
        # diffusers computes in float32 (arguments up to 999 rad: ~1e-4 rounding); a wrong frequency or sign is O(1)
        assert torch.allclose(emb.double() @ m.T, want.double(), atol=5e-4)


def test_export_reads_back_to_the_same_field_and_ddim_equals_genlab(tmp_path: Path) -> None:
    field = _unet_field()
    out = export_diffusers(field, tmp_path / "export")
    # genlab's own loader: same network outputs at any t (fractional diffusers timesteps too)
    back = load_diffusers_field(out)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.013, 0.3, 0.5004, 0.97])
    with torch.no_grad():
        assert torch.allclose(back(x, t), field(x, t), atol=2e-5)
    # its schedule is genlab's at the integer timesteps: alpha_bar_n = beta(t_n)^2, t_n = 1 - (n + 1)/T
    tn = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    assert torch.allclose(back.interpolant.schedule.coeffs(tn).beta, field.interpolant.schedule.coeffs(tn).beta,
                          rtol=1e-5)
    # diffusers alone: UNet2DModel + DDIMScheduler from the folder, the canonical loop
    unet = diffusers.UNet2DModel.from_pretrained(str(out), subfolder="unet")
    sched = diffusers.DDIMScheduler.from_pretrained(str(out), subfolder="scheduler")
    sched.set_timesteps(10)
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    x = noise.clone()
    with torch.no_grad():
        for k in sched.timesteps:
            x = sched.step(unet(x, k).sample, k, x).prev_sample
    # genlab's DDIM on the original field, on the same noise and the same times (last step to t = 1)
    grid = torch.tensor([1 - (int(k) + 1) / 1000 for k in sched.timesteps] + [1.0], dtype=torch.float64)
    ours = genlab.sample(field, "ddim", grid=grid, steps=None, x_init=noise.clone())
    assert ours.nfe == 10
    assert torch.allclose(ours.x, x, atol=1e-4 * max(1.0, float(x.abs().max())))
    meta = json.loads((out / "genlab_export.json").read_text())
    assert meta["prediction_type"] == "epsilon" and meta["capped_timesteps"] == 1  # cosine: beta(0) = 0
    assert json.loads((out / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"


def test_export_refuses_what_diffusers_cannot_express(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kinds"):
        export_diffusers(_unet_field("velocity"), tmp_path / "a")
    with pytest.raises(ValueError, match="variance-preserving"):
        export_diffusers(_unet_field("x1", "rectified_flow", source="gaussian"), tmp_path / "b")
    mlp = Field(TimeMLP(dim=2), build_interpolant("vp"), "noise")
    with pytest.raises(TypeError, match="UNet"):
        export_diffusers(mlp, tmp_path / "c")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("")
    with pytest.raises(ValueError, match="not empty"):
        export_diffusers(_unet_field(), tmp_path / "d")


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ({"name": "stochastic", "path": "trig", "gamma": "zero"}, "velocity"),
        ({"name": "vp", "kind": "linear"}, "noise"),
        ({"name": "brownian_bridge", "sigma": 0.5, "conditional_source": True}, "velocity"),
    ],
)
def test_save_pretrained_round_trip(tmp_path: Path, spec: dict, kind: str) -> None:
    torch.manual_seed(0)
    interp = build_interpolant(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
    cond_dim = 2 if interp.conditional_source else 0
    field = Field(TimeMLP(dim=2, cond_dim=cond_dim), interp, kind)
    field.save_pretrained(tmp_path / "f", interpolant_spec=spec, metadata={"step": 3})
    back = Field.from_pretrained(tmp_path / "f")
    assert back.kind == kind and back.interpolant.spec == spec
    x, t = torch.randn(5, 2), torch.rand(5)
    cond = torch.randn(5, 2) if cond_dim else None
    with torch.no_grad():
        assert torch.equal(back(x, t, cond), field(x, t, cond))
        assert torch.allclose(back.predict(x, t, "x1", cond), field.predict(x, t, "x1", cond))


def test_save_pretrained_refuses_a_wrong_spec(tmp_path: Path) -> None:
    field = Field(TimeMLP(dim=2), build_interpolant("vp", kind="cosine"), "noise")
    with pytest.raises(ValueError, match="does not describe"):
        field.save_pretrained(tmp_path / "f", interpolant_spec={"name": "vp", "kind": "linear"})
    with pytest.raises(TypeError, match="interpolant_spec"):
        field.save_pretrained(tmp_path / "g")
    assert not (tmp_path / "f" / "model.safetensors").exists()


def test_cli_export_of_a_trained_vp_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from genlab.cli import main
    from genlab.training import load_run

    run = tmp_path / "run"
    args = ["train", str(ROOT / "configs" / "digits_vp.yaml"), "--out", str(run), "--set", "train.steps=2",
            "--set", "train.batch_size=8", "--set", "logging.progress=false", "--set", "train.ckpt_every=2"]
    assert main(args) == 0, capsys.readouterr().err
    assert main(["export", "--run", str(run), "--format", "diffusers", str(tmp_path / "dif")]) == 0
    assert main(["export", "--run", str(run), "--format", "genlab", str(tmp_path / "gl")]) == 0
    field = load_run(run).field
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([0.2, 0.7])
    with torch.no_grad():
        # the exported U-Net is the raw network; the run's x1_range travels as the scheduler's clip_sample
        raw = Field(field.net, field.interpolant, field.kind)
        assert torch.allclose(load_diffusers_field(tmp_path / "dif")(x, t), raw(x, t), atol=2e-5)
        assert json.loads((tmp_path / "dif" / "scheduler" / "scheduler_config.json").read_text())["clip_sample"]
        assert torch.equal(Field.from_pretrained(tmp_path / "gl")(x, t), field(x, t))
    assert main(["export", "--run", str(run), str(tmp_path / "dif")]) == 2
    assert "not empty" in capsys.readouterr().err
