r"""Export a genlab U-Net field on a VP path as a diffusers folder (``UNet2DModel`` + scheduler + pipeline index).

The written folder loads in diffusers with no genlab installed::

    unet = UNet2DModel.from_pretrained(OUT, subfolder="unet")
    scheduler = DDIMScheduler.from_pretrained(OUT, subfolder="scheduler")   # or DDPM/DPM-Solver++/...
    images = DDPMPipeline.from_pretrained(OUT)(num_inference_steps=50).images

and reads back into genlab with :func:`genlab.samplers.adapters.load_diffusers_field`.

**Time map (exact).** diffusers indexes noise levels by training timesteps ``n = 0 … T−1`` (``n = T−1`` most
noisy); genlab's adapter fixes ``t = 1 − (n + 1)/T`` (:class:`~genlab.interpolants.discrete.DiscreteVPSchedule`).
genlab's :class:`~genlab.models.unet.UNet` feeds its inner ``UNet2DModel`` the time ``s = t·time_scale``; with
``T = time_scale`` (1000 by default) that is ``s = T − 1 − n``, a reflection of the diffusers timestep. The
sinusoidal embedding of Ho et al. (2020, App. B; diffusers ``get_timestep_embedding``) has, per frequency ω,
features ``cos ωs, sin ωs``, and

.. math::  \cos ω(c − n) = \cos ωc \cos ωn + \sin ωc \sin ωn, \qquad \sin ω(c − n) = \sin ωc \cos ωn − \cos ωc \sin ωn,

so ``emb(c − n) = M emb(n)`` for a fixed block-rotation matrix ``M``. The export folds ``M`` into the first
linear layer of the time MLP (``W₁ ← W₁ M``, computed in float64): the exported ``UNet2DModel`` evaluated at
diffusers timestep ``n`` computes exactly what genlab's network computes at ``t = 1 − (n + 1)/T`` (up to float32
rounding of the sinusoid arguments), for fractional ``n`` too. No retraining, no approximation of the weights.

**Schedule.** The scheduler gets ``trained_betas`` with ``ᾱ_n = β(t_n)²`` (β the data coefficient of the genlab
path, float64), so its ``alphas_cumprod`` are genlab's ``β²`` at the integer timesteps (diffusers recomputes
them in float32). A path whose β(0) = 0 (the cosine VP schedule) would give ``ᾱ_{T−1} = 0``, on which diffusers
divides by zero; as diffusers' own ``squaredcos_cap_v2`` does (Nichol & Dhariwal 2021, §3.2), β_n is capped at
0.999 (``ᾱ_n ≥ 10⁻³ ᾱ_{n−1}``); only the most noisy timestep is affected.

**Prediction types.** genlab kinds ``"noise"``/``"x0"`` (ε for a Gaussian source) export as ``"epsilon"`` and
``"x1"`` as ``"sample"``. A velocity field is refused: on a VP path ``b = φ̇(t)·v`` with a time-dependent factor
that no weight change of the U-Net reproduces; use :meth:`Field.save_pretrained` for genlab-native export.

Exportable (otherwise a ValueError, or a TypeError for a network that is not a genlab UNet, names what is
missing): a genlab ``UNet`` without condition channels, whose
size needs no padding, an integer ``time_scale ≥ 2``, no preconditioning, on a Gaussian-source path with
``γ ≡ 0`` and ``α² + β² = 1`` (VP: ``vp``, ``stochastic`` with ``path: trig``, ...).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genlab.models.field import Field
from genlab.models.unet import UNet

__all__ = ["EXPORT_METADATA", "diffusers_time_fold", "export_diffusers", "vp_alphas_cumprod"]

#: genlab's provenance file inside an exported diffusers folder.
EXPORT_METADATA = "genlab_export.json"
_PREDICTION = {"noise": "epsilon", "x0": "epsilon", "x1": "sample"}
_BETA_CAP = 0.999


def vp_alphas_cumprod(field: Field, num_train_timesteps: int) -> Tensor:
    """``ᾱ_n = β(t_n)²`` at ``t_n = 1 − (n + 1)/T`` (float64), checking the path is VP; β_n capped at 0.999.

    Raises:
        ValueError: The path is not a Gaussian-source VP path (``γ ≡ 0``, ``α² + β² = 1``).
    """
    interp = field.interpolant
    if not interp.gaussian_source or interp.conditional_source or interp.schedule.has_noise:
        raise ValueError(
            f"diffusers export needs a Gaussian-source path with gamma = 0 (a diffusion/flow from noise); "
            f"{interp!r} is not one"
        )
    T = num_train_timesteps
    t = 1.0 - (torch.arange(T, dtype=torch.float64) + 1.0) / T
    c = interp.schedule.coeffs(torch.cat([t, torch.linspace(0, 1, 33, dtype=torch.float64)]))
    norm = c.alpha**2 + c.beta**2
    if not torch.allclose(norm, torch.ones_like(norm), atol=1e-6):
        worst = float((norm - 1).abs().max())
        raise ValueError(
            f"diffusers export needs a variance-preserving path (alpha^2 + beta^2 = 1; off by up to {worst:.3g} "
            f"on {interp!r}); train on a VP path (interpolant vp, or stochastic with path trig) or use "
            "Field.save_pretrained"
        )
    abar = c.beta[:T] ** 2
    out = abar.clone()
    for n in range(1, T):  # beta_n = 1 - abar_n/abar_{n-1} <= 0.999
        out[n] = max(float(abar[n]), (1.0 - _BETA_CAP) * float(out[n - 1]))
    if not bool((out[1:] < out[:-1]).all()) or float(out[0]) > 1.0 or float(out[-1]) <= 0.0:
        raise ValueError(f"beta(t)^2 of {interp!r} must increase strictly with t to export a DDPM table")
    return out


def diffusers_time_fold(time_proj: torch.nn.Module, shift: float) -> Tensor:
    """The matrix ``M`` (float64) with ``emb(shift − n) = M · emb(n)`` for diffusers' sinusoidal embedding.

    Args:
        time_proj: The ``UNet2DModel``'s ``time_proj`` (``diffusers.models.embeddings.Timesteps``).
        shift: The reflection point ``c``.
    """
    dim = int(time_proj.num_channels)
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float64) / (half - time_proj.downscale_freq_shift)
    omega = torch.exp(exponent) * float(getattr(time_proj, "scale", 1))
    cw, sw = torch.diag(torch.cos(omega * shift)), torch.diag(torch.sin(omega * shift))
    if time_proj.flip_sin_to_cos:  # layout [cos | sin]
        block = torch.cat([torch.cat([cw, sw], 1), torch.cat([sw, -cw], 1)], 0)
    else:  # layout [sin | cos]
        block = torch.cat([torch.cat([-cw, sw], 1), torch.cat([sw, cw], 1)], 0)
    m = torch.eye(dim, dtype=torch.float64)
    m[: 2 * half, : 2 * half] = block
    return m


def _check_field(field: Field) -> UNet:
    if not isinstance(field, Field):
        raise TypeError(f"export_diffusers: field must be a genlab Field; got {type(field).__name__}")
    net = field.net
    if not isinstance(net, UNet):
        raise TypeError(
            f"diffusers export needs a genlab UNet network (model.name: unet); this field's network is "
            f"{type(net).__name__}; use Field.save_pretrained for genlab-native export"
        )
    if field.kind not in _PREDICTION:
        raise ValueError(
            f"diffusers export supports kinds {sorted(_PREDICTION)} (epsilon / sample prediction); this field "
            f"predicts {field.kind!r}, whose relation to diffusers' outputs has a time-dependent factor no weight "
            "change reproduces. Train with model.kind: noise (or x1), or use Field.save_pretrained"
        )
    if field.precond is not None:
        raise ValueError("diffusers export needs a field without preconditioning (model.precond: none)")
    if net.cond_channels:
        raise ValueError(
            f"diffusers export needs an unconditional UNet; this one takes cond_channels={net.cond_channels} "
            "(bridges and coupling conditions have no diffusers UNet2DModel equivalent)"
        )
    h, w = net.sample_size
    if h % net.size_multiple or w % net.size_multiple:
        raise ValueError(
            f"diffusers export needs a sample size divisible by {net.size_multiple} (genlab pads {h}x{w} inside "
            "its wrapper, diffusers would not); train with a size that divides or fewer resolution levels"
        )
    ts = net.time_scale
    if ts != round(ts) or ts < 2:
        raise ValueError(f"diffusers export needs an integer UNet time_scale >= 2 (the number of training "
                         f"timesteps); got {ts}")
    if net.unet.config.time_embedding_type != "positional":
        raise ValueError("diffusers export needs the positional time embedding")
    return net


def export_diffusers(
    field: Field, out: str | Path, *, metadata: Mapping[str, Any] | None = None, overwrite: bool = False
) -> Path:
    """Write ``field`` as a diffusers folder: ``unet/`` (``UNet2DModel``), ``scheduler/`` (``DDPMScheduler``
    config with ``trained_betas``), ``model_index.json`` (``DDPMPipeline``) and ``genlab_export.json``.

    Args:
        field: A genlab UNet field on a VP path (see the module docstring for what is exportable).
        out: Folder to write (must not exist or be empty, unless ``overwrite``).
        metadata: Provenance stored in ``genlab_export.json`` (run folder, step, ...).
        overwrite: Replace the files of an existing export.

    Returns:
        The folder.

    Raises:
        ValueError: The field cannot be expressed exactly in diffusers (the message says why and what to do),
            or ``out`` is a non-empty folder without ``overwrite``.
    """
    import diffusers

    net = _check_field(field)
    T = round(net.time_scale)
    abar = vp_alphas_cumprod(field, T)
    t_n = 1.0 - (torch.arange(T, dtype=torch.float64) + 1.0) / T
    uncapped = field.interpolant.schedule.coeffs(t_n).beta ** 2
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} exists and is not empty; choose a new folder or pass overwrite=True (--overwrite)")
    betas = torch.empty_like(abar)
    betas[0] = 1.0 - abar[0]
    betas[1:] = 1.0 - abar[1:] / abar[:-1]

    inner = net.unet
    exported = diffusers.UNet2DModel.from_config(inner.config)
    exported.load_state_dict(inner.state_dict())
    exported = exported.to(torch.float32)
    fold = diffusers_time_fold(exported.time_proj, float(T - 1))
    lin = exported.time_embedding.linear_1
    with torch.no_grad():
        lin.weight.copy_((lin.weight.double() @ fold).to(lin.weight.dtype))
    exported.eval()
    out.mkdir(parents=True, exist_ok=True)
    exported.save_pretrained(str(out / "unet"), safe_serialization=True)

    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=T,
        trained_betas=betas.tolist(),
        prediction_type=_PREDICTION[field.kind],
        # a Field's x1_range is DDPM's clip_sample (diffusers clips symmetric ranges only)
        clip_sample=field.x1_range is not None,
        clip_sample_range=max(abs(v) for v in field.x1_range) if field.x1_range is not None else 1.0,
        variance_type="fixed_small",
        timestep_spacing="leading",
    )
    scheduler.save_pretrained(str(out / "scheduler"))
    index = {
        "_class_name": "DDPMPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "DDPMScheduler"],
        "unet": ["diffusers", "UNet2DModel"],
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2))
    meta = {
        "exported_by": "genlab",
        "time_map": "diffusers timestep n <-> genlab t = 1 - (n + 1)/T; UNet time input folded: s = T - 1 - n",
        "num_train_timesteps": T,
        "genlab_kind": field.kind,
        "prediction_type": _PREDICTION[field.kind],
        "interpolant": repr(field.interpolant),
        "beta_cap": _BETA_CAP,
        "capped_timesteps": int((abar > uncapped * (1 + 1e-12)).sum()),
        "data_range": [-1.0, 1.0],
        **dict(metadata or {}),
    }
    (out / EXPORT_METADATA).write_text(json.dumps(meta, indent=1))
    return out
