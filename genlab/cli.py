"""Command line: thin shells over the Python API (``genlab <command> ...`` or ``python -m genlab ...``).

Commands:

* ``genlab demo [--exact] [--overwrite]`` — train a stochastic interpolant on 2-D moons and compare samplers
  (:func:`genlab.demo.run_training_demo`); ``--exact`` runs the exact-field demo instead.
* ``genlab train CONFIG [--out DIR] [--set k=v ...] [--resume] [--overwrite]`` —
  :func:`genlab.training.train` (also under ``torchrun --nproc_per_node=N -m genlab train ...``).
* ``genlab sample --run DIR --sampler NAME --steps N --n N [--seed S] [--grid G] [--option k=v ...]
  --out FILE [--overwrite]`` — :func:`genlab.training.sample_run`.
* ``genlab eval --run DIR [--metrics sw,mmd]`` — :func:`genlab.training.evaluate`.
* ``genlab search --run DIR --nfe N [--method M] [--out FILE.json]`` — a searched solver for the run, written as a
  preset (:func:`genlab.samplers.search.search_solver`); ``genlab sample --run DIR --preset FILE.json`` runs it.
* ``genlab config show|validate CONFIG [--set k=v ...]`` — :func:`genlab.training.load_config`.
* ``genlab list samplers|methods|configs|datasets|grids`` — the names the other commands accept.
* ``genlab bench SUITE [options]`` — runs ``experiments/bench_<SUITE>.py``
  (e.g. ``genlab bench samplers --quick``; ``genlab bench`` alone lists the suites).

Every command validates its arguments before it writes anything, never replaces an existing output unless
``--overwrite`` is given, and names every file it writes in its output.

Adding a command is one ``_add_<name>(sub)`` function that declares its parser (with
``set_defaults(func=handler)``) and one entry in :data:`SUBCOMMANDS`; the handler takes the parsed namespace
and returns an exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["LIST_TOPICS", "SUBCOMMANDS", "build_parser", "main", "parse_options"]

_SEED_HELP = "random seed (same seed, same samples: sample i depends only on the seed and i)"
_DEVICE_HELP = "device to sample on: cpu, cuda, cuda:<index> or mps (default: cpu)"
_OVERWRITE_HELP = "replace existing outputs (without it, an existing output is never replaced)"
_ROOT = Path(__file__).resolve().parents[1]


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=1, default=str))


def _check_count(value: int | None, flag: str) -> None:
    """A positive count given on the command line (``None``: the default)."""
    if value is not None:
        from genlab.checks import check_count

        check_count(value, name=flag)


def parse_options(items: Sequence[str], *, flag: str = "--option") -> dict[str, Any]:
    """``["eta=1.0", "order=3"]`` → ``{"eta": 1.0, "order": 3}`` (values parsed as YAML scalars).

    Args:
        items: ``key=value`` strings.
        flag: Flag name used in error messages.

    Returns:
        The options mapping.

    Raises:
        ValueError: If an item has no ``=``, an empty or dotted key, invalid YAML, or repeats a key.
    """
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or "." in key:
            raise ValueError(f"{flag} {item!r} must look like key=value (e.g. {flag} eta=1.0)")
        if key in out:
            raise ValueError(f"{flag} {key!r} is given twice")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ValueError(f"{flag} {item!r}: the value is not valid YAML") from None
    return out


# ------------------------------------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    _check_count(args.seeds, "--seeds")
    _check_count(args.floor_draws, "--floor-draws")
    if args.exact:
        from genlab.demo import run_exact_demo

        rows = run_exact_demo(args.out, n=args.n, steps=args.steps or 10, seed=args.seed)
        _print_json([r.__dict__ for r in rows])
    else:
        from genlab.demo import run_training_demo

        summary = run_training_demo(
            args.out,
            train_steps=args.train_steps,
            nfe=args.nfe,
            n=args.n,
            seed=args.seed,
            threads=args.threads,
            overwrite=args.overwrite,
            seeds=args.seeds,
            floor_draws=args.floor_draws,
        )
        print(summary.table())
        if summary.reused:
            print(f"reused the finished run in {args.out}/run (same options)")
    run_files = "" if args.exact else f", {args.out}/run/ (config.yaml, metrics.jsonl, checkpoints/)"
    print(f"wrote {args.out}/samples.png, {args.out}/summary.json{run_files}")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train a stochastic interpolant on 2-D moons, compare samplers, write a "
        "picture + summary (--exact: the exact-field demo)",
    )
    p.add_argument("--out", default="out/demo", help="output folder")
    p.add_argument("--exact", action="store_true", help="exact-field transport demo (no training)")
    p.add_argument("--n", type=int, default=2000, help="number of samples per sampler")
    p.add_argument("--seed", type=int, default=0, help=_SEED_HELP + " (default 0)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps of the --exact demo (default 10)")
    p.add_argument(
        "--train-steps", type=int, default=None, help="training steps (default: the demo config's)"
    )
    p.add_argument("--nfe", type=int, default=20, help="network evaluations per sampler in the comparison")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seeds", type=int, default=3, help="sample sets per sampler behind each mean ± interval")
    p.add_argument(
        "--floor-draws", type=int, default=5, help="disjoint training subsets behind the data floor's interval"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="retrain when the folder holds a demo run trained with other options (default: refuse)",
    )
    p.set_defaults(func=_cmd_demo)


# ------------------------------------------------------------------------------------------------------ train
def _cmd_train(args: argparse.Namespace) -> int:
    from genlab.training import train

    if args.config is None and not args.resume:
        raise ValueError(
            "give a CONFIG (YAML file), or --resume --out RUN_DIR to continue a run with its saved config"
        )
    steps_run = [0]

    def count(_trainer: Any) -> None:
        steps_run[0] += 1

    from genlab.training.trainer import TrainingInterrupted

    try:
        result = train(
            args.config,
            out=args.out,
            overrides=args.set,
            resume=args.resume,
            hooks=[count],
            overwrite=args.overwrite,
        )
    except TrainingInterrupted as stop:  # SIGINT/SIGTERM: a checkpoint at the current step is on disk
        print(f"genlab train: {stop}", file=sys.stderr)
        return stop.exit_code
    if result.checkpoint is not None:  # rank 0 only under torchrun
        summary: dict[str, Any] = {
            "run_dir": str(result.run_dir),
            "step": result.step,
            "loss": result.loss,
            "checkpoint": str(result.checkpoint),
            "seconds": round(result.seconds, 2),
        }
        if args.resume and steps_run[0] == 0:
            summary["status"] = "already complete"
            print(
                f"genlab train: {result.run_dir} is already complete at step {result.step}; nothing to do "
                f"(raise the step count with --set train.steps=N to continue it)",
                file=sys.stderr,
            )
        else:
            written = [result.run_dir / n for n in ("config.yaml", "metrics.jsonl", "samples")]
            summary["files"] = [str(p) for p in written if p.exists()] + [str(result.checkpoint)]
        _print_json(summary)
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a run from a YAML config")
    p.add_argument("config", nargs="?", default=None, help="YAML config (optional with --resume --out DIR)")
    p.add_argument("--out", default=None, help="run folder (default: config 'out' or runs/<name>)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.lr=1e-3 (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in a folder that holds config.yaml/metrics.jsonl of a run without checkpoints",
    )
    p.set_defaults(func=_cmd_train)


# ----------------------------------------------------------------------------------------------------- sample
def _cmd_sample(args: argparse.Namespace) -> int:
    from genlab.checks import check_device

    _check_count(args.n, "--n")
    _check_count(args.steps, "--steps")
    check_device(args.device, name="--device")
    options = parse_options(args.option)
    out = Path(args.out)
    if out.suffix not in (".png", ".pt"):
        raise ValueError(f"--out must end with .png (picture + tensors) or .pt (tensors), got {args.out!r}")
    targets = [out.with_suffix(".pt")] + ([out] if out.suffix == ".png" else [])
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise ValueError(
            f"--out {args.out}: would replace existing file(s) {existing}; pass --overwrite to replace them "
            "or choose another --out"
        )
    if not Path(args.run).is_dir():
        raise FileNotFoundError(f"--run {args.run}: run folder does not exist")
    if (args.source is None) != (args.target is None):
        raise ValueError("--from and --to go together (transport between two marginals of a multimarginal run)")
    if args.source is None:
        from genlab.training.multimarginal import default_vertices

        args.source, args.target = default_vertices(args.run) or (None, None)
    if args.source is not None:
        from genlab.training.multimarginal import sample_transport

        res = sample_transport(
            args.run, source=args.source, target=args.target, path=args.path, sampler=args.sampler,
            steps=args.steps, n=args.n, seed=args.seed, out=args.out, ema=not args.raw, device=args.device,
            overwrite=args.overwrite, **options,
        )
        s = res.samples
        _print_json({"from": args.source, "to": args.target, "path": args.path, "sampler": s.sampler,
                     "steps": s.steps, "nfe": s.nfe, "n": int(s.x.shape[0]), "step": res.step,
                     "seconds": round(s.seconds, 3), "files": [str(f) for f in res.files]})
        return 0
    if args.cond is not None:  # a conditional run on given inputs: input | sample | target grid
        from genlab.training.conditional import sample_conditional

        if args.preset is not None:
            raise ValueError("--cond and --preset do not combine; drop one")
        res_c = sample_conditional(
            args.run, cond=args.cond, sampler=args.sampler, steps=args.steps, n=args.n, seed=args.seed,
            grid=args.grid, out=args.out, ema=not args.raw, device=args.device, overwrite=args.overwrite, **options,
        )
        _print_json({"sampler": res_c.sampler, "steps": res_c.steps, "nfe": res_c.nfe, "n": int(res_c.x.shape[0]),
                     "step": res_c.step, "seconds": round(res_c.seconds, 3), "files": [str(f) for f in res_c.files]})
        return 0
    if args.preset is not None:  # a searched solver: sampler 'searched', steps from the preset
        from genlab.samplers.searched import load_preset

        preset = load_preset(args.preset)
        if args.sampler not in (None, "searched"):
            raise ValueError(f"--preset runs the 'searched' sampler; drop --sampler {args.sampler}")
        args.sampler = "searched"
        options["preset"] = preset
        args.steps = preset.steps if args.steps is None else args.steps
        if args.grid is not None:
            raise ValueError("--preset carries its own grid; drop --grid")
        args.grid = [float(v) for v in preset.times]
    from genlab.training import sample_run
    from genlab.training.translation import is_translation_run

    translation = is_translation_run(args.run)  # unpaired translation: source | target | translated (+ paths)
    res = sample_run(
        args.run,
        sampler=args.sampler,
        steps=args.steps,
        n=args.n,
        seed=args.seed,
        grid=args.grid,
        out=args.out,
        ema=not args.raw,
        device=args.device,
        return_trajectory=args.trajectories or translation,
        overwrite=args.overwrite,
        **options,
    )
    s = res.samples
    _print_json(
        {
            "sampler": s.sampler,
            "steps": s.steps,
            "nfe": s.nfe,
            "n": int(s.x.shape[0]),
            "step": res.step,
            "seconds": round(s.seconds, 3),
            "files": [str(f) for f in res.files],
        }
    )
    return 0


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample a trained run with any registered sampler")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--sampler", default=None, help="sampler name (default: the run's sample.sampler)")
    p.add_argument("--steps", type=int, default=None, help="grid steps (default: the run's sample.steps)")
    p.add_argument("--n", type=int, default=None, help="number of samples (default: the run's sample.n)")
    p.add_argument("--seed", type=int, default=None, help=_SEED_HELP + " (default: the run's sample.seed)")
    p.add_argument(
        "--cond", default=None,
        help="conditional runs (bridges, data-dependent couplings): 'held_out' (the run's held-out inputs) or a "
             ".pt file with x0 (a tensor, or a dict with 'x0' and optional 'x1'; bridges); writes input | sample | "
             "target rows",
    )
    p.add_argument(
        "--grid", default=None, help="time grid: uniform, power, log_snr, karras (default: the run's sample.grid)"
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="sampler option, e.g. --option eta=1.0 or --option order=3 (repeatable; overrides sample.options)",
    )
    p.add_argument(
        "--out", required=True, help="output .png (picture + tensors in <stem>.pt) or .pt (tensors only)"
    )
    p.add_argument("--overwrite", action="store_true", help=_OVERWRITE_HELP)
    p.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--trajectories", action="store_true", help="draw trajectories (2-D data)")
    p.add_argument("--preset", default=None,
                   help="searched-solver preset (.json from `genlab search`, or a shipped name): runs sampler "
                        "'searched' on the preset's grid (steps default to the preset's)")
    p.add_argument("--device", default="cpu", help=_DEVICE_HELP)
    p.add_argument("--from", dest="source", type=int, default=None,
                   help="multimarginal runs: start vertex (0 = Gaussian, k = data.marginals[k-1]); needs --to")
    p.add_argument("--to", dest="target", type=int, default=None, help="multimarginal runs: end vertex")
    p.add_argument("--path", default="edge", choices=("edge", "gamma"),
                   help="multimarginal runs: simplex path (gamma: through the Gaussian vertex, for SDE samplers)")
    p.set_defaults(func=_cmd_sample)


# ------------------------------------------------------------------------------------------------------- eval
def _cmd_eval(args: argparse.Namespace) -> int:
    from genlab.checks import check_device, check_metrics
    from genlab.training.config import EVAL_METRICS

    _check_count(args.n, "--n")
    _check_count(args.steps, "--steps")
    _check_count(args.seeds, "--seeds")
    check_device(args.device, name="--device")
    metrics = check_metrics(args.metrics, EVAL_METRICS, name="--metrics")
    from genlab.training import evaluate

    res = evaluate(
        args.run,
        n=args.n,
        sampler=args.sampler,
        steps=args.steps,
        seed=args.seed,
        seeds=args.seeds,
        metrics=metrics,
        device=args.device,
    )
    if res.reports or res.paired:  # the human-readable table goes to stderr, so stdout stays one JSON document
        print(res.table(), file=sys.stderr)
    _print_json(
        {
            "step": res.step,
            "sampler": res.sampler,
            "steps": res.steps,
            "nfe": res.nfe,
            "n": res.n,
            "seeds": res.seeds,
            "metrics": res.metrics,
            "verdict": res.verdict,
            "file": str(res.path),
            "files": [str(f) for f in res.files],
        }
    )
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run against its held-out data (writes <run>/eval.json)")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--n", type=int, default=None, help="number of samples (default: eval.n)")
    p.add_argument("--sampler", default=None, help="sampler name (default: the run's sample.sampler)")
    p.add_argument("--steps", type=int, default=None, help="grid steps (default: the run's sample.steps)")
    p.add_argument("--seed", type=int, default=None, help=_SEED_HELP + " (default: the run's eval.seed)")
    p.add_argument(
        "--metrics",
        default=None,
        help="comma-separated subset of sw,mmd,energy,precision,recall,density,coverage,c2st,fd,val_loss,mse,psnr "
        "(default: the run's eval.metrics)",
    )
    p.add_argument(
        "--seeds", type=int, default=None,
        help="sample sets behind each metric's mean ± 95%% interval (default: the run's eval.seeds)",
    )
    p.add_argument("--device", default="cpu", help=_DEVICE_HELP)
    p.set_defaults(func=_cmd_eval)


# ----------------------------------------------------------------------------------------------------- config
def _cmd_config(args: argparse.Namespace) -> int:
    from genlab.training import check_components, load_config

    cfg = load_config(args.config, overrides=args.set)
    check_components(cfg)
    if args.action == "show":
        sys.stdout.write(cfg.to_yaml())
    else:
        print(f"{args.config}: ok")
    return 0


def _add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the resolved config (show) or check it (validate)")
    p.add_argument("action", choices=["show", "validate"])
    p.add_argument("config", help="YAML config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override (repeatable)")
    p.set_defaults(func=_cmd_config)


# ------------------------------------------------------------------------------------------------------- list
def _list_samplers() -> list[str]:
    from genlab.samplers import available_samplers

    return list(available_samplers())


def _list_methods() -> list[str]:
    from genlab.inverse import available_methods

    return list(available_methods())


def _list_configs() -> list[str]:
    folder = _ROOT / "configs"
    return sorted(str(p.relative_to(_ROOT)) for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _list_datasets() -> list[str]:
    from genlab.data import DATASET_NAMES, registered_datasets

    return [*DATASET_NAMES, *registered_datasets()]


def _list_grids() -> list[str]:
    from genlab.samplers.grids import GRIDS

    return sorted(GRIDS)


#: ``genlab list <topic>``: what each topic lists.
LIST_TOPICS: dict[str, Callable[[], list[str]]] = {
    "samplers": _list_samplers,
    "methods": _list_methods,
    "configs": _list_configs,
    "datasets": _list_datasets,
    "grids": _list_grids,
}


def _cmd_list(args: argparse.Namespace) -> int:
    for name in LIST_TOPICS[args.topic]():
        print(name)
    return 0


def _add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the registered samplers, inverse methods, configs, datasets or grids")
    p.add_argument("topic", choices=list(LIST_TOPICS), help="what to list")
    p.set_defaults(func=_cmd_list)


# ------------------------------------------------------------------------------------------------------ bench
def _bench_suites(folder: Path) -> list[str]:
    return sorted(p.stem[len("bench_") :] for p in folder.glob("bench_*.py")) if folder.is_dir() else []


def _cmd_bench(args: argparse.Namespace) -> int:
    import runpy

    folder = _ROOT / "experiments"
    if args.suite is None:
        suites = _bench_suites(folder)
        print("usage: genlab bench SUITE [options]   (options: see genlab bench SUITE --help)")
        print("suites:" if suites else f"no benchmark suites found ({folder} ships with the source checkout)")
        for name in suites:
            print(f"  {name}")
        return 0
    script = folder / f"bench_{args.suite}.py"
    if not script.is_file():
        available = _bench_suites(folder)
        raise FileNotFoundError(
            f"no benchmark {args.suite!r} ({script} is missing; benchmarks ship with the source "
            f"checkout); available: {available}"
        )
    namespace = runpy.run_path(str(script), run_name=f"genlab_bench_{args.suite}")
    entry = namespace.get("main")
    if not callable(entry):
        raise TypeError(f"{script} defines no main(argv) function")
    return int(entry(list(args.args)) or 0)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark script experiments/bench_<suite>.py (e.g. 'genlab bench "
        "samplers --quick'); writes its results under experiments/results/",
    )
    p.add_argument(
        "suite", nargs="?", default=None, help="benchmark name: experiments/bench_<suite>.py (none: list them)"
    )
    p.add_argument("args", nargs=argparse.REMAINDER, help="options passed to the benchmark (see its --help)")
    p.set_defaults(func=_cmd_bench)


def _add_export(sub: argparse._SubParsersAction) -> None:
    from genlab.training.export import add_export_parser

    add_export_parser(sub)


def _add_solve(sub: argparse._SubParsersAction) -> None:
    from genlab.inverse.tasks import add_solve_parser

    add_solve_parser(sub)


#: Parser builders, one per sub-command, in help order. ``genlab bench`` plugs in here as ``_add_bench``.
# ------------------------------------------------------------------------------------------------------- search
def _cmd_search(args: argparse.Namespace) -> int:
    from genlab.checks import check_device
    from genlab.samplers.search import search_solver
    from genlab.training import load_run

    _check_count(args.nfe, "--nfe")
    _check_count(args.noises, "--noises")
    check_device(args.device, name="--device")
    default = f"searched_{args.method.replace('+', '_')}_nfe{args.nfe}.json"
    out = Path(args.out) if args.out else Path(args.run) / "presets" / default
    if out.suffix != ".json":
        raise ValueError(f"--out must end with .json, got {str(out)!r}")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {out}: would replace an existing preset; pass --overwrite or choose another --out")
    if not Path(args.run).is_dir():
        raise FileNotFoundError(f"--run {args.run}: run folder does not exist")
    run = load_run(args.run, ema=not args.raw, device=args.device)
    if not run.field.interpolant.gaussian_source:
        raise ValueError("genlab search runs on Gaussian-source runs (bridges: call genlab.samplers.search."
                         "search_solver with x_init= and cond=)")
    res = search_solver(
        run.field, args.nfe, method=args.method, shape=run.components.data_shape, noises=args.noises,
        base=args.base, seed=args.seed, model=f"{run.config.name} (step {run.step})",
        evolution_options={"epochs": args.epochs}, dss_options={"iterations": args.iterations},
        progress=not args.no_progress,
    )
    path = res.preset.save(out)
    _print_json({"preset": str(path), "nfe": args.nfe, "method": args.method, "start_error": res.start_error,
                 "error": res.error, "search_nfe": res.nfe_spent, "seconds": round(res.seconds, 2),
                 "files": [str(path)]})
    return 0


def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search a fast solver for a trained run at an NFE budget (writes a preset)")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--nfe", type=int, required=True, help="NFE budget (= steps of the searched solver)")
    p.add_argument("--method", default="evolution+dss", choices=("dss", "evolution", "evolution+dss"),
                   help="search procedure (default: evolution, then the differentiable search)")
    p.add_argument("--base", default="dpmpp_2m", choices=("dpmpp_1s", "dpmpp_2m", "dpmpp_3m"),
                   help="hand-designed solver the search starts from")
    p.add_argument("--noises", type=int, default=256, help="search noises (a quarter held out)")
    p.add_argument("--epochs", type=int, default=8, help="evolutionary epochs")
    p.add_argument("--iterations", type=int, default=150, help="differentiable-search steps")
    p.add_argument("--seed", type=int, default=0, help="seed of the noises and the search")
    p.add_argument("--out", default=None, help="preset .json (default: <run>/presets/searched_<method>_nfe<N>.json)")
    p.add_argument("--overwrite", action="store_true", help=_OVERWRITE_HELP)
    p.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--device", default="cpu", help=_DEVICE_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_search)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_demo,
    _add_train,
    _add_sample,
    _add_eval,
    _add_solve,
    _add_config,
    _add_list,
    _add_bench,
    _add_export,
    _add_search,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``genlab`` sub-command."""
    from genlab import __version__

    parser = argparse.ArgumentParser(prog="genlab", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"genlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``genlab`` command; user errors print one line and exit with status 2 (set
    ``GENLAB_DEBUG=1`` for the traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, ImportError) as err:
        if os.environ.get("GENLAB_DEBUG"):
            raise
        print(f"genlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside training's graceful stop: no traceback, the shell's exit code
        if os.environ.get("GENLAB_DEBUG"):
            raise
        print(f"genlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
