"""The trained digits priors of ``bench_inverse_digits.py``: a pixel VP prior (training stack) and a latent prior
(autoencoder + VP prior on its codes, explicit training loop), cached under ``out/inverse_digits``.

* Pixel prior: ``configs/inverse_digits_prior.yaml`` trained with :func:`genlab.training.train`; loaded back with
  :func:`genlab.training.load_run` (EMA weights).
* Latent prior: ``experiments/configs/latent_digits_autoencoder.yaml``. The training stack reads datasets by name and has no
  latent datasets, so the autoencoder (reconstruction loss) and the diffusion prior on its standardised codes
  (:meth:`genlab.interpolants.Interpolant.loss` with ε-targets, AdamW, EMA from :class:`genlab.training.EMA`) are
  trained here with a short explicit loop. Weights are saved with ``torch.save`` (state dicts only) and reloaded
  with ``weights_only=True``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from genlab.data import get_split
from genlab.interpolants import build_interpolant
from genlab.inverse import DiffusionPrior, LatentPrior
from genlab.models import AutoEncoder, Field, build_network
from genlab.training import EMA, load_run, train
from genlab.utils import atomic_write

__all__ = ["DigitsData", "LatentBundle", "load_latent_prior", "load_pixel_prior"]

ROOT = Path(__file__).resolve().parents[1]
_LATENT_KEYS = {"name", "data", "autoencoder", "autoencoder_train", "prior"}


@dataclass
class DigitsData:
    """The digits split shared by both priors (``(N, 1, 8, 8)`` images in [-1, 1])."""

    train: Tensor
    test: Tensor


@dataclass
class LatentBundle:
    """A trained latent prior and how it was made."""

    prior: LatentPrior
    info: dict[str, Any]


def _images(split_part) -> Tensor:
    return torch.stack([split_part[i] if isinstance(split_part[i], Tensor) else split_part[i][0]
                        for i in range(len(split_part))]).float()


def digits_data(size: int = 8, test_fraction: float = 0.1, split_seed: int = 0) -> DigitsData:
    """The digits train/test split used by both configs."""
    split = get_split("digits", size=size, labels=False, test_fraction=test_fraction, split_seed=split_seed)
    return DigitsData(train=_images(split.train), test=_images(split.test))


def load_pixel_prior(cache: Path, *, retrain: bool = False, steps: int | None = None) -> tuple[DiffusionPrior, dict]:
    """Train (if needed) and load the pixel prior of ``configs/inverse_digits_prior.yaml``."""
    run_dir = cache / "pixel_prior"
    info: dict[str, Any] = {"config": "configs/inverse_digits_prior.yaml"}
    if retrain or not (run_dir / "checkpoints").is_dir() or not any((run_dir / "checkpoints").iterdir()):
        start = time.perf_counter()
        overrides = [f"train.steps={steps}"] if steps is not None else []
        train(ROOT / "configs" / "inverse_digits_prior.yaml", out=run_dir, overrides=overrides)
        info["train_time"] = time.perf_counter() - start
    run = load_run(run_dir)
    info["step"] = run.step
    return DiffusionPrior(run.field, name=f"digits VP prior (step {run.step})"), info


def _load_latent_config(path: Path) -> dict[str, Any]:
    cfg = yaml.safe_load(path.read_text())
    unknown = set(cfg) - _LATENT_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_LATENT_KEYS)}")
    return cfg


def _train_autoencoder(cfg: dict, images: Tensor) -> tuple[AutoEncoder, list[float]]:
    tc = cfg["autoencoder_train"]
    torch.manual_seed(int(tc.get("seed", 0)))
    ae = AutoEncoder(1, **cfg["autoencoder"])
    opt = torch.optim.AdamW(ae.parameters(), lr=float(tc["lr"]))
    gen = torch.Generator().manual_seed(int(tc.get("seed", 0)))
    steps, bs = int(tc["steps"]), int(tc["batch_size"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, images.shape[0], (bs,), generator=gen)
        loss = ae.reconstruction_loss(images[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return ae.eval().requires_grad_(False), losses


def _train_latent_prior(cfg: dict, codes: Tensor) -> tuple[torch.nn.Module, list[float]]:
    pc = cfg["prior"]
    tc = pc["train"]
    interp = build_interpolant(pc["interpolant"]["name"], **{k: v for k, v in pc["interpolant"].items() if k != "name"})
    mc = dict(pc["model"])
    kind = mc.pop("kind")
    torch.manual_seed(int(tc.get("seed", 0)))
    net = build_network(mc.pop("name"), sample_size=codes.shape[-1], in_channels=codes.shape[1],
                        out_channels=codes.shape[1], **mc)
    ema = EMA(net, decay=float(tc["ema_decay"]))
    opt = torch.optim.AdamW(net.parameters(), lr=float(tc["lr"]))
    steps, bs, eps = int(tc["steps"]), int(tc["batch_size"]), float(tc.get("t_eps", 1e-3))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(int(tc.get("seed", 0)))
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, codes.shape[0], (bs,), generator=gen)
        t = eps + (1 - 2 * eps) * torch.rand(bs, generator=gen, dtype=torch.float64)
        sample = interp.sample(None, codes[idx], t, generator=gen)
        loss = interp.loss(net(sample.x_t, sample.t.float()), sample, kind)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update(net)
        losses.append(float(loss.detach()))
    return ema.module, losses


def load_latent_prior(cache: Path, data: DigitsData, *, retrain: bool = False) -> LatentBundle:
    """Train (if needed) and load the latent prior of ``experiments/configs/latent_digits_autoencoder.yaml``."""
    cfg_path = ROOT / "experiments" / "configs" / "latent_digits_autoencoder.yaml"
    cfg = _load_latent_config(cfg_path)
    folder = cache / "latent_prior"
    weights = folder / "weights.pt"
    pc = cfg["prior"]
    interp = build_interpolant(pc["interpolant"]["name"], **{k: v for k, v in pc["interpolant"].items() if k != "name"})
    info: dict[str, Any] = {"config": "experiments/configs/latent_digits_autoencoder.yaml"}
    if retrain or not weights.is_file():
        start = time.perf_counter()
        ae, ae_losses = _train_autoencoder(cfg, data.train)
        with torch.no_grad():
            raw = ae.encode(data.train)
        shift, scale = float(raw.mean()), float(raw.std())
        net, prior_losses = _train_latent_prior(cfg, (raw - shift) / scale)
        state = {"autoencoder": ae.state_dict(), "prior": net.state_dict(), "shift": shift, "scale": scale,
                 "latent_shape": list(raw.shape[1:])}
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(weights, "wb") as fh:
            torch.save(state, fh)
        info.update({"train_time": time.perf_counter() - start, "ae_final_loss": sum(ae_losses[-50:]) / 50,
                     "prior_final_loss": sum(prior_losses[-50:]) / 50})
        with atomic_write(folder / "train_info.json", "w") as fh:
            fh.write(json.dumps(info, indent=1))
    state = torch.load(weights, weights_only=True)
    ae = AutoEncoder(1, **cfg["autoencoder"])
    ae.load_state_dict(state["autoencoder"])
    ae.eval().requires_grad_(False)
    mc = dict(pc["model"])
    kind = mc.pop("kind")
    c, h, _ = state["latent_shape"]
    net = build_network(mc.pop("name"), sample_size=h, in_channels=c, out_channels=c, **mc)
    net.load_state_dict(state["prior"])
    net.eval().requires_grad_(False)
    prior = LatentPrior(Field(net, interp, kind), ae, scale=state["scale"], shift=state["shift"],
                        name="digits latent VP prior (AE 8x8 -> 4x4x2)")
    with torch.no_grad():
        rec = ae(data.test)
    info["ae_test_mse"] = float((rec - data.test).pow(2).mean())
    info["latent_scale"], info["latent_shift"] = state["scale"], state["shift"]
    return LatentBundle(prior=prior, info=info)
