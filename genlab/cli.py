"""Command line: thin shells over the Python API (``genlab <command> ...`` or ``python -m genlab ...``).

Commands:

* ``genlab demo [--exact]`` — train a stochastic interpolant on 2-D moons and compare samplers
  (:func:`genlab.demo.run_training_demo`); ``--exact`` runs the exact-field demo instead.
* ``genlab train CONFIG [--out DIR] [--set k=v ...] [--resume]`` — :func:`genlab.training.train`
  (also under ``torchrun --nproc_per_node=N -m genlab train ...``).
* ``genlab sample --run DIR --sampler NAME --steps N --n N [--seed S] --out FILE`` —
  :func:`genlab.training.sample_run`.
* ``genlab eval --run DIR`` — :func:`genlab.training.evaluate`.
* ``genlab config show|validate CONFIG [--set k=v ...]`` — :func:`genlab.training.load_config`.
* ``genlab bench SUITE [options]`` — runs ``experiments/bench_<SUITE>.py``
  (e.g. ``genlab bench samplers --quick``).

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
from typing import Any

__all__ = ["SUBCOMMANDS", "build_parser", "main"]


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=1, default=str))


# ------------------------------------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
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
        )
        print(summary.table())
    print(f"wrote {args.out}/samples.png and {args.out}/summary.json")
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="sampler steps of the --exact demo (default 10)")
    p.add_argument(
        "--train-steps", type=int, default=None, help="training steps (default: the demo config's)"
    )
    p.add_argument("--nfe", type=int, default=20, help="network evaluations per sampler in the comparison")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.set_defaults(func=_cmd_demo)


# ------------------------------------------------------------------------------------------------------ train
def _cmd_train(args: argparse.Namespace) -> int:
    from genlab.training import train

    if args.config is None and not args.resume:
        raise ValueError(
            "give a CONFIG (YAML file), or --resume --out RUN_DIR to continue a run with its saved config"
        )
    result = train(args.config, out=args.out, overrides=args.set, resume=args.resume)
    if result.checkpoint is not None:  # rank 0 only under torchrun
        _print_json(
            {
                "run_dir": str(result.run_dir),
                "step": result.step,
                "loss": result.loss,
                "checkpoint": str(result.checkpoint),
                "seconds": round(result.seconds, 2),
            }
        )
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
    p.set_defaults(func=_cmd_train)


# ----------------------------------------------------------------------------------------------------- sample
def _cmd_sample(args: argparse.Namespace) -> int:
    from genlab.training import sample_run

    res = sample_run(
        args.run,
        sampler=args.sampler,
        steps=args.steps,
        n=args.n,
        seed=args.seed,
        out=args.out,
        ema=not args.raw,
        device=args.device,
        return_trajectory=args.trajectories,
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
    p.add_argument("--steps", type=int, default=None, help="grid steps")
    p.add_argument("--n", type=int, default=None, help="number of samples")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", required=True, help="output .png (picture + .pt tensors) or .pt")
    p.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--trajectories", action="store_true", help="draw trajectories (2-D data)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_sample)


# ------------------------------------------------------------------------------------------------------- eval
def _cmd_eval(args: argparse.Namespace) -> int:
    from genlab.training import evaluate

    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    res = evaluate(
        args.run,
        n=args.n,
        sampler=args.sampler,
        steps=args.steps,
        seed=args.seed,
        metrics=metrics,
        device=args.device,
    )
    _print_json(
        {
            "step": res.step,
            "sampler": res.sampler,
            "steps": res.steps,
            "nfe": res.nfe,
            "n": res.n,
            "metrics": res.metrics,
            "file": str(res.path),
        }
    )
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run against its held-out data (writes <run>/eval.json)")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--n", type=int, default=None, help="number of samples (default: eval.n)")
    p.add_argument("--sampler", default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--metrics", default=None, help="comma-separated subset of sw,mmd,energy,val_loss,mse,psnr"
    )
    p.add_argument("--device", default="cpu")
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


# ------------------------------------------------------------------------------------------------------ bench
def _cmd_bench(args: argparse.Namespace) -> int:
    import runpy
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "experiments"
    script = folder / f"bench_{args.suite}.py"
    if not script.is_file():
        available = (
            sorted(p.stem[len("bench_") :] for p in folder.glob("bench_*.py")) if folder.is_dir() else []
        )
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
    p.add_argument("suite", help="benchmark name: experiments/bench_<suite>.py")
    p.add_argument("args", nargs=argparse.REMAINDER, help="options passed to the benchmark (see its --help)")
    p.set_defaults(func=_cmd_bench)


#: Parser builders, one per sub-command, in help order. ``genlab bench`` plugs in here as ``_add_bench``.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_demo,
    _add_train,
    _add_sample,
    _add_eval,
    _add_config,
    _add_bench,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``genlab`` sub-command."""
    parser = argparse.ArgumentParser(prog="genlab", description=(__doc__ or "").split("\n\n")[0])
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
    except (ValueError, TypeError, FileNotFoundError, ImportError) as err:
        if os.environ.get("GENLAB_DEBUG"):
            raise
        print(f"genlab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
