"""Export a trained run: ``genlab export --run RUN --format diffusers|genlab OUT``.

* ``diffusers``: :func:`genlab.models.diffusers_export.export_diffusers` — a folder that
  ``diffusers.UNet2DModel.from_pretrained(OUT, subfolder="unet")``, any VP scheduler's ``from_pretrained(OUT,
  subfolder="scheduler")`` and ``DDPMPipeline.from_pretrained(OUT)`` load, for U-Net runs on a VP path with an
  ε- or data-predicting network; :func:`genlab.samplers.adapters.load_diffusers_field` reads it back.
* ``genlab``: :func:`genlab.models.pretrained.save_field` (``Field.save_pretrained``) — config + safetensors for
  every path and kind; ``Field.from_pretrained(OUT)`` reads it back.

The EMA weights are exported unless ``ema=False``; the run folder, checkpoint step and config name are recorded.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["EXPORT_FORMATS", "add_export_parser", "export_run"]

#: Formats accepted by :func:`export_run` / ``genlab export --format``.
EXPORT_FORMATS: tuple[str, ...] = ("diffusers", "genlab")


def export_run(
    run: Any, out: str | Path, *, format: str = "diffusers", ema: bool = True, overwrite: bool = False
) -> Path:
    """Export a run's primary field.

    Args:
        run: Run folder or a loaded :class:`~genlab.training.api.Run`.
        out: Output folder (a new or empty folder unless ``overwrite``).
        format: ``"diffusers"`` or ``"genlab"``.
        ema: Export the EMA weights (default) rather than the raw ones.
        overwrite: Replace an existing export.

    Returns:
        The written folder.

    Raises:
        ValueError: Unknown format, a non-empty ``out`` without ``overwrite``, or a field that the format cannot
            express (the message says why).
    """
    from genlab.models.diffusers_export import export_diffusers
    from genlab.models.pretrained import save_field
    from genlab.training.api import Run, load_run

    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {list(EXPORT_FORMATS)}")
    loaded = run if isinstance(run, Run) else load_run(run, ema=ema)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; the export is a folder")
    meta = {
        "run": str(loaded.run_dir),
        "checkpoint": str(loaded.checkpoint),
        "step": int(loaded.step),
        "ema": bool(loaded.ema),
        "config_name": loaded.config.name,
    }
    if loaded.components.masked_output:
        raise ValueError("this run's field masks its output with the condition (a data-dependent coupling); "
                         "it has no standalone export")
    if format == "diffusers":
        return export_diffusers(loaded.field, out, metadata=meta, overwrite=overwrite)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} exists and is not empty; choose a new folder or pass --overwrite")
    spec = {"name": loaded.config.interpolant.name, **loaded.config.interpolant.kwargs}
    return save_field(loaded.field, out, interpolant_spec=spec, metadata=meta)


def _cmd_export(args: argparse.Namespace) -> int:
    import json

    if not Path(args.run).is_dir():
        raise FileNotFoundError(f"--run {args.run}: run folder does not exist")
    path = export_run(args.run, args.out, format=args.format, ema=not args.raw, overwrite=args.overwrite)
    print(json.dumps({"format": args.format, "out": str(path),
                      "files": sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())},
                     indent=1))
    return 0


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    """The ``genlab export`` sub-command (plugged into :data:`genlab.cli.SUBCOMMANDS`)."""
    p = sub.add_parser(
        "export",
        help="export a run's field: --format diffusers (UNet2DModel + scheduler folder) or genlab "
        "(Field.save_pretrained: config + safetensors)",
    )
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--format", default="diffusers", choices=EXPORT_FORMATS)
    p.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an existing export")
    p.add_argument("out", help="output folder")
    p.set_defaults(func=_cmd_export)
