"""The Python API behind ``genlab train | sample | eval``: train a run, load it back, sample it, evaluate it.

.. code-block:: python

    import genlab.training as gt

    result = gt.train("configs/moons_si.yaml", out="runs/moons", overrides=["train.steps=2000"])
    run = gt.load_run("runs/moons")                       # EMA weights of the latest checkpoint
    samples = gt.sample_run(run, sampler="heun", steps=20, n=2000, seed=0)
    report = gt.evaluate(run)                             # SW / MMD / energy / val loss vs held-out data
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genlab.checks import check_count, check_device, check_metrics
from genlab.metrics import Estimate, estimate
from genlab.models import Field
from genlab.progress import track
from genlab.training.checkpoint import CheckpointManager, RunLock, load_checkpoint
from genlab.training.components import Components, build_components
from genlab.training.config import EVAL_METRICS, RunConfig, load_config
from genlab.training.engines import Engine, resolve_device
from genlab.training.evaluation import (
    MetricReport,
    format_reports,
    metric_reports,
    overall_verdict,
    paired_metrics,
    validation_loss,
)
from genlab.training.objective import Objective, build_objective
from genlab.training.sampling import Samples, draw_samples, reference_data, save_picture
from genlab.training.trainer import Hook, Trainer, TrainResult, checkpoint_key
from genlab.utils import atomic_write

__all__ = ["EvalResult", "Run", "RunSamples", "evaluate", "load_run", "loss_curve", "sample_run", "train"]


def train(
    config: RunConfig | Mapping[str, Any] | str | Path | None = None,
    *,
    out: str | Path | None = None,
    overrides: Iterable[str] = (),
    resume: bool = False,
    hooks: Sequence[Hook] = (),
    engine: Engine | None = None,
    overwrite: bool = False,
    data: Any = None,
) -> TrainResult:
    """Train a run from a config (YAML path, mapping or :class:`RunConfig`).

    Your own data: ``data=`` takes a tensor ``x1`` (``(n, d)`` vectors or ``(n, C, H, W)`` images in
    ``[-1, 1]``), a pair ``(x0, x1)`` for bridges and couplings, a dict with ``"x1"``/``"x0"``/``"label"``, or a
    map-style ``torch.utils.data.Dataset`` (see :func:`genlab.data.as_dataset`). It is checked, written to
    ``<run>/data.pt`` atomically and the run's ``data`` section becomes ``{name: tensor_file, path: ...}``
    (the config's other data keys, e.g. ``test_fraction``, are kept), so resuming, sampling and evaluating the
    run need only its folder.

    Args:
        config: The config; with ``resume=True`` it may be ``None`` (the run folder's ``config.yaml`` is
            used).
        out: Run folder (default ``config.out`` or ``runs/<name>``).
        overrides: Dotted ``"section.key=value"`` overrides.
        resume: Continue from the run folder's latest checkpoint.
        hooks: Callables run after every step (see :data:`genlab.training.trainer.Hook`).
        engine: Engine to use (default from the config; DDP when launched by torchrun).
        overwrite: Start afresh in a folder that holds ``config.yaml``/``metrics.jsonl`` of a run without
            checkpoints (without it such a folder is refused, so nothing of an earlier run is replaced silently).
        data: Your own data (above); ``None`` uses the config's ``data`` section.

    Returns:
        :class:`~genlab.training.trainer.TrainResult`.

    Raises:
        FileExistsError: If the folder holds an earlier run's files without a checkpoint (and neither
            ``resume`` nor ``overwrite`` is set).
        RunLockedError: If another live process trains into the folder (a ``FileExistsError``).
        CheckpointError: If resuming and no checkpoint of the folder is intact (a ``ValueError``).
        TrainingInterrupted: On SIGINT/SIGTERM, after a checkpoint at the current step is written.
    """
    if config is None:
        if not (resume and out is not None):
            raise ValueError(
                "pass a config (YAML path, mapping or RunConfig); only resume=True with out= can "
                "reuse the run folder's config.yaml"
            )
        saved = Path(out) / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(f"{str(saved)!r} does not exist: nothing to resume; pass a config")
        config = saved
    cfg = load_config(config, overrides=overrides)
    run_dir = cfg.run_dir(out)
    if engine.is_main if engine is not None else os.environ.get("RANK", "0") == "0":
        RunLock(run_dir).check()  # rank 0 owns the folder: a live run there is named before stale files
    _refuse_stale_run_dir(run_dir, resume=resume, overwrite=overwrite)
    if data is not None:
        _attach_user_data(cfg, run_dir, data, resume=resume)
    return Trainer(cfg, run_dir, engine=engine, hooks=hooks).fit(resume=resume)


def _attach_user_data(cfg: RunConfig, run_dir: Path, data: Any, *, resume: bool) -> None:
    """Check ``data``, write it to ``<run>/data.pt`` and point ``cfg.data`` at it (see :func:`train`)."""
    from genlab.data.user import TensorFileDataset, as_dataset, save_tensor_file

    dataset = as_dataset(data)
    path = (run_dir / "data.pt").resolve()
    if resume and path.is_file():
        saved = TensorFileDataset(path)
        same = saved.item_names == dataset.item_names and all(
            a.shape == b.shape and torch.equal(a, b) for a, b in zip(saved.tensors, dataset.tensors)
        )
        if not same:
            raise ValueError(
                f"data: differs from the data this run was trained on ({str(path)!r}); resume without data= "
                "(the run keeps its own copy) or train a new run"
            )
    else:
        save_tensor_file(dataset, path)
    cfg.data.name = "tensor_file"
    cfg.data.kwargs = {"path": str(path)}


def _refuse_stale_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse a fresh run in a folder holding an earlier run's config/metrics but no checkpoint."""
    if resume or overwrite or not run_dir.is_dir():
        return
    ckpts = run_dir / "checkpoints"
    if ckpts.is_dir() and any(ckpts.glob("*.pt")):
        return  # the Trainer refuses this case itself (pass resume)
    found = [n for n in ("config.yaml", "metrics.jsonl") if (run_dir / n).exists()]
    if found:
        raise FileExistsError(
            f"run folder {str(run_dir)!r} already holds {found} of an earlier run (no checkpoint); pass "
            "overwrite=True (--overwrite) to start afresh and replace them, resume=True (--resume) to restart "
            "it from step 0 with its config, or choose another out (--out)"
        )


@dataclass
class Run:
    """A trained run loaded from its folder.

    Attributes:
        run_dir: The run folder.
        config: Its resolved config (as embedded in the checkpoint).
        step: Training step of the checkpoint.
        checkpoint: The checkpoint file.
        field: The primary Field of the objective (EMA weights unless loaded with ``ema=False``), in eval mode.
        components: Data split, interpolant, coupling and the network.
        ema: Whether ``field`` holds the EMA weights.
        objective: The run's objective with its modules loaded (EMA or raw weights, frozen) and its state.
    """

    run_dir: Path
    config: RunConfig
    step: int
    checkpoint: Path
    field: Field
    components: Components
    ema: bool
    objective: Objective | None = None


def load_run(
    run: str | Path | Run,
    *,
    checkpoint: str | Path | None = None,
    ema: bool = True,
    device: str | torch.device = "cpu",
) -> Run:
    """Load a run folder (or one of its checkpoints) with ``torch.load(weights_only=True)``.

    Args:
        run: Run folder (or an already loaded :class:`Run`, returned as is).
        checkpoint: A checkpoint file or step number (default: the newest intact one; a damaged newer one is
            named on stderr with its damage).
        ema: Use the EMA weights (else the raw weights).
        device: Device of the Field.

    Returns:
        :class:`Run`.

    Raises:
        FileNotFoundError: If the folder or checkpoint does not exist.
        CheckpointError: If the named checkpoint, or every checkpoint of the folder, is damaged.
    """
    if isinstance(run, Run):
        return run
    run_dir = Path(run)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {str(run_dir)!r} does not exist")
    manager = CheckpointManager(run_dir / "checkpoints")
    dev = resolve_device(device)
    if checkpoint is None:
        if manager.latest() is None and not (manager.folder / "latest").is_file():
            raise FileNotFoundError(f"no checkpoint in {str(run_dir / 'checkpoints')!r}; train the run first")
        found = manager.load_latest(map_location="cpu")
        path, state = found.path, found.state
    else:
        if isinstance(checkpoint, int) or (isinstance(checkpoint, str) and checkpoint.isdigit()):
            path = manager.path_for(int(checkpoint))
        else:
            path = Path(checkpoint)
        state = load_checkpoint(path, map_location="cpu")
    config = load_config(state["config"])
    with torch.random.fork_rng(devices=[]):
        components = build_components(config, network=state["network"])
        objective = build_objective(config, components)
    modules = objective.modules()
    for name, module in modules.items():
        weights = (
            state[checkpoint_key("ema", name)]["weights"] if ema else state[checkpoint_key("model", name)]
        )
        module.load_state_dict(weights)
        module.to(dev).eval().requires_grad_(False)
    objective.bind(train=modules, ema=modules)
    objective.load_state_dict(state.get("objective", {}))
    fields = objective.fields(ema=ema)
    if not fields:
        raise ValueError(f"the objective of {str(run_dir)!r} exposes no Field to load")
    fld = next(iter(fields.values())).eval()
    return Run(
        run_dir=run_dir,
        config=config,
        step=int(state["step"]),
        checkpoint=path,
        field=fld,
        components=components,
        ema=ema,
        objective=objective,
    )


@dataclass
class RunSamples:
    """Samples of a run and where they were written.

    Attributes:
        samples: :class:`~genlab.training.sampling.Samples` (``x``, ``nfe``, ...).
        step: Checkpoint step.
        files: Written files (``.pt`` tensor dump, ``.png`` picture).
    """

    samples: Samples
    step: int
    files: list[Path] = field(default_factory=list)


def sample_run(
    run: str | Path | Run,
    *,
    sampler: str | None = None,
    steps: int | None = None,
    n: int | None = None,
    seed: int | None = None,
    grid: str | None = None,
    out: str | Path | None = None,
    return_trajectory: bool = False,
    ema: bool = True,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    progress: bool | None = None,
    **options: Any,
) -> RunSamples:
    """Sample a trained run with any registered sampler (defaults from the run's ``sample`` section).

    With ``out``, writes ``out`` (``.png``: a scatter plot for 2-D data or an image grid, plus the tensors in
    ``<stem>.pt``; ``.pt``: the tensors only). The ``.pt`` file holds ``{"x", "nfe", "sampler", "steps",
    "step", "target"?}`` and loads with ``weights_only=True``.

    Args:
        run: Run folder or :class:`Run`.
        sampler: Sampler name.
        steps: Grid steps.
        n: Number of samples.
        seed: Seed.
        grid: Grid name.
        out: Output file (``.png`` or ``.pt``).
        return_trajectory: Keep every state.
        ema: Use the EMA weights (when loading from a folder).
        device: Device (when loading from a folder).
        overwrite: Replace existing output files (else an existing ``out`` or ``<stem>.pt`` is refused).
        progress: Bar over the sampler's steps (``None``: when stderr is a terminal, rank 0 only).
        **options: Sampler constructor options (override ``sample.options``).

    Returns:
        :class:`RunSamples`.

    Raises:
        FileExistsError: If an output file exists and ``overwrite`` is false (checked before sampling).
    """
    for value, name in ((n, "n"), (steps, "steps")):
        if value is not None:
            check_count(value, name=name)
    check_device(device)
    if out is not None:
        out = Path(out)
        if out.suffix not in (".png", ".pt"):
            raise ValueError(f"out must end with .png or .pt, got {str(out)!r}")
        existing = [str(p) for p in {out, out.with_suffix(".pt")} if p.exists()]
        if existing and not overwrite:
            raise FileExistsError(
                f"out={str(out)!r} would replace existing file(s) {sorted(existing)}; pass overwrite=True "
                "(--overwrite) or choose another out"
            )
    loaded = load_run(run, ema=ema, device=device)
    scfg = loaded.config.sample
    smp = draw_samples(
        loaded.field,
        loaded.components,
        sampler=sampler or scfg.sampler,
        steps=steps if steps is not None else scfg.steps,
        n=n if n is not None else scfg.n,
        seed=seed if seed is not None else scfg.seed,
        grid=grid or scfg.grid,
        grid_options=scfg.grid_options,
        options={**scfg.options, **options},
        return_trajectory=return_trajectory,
        progress=progress,
    )
    files: list[Path] = []
    if out is not None:
        dump: dict[str, Any] = {
            "x": smp.x.cpu(),
            "nfe": smp.nfe,
            "sampler": smp.sampler,
            "steps": smp.steps,
            "step": loaded.step,
        }
        if smp.target is not None:
            dump["target"] = smp.target.cpu()
        pt = out.with_suffix(".pt")
        with atomic_write(pt, "wb") as fh:
            torch.save(dump, fh)
        files.append(pt)
        if out.suffix == ".png":
            pic = _samples_picture(loaded, smp, out)
            if pic is None:
                raise ValueError(
                    f"samples of shape {tuple(smp.x.shape[1:])} have no picture; use a .pt output"
                )
            files.append(pic)
    return RunSamples(samples=smp, step=loaded.step, files=files)


@dataclass
class EvalResult:
    """An evaluation of a run.

    Attributes:
        metrics: ``{name: value}``: each sample-set metric's mean over the sample seeds and its data floor
            ``<name>_ref`` (mean over disjoint training subsets), ``val_loss`` (first seed), ``mse``/``psnr`` for
            conditional paths (mean over the seeds).
        step: Checkpoint step.
        sampler: Sampler used.
        steps: Grid steps.
        nfe: Network evaluations of the sampling (one seed).
        n: Number of samples per seed.
        seconds: Wall time.
        reports: ``{name: MetricReport}``: model and floor as mean ± 95 % interval, and the verdict.
        paired: ``{name: Estimate}`` of ``mse``/``psnr`` against the exact paired targets, over the seeds.
        verdict: One line over all sample-set metrics ("within noise of the data ..." or which are worse).
        seeds: The sample seeds used.
        path: ``eval.json`` written in the run folder (``None`` with ``write=False``).
        files: Pictures written beside it (``eval_samples.png``, ``eval_loss.png``).
    """

    metrics: dict[str, float]
    step: int
    sampler: str
    steps: int
    nfe: int
    n: int
    seconds: float
    reports: dict[str, MetricReport] = field(default_factory=dict)
    paired: dict[str, Estimate] = field(default_factory=dict)
    verdict: str = ""
    seeds: list[int] = field(default_factory=list)
    path: Path | None = None
    files: list[Path] = field(default_factory=list)

    def table(self) -> str:
        """The sample-set metrics as a plain-text table with the verdict line."""
        lines = [format_reports(self.reports), "verdict: " + self.verdict] if self.reports else []
        lines += [f"{k} vs the paired targets: {e.format()} (over {e.n} seeds)" for k, e in self.paired.items()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        """JSON-ready form (what ``eval.json`` holds)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("path", "reports", "paired", "files")}
        out["files"] = [str(f) for f in self.files]
        out["reports"] = {k: r.to_dict() for k, r in self.reports.items()}
        out["paired"] = {k: e.to_dict() for k, e in self.paired.items()}
        return out


def evaluate(
    run: str | Path | Run,
    *,
    n: int | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    seeds: int | None = None,
    metrics: str | Sequence[str] | None = None,
    write: bool = True,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> EvalResult:
    """Evaluate a run's EMA Field against its held-out data (defaults from the ``eval``/``sample`` sections).

    Args:
        run: Run folder or :class:`Run`.
        n: Number of samples.
        sampler: Sampler name.
        steps: Grid steps.
        seed: Seed of samples, projections and validation noise (sample seeds ``seed .. seed + seeds - 1``).
        seeds: Number of sample sets behind each metric's mean ± interval (default ``eval.seeds``).
        metrics: Subset of ``sw``, ``mmd``, ``energy``, ``val_loss``, ``mse``, ``psnr``: a list, one name
            or a comma-separated string (an unknown name raises before anything is sampled or written).
        write: Write ``<run>/eval.json`` and, beside it, ``eval_samples.png`` (the first seed's samples) and
            ``eval_loss.png`` (the training loss curve from ``metrics.jsonl``), named in ``EvalResult.files``.
        device: Device (when loading from a folder).
        progress: Bar over the sample seeds (``None``: when stderr is a terminal, rank 0 only).

    Returns:
        :class:`EvalResult`.
    """
    checked = check_metrics(metrics, EVAL_METRICS)
    for value, name in ((n, "n"), (steps, "steps")):
        if value is not None:
            check_count(value, name=name)
    check_device(device)
    loaded = load_run(run, device=device)
    cfg = loaded.config
    ecfg, scfg = cfg.eval, cfg.sample
    names = checked if checked is not None else list(ecfg.metrics)
    seed = ecfg.seed if seed is None else seed
    n_seeds = ecfg.seeds if seeds is None else check_count(seeds, name="seeds")
    t0 = time.perf_counter()
    seed_list = [seed + i for i in range(n_seeds)]
    sets = [
        draw_samples(
            loaded.field,
            loaded.components,
            sampler=sampler or scfg.sampler,
            steps=steps if steps is not None else scfg.steps,
            n=n if n is not None else ecfg.n,
            seed=s,
            grid=scfg.grid,
            grid_options=scfg.grid_options,
            options=scfg.options,
        )
        for s in track(seed_list, desc="evaluating (sample seeds)", progress=progress)
    ]
    smp = sets[0]
    split = loaded.components.split
    reports = metric_reports(
        [x.x for x in sets], split.train, reference_data(split.test), names,
        floor_draws=ecfg.floor_draws, n_projections=ecfg.n_projections, seed=seed,
    )
    values: dict[str, float] = {}
    for name_, rep in reports.items():
        values[name_] = rep.model.mean
        values[f"{name_}_ref"] = rep.floor.mean
    paired_runs = [paired_metrics(x, names) for x in sets]
    paired = {k: estimate([run[k] for run in paired_runs]) for k in paired_runs[0]}
    values.update({k: e.mean for k, e in paired.items()})
    if "val_loss" in names:
        objective = loaded.objective
        if not callable(objective):
            raise ValueError(
                f"{type(objective).__name__} cannot evaluate a given Field; drop 'val_loss' from metrics"
            )
        values["val_loss"] = validation_loss(
            objective, loaded.field, split.test, batch_size=cfg.train.batch_size, seed=seed
        )
    result = EvalResult(
        metrics=values,
        step=loaded.step,
        sampler=smp.sampler,
        steps=smp.steps,
        nfe=smp.nfe,
        n=int(smp.x.shape[0]),
        seconds=time.perf_counter() - t0,
        reports=reports,
        paired=paired,
        verdict=overall_verdict(reports) if reports else "",
        seeds=seed_list,
    )
    if write:
        result.files = _eval_pictures(loaded, smp)
        path = loaded.run_dir / "eval.json"
        with atomic_write(path, "w") as fh:
            json.dump(result.to_json(), fh, indent=2)
        result.path = path
    return result


def _samples_picture(loaded: Run, smp: Samples, path: Path) -> Path | None:
    """The picture of a run's samples (held-out reference beside them, 2-D trajectories when kept); for an
    unpaired-translation run, source | target | translated
    (:func:`~genlab.training.translation.save_translation_picture`)."""
    from genlab.training.translation import is_translation_run, save_translation_picture

    reference = reference_data(loaded.components.split.test, smp.x.shape[0])
    if is_translation_run(loaded.config) and smp.x_init is not None:
        return save_translation_picture(
            loaded.config, smp, path, title=f"{smp.sampler}, {smp.nfe} NFE (step {loaded.step})", target=reference
        )
    traj = smp.trajectory[:, :64].cpu() if smp.trajectory is not None and smp.x.ndim == 2 else None
    return save_picture(
        smp.x.cpu(),
        path,
        reference=reference,
        trajectories=traj,
        title=f"{smp.sampler}, {smp.nfe} NFE (step {loaded.step})",
    )


def _eval_pictures(loaded: Run, smp: Samples) -> list[Path]:
    """``eval_samples.png`` and ``eval_loss.png`` in the run folder (skipped without matplotlib)."""
    try:
        from genlab.viz import require_matplotlib

        require_matplotlib()
    except ImportError:
        return []
    files: list[Path] = []
    pic = _samples_picture(loaded, smp, loaded.run_dir / "eval_samples.png")
    if pic is not None:
        files.append(Path(pic))
    curve = loss_curve(loaded.run_dir / "metrics.jsonl", loaded.run_dir / "eval_loss.png")
    if curve is not None:
        files.append(curve)
    return files


def loss_curve(metrics: str | Path, out: str | Path, *, keys: Sequence[str] = ("loss", "val_loss")) -> Path | None:
    """Plot the training records of ``metrics.jsonl`` (loss, and validation loss when logged) to ``out`` (PNG).

    Args:
        metrics: The run's ``metrics.jsonl``.
        out: Output PNG.
        keys: Record keys to draw (those absent are skipped).

    Returns:
        The written path, or ``None`` when the file is missing or holds none of ``keys``.
    """
    metrics = Path(metrics)
    if not metrics.is_file():
        return None
    series: dict[str, tuple[list[int], list[float]]] = {}
    for line in metrics.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a record cut by a crash
        for k in keys:
            v = rec.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                steps, values = series.setdefault(k, ([], []))
                steps.append(int(rec.get("step", len(steps))))
                values.append(float(v))
    if not series:
        return None
    from genlab.viz import require_matplotlib, save_figure

    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    for k, (steps, values) in series.items():
        ax.plot(steps, values, marker="." if len(steps) < 50 else None, lw=1.2, label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if all(v > 0 for _, vals in series.values() for v in vals):
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, out)
