"""Check two promises of ``genlab train`` end to end, through the command line: bit-for-bit ``--resume`` and DDP.

Everything runs ``python -m genlab train configs/moons_tiny.yaml`` in subprocesses (``OMP_NUM_THREADS=1``),
except the crash case, which needs a hook and uses the Python API (``genlab.training.train(..., hooks=...)``).
Every comparison loads the final checkpoints with ``genlab.training.load_checkpoint`` (``weights_only=True``),
flattens every tensor of ``model``, ``ema``, ``optimizer`` and ``rng`` and compares them with ``torch.equal``;
*bit-equal* = all of them equal, the scheduler state equal (``==``) and the same final step. The logged losses
(``metrics.jsonl``) are compared per step and reported apart: a record is the mean loss since the previous
record *of this session*, so the first record after a resume averages fewer steps when ``log_every`` does not
divide the resume step.

Resume cases (40 steps in total, ``moons_tiny``: warm-up 10 + cosine LR, EMA, clipping, Adam):

* ``cli_resume_after_crash``: a straight 40-step run with ``ckpt_every=20``; a copy of its folder with the
  final checkpoint deleted (what a crash between step 20 and 40 leaves) is continued with
  ``genlab train --out COPY --resume`` (saved config). Expected: bit-equal. ``..._with_config``: the same with
  the YAML and the same ``--set`` overrides repeated. ``cli_resume_with_config_without_overrides``: the YAML
  without the overrides — documents that ``train.steps`` then silently returns to the YAML's value.
* ``api_crash_hook``: the Python API run killed by an exception raised in a hook at step 21, then
  ``train(..., resume=True)``. Expected: bit-equal.
* ``cli_20_then_resume_to_40_cosine``: ``--set train.steps=20``, then ``--resume --set train.steps=40``.
  ``train.steps`` is also the horizon of the cosine LR schedule, so the first 20 steps already decay the LR
  to 0; this is a different run, not a resumed one. Expected: NOT equal (documents the behaviour).
* ``cli_20_then_resume_to_40_constant``: the same with ``train.schedule=constant`` (nothing depends on
  ``train.steps``). Expected: bit-equal.

DDP cases (``torchrun --nproc_per_node 2 -m genlab train ...``, gloo on CPU):

* ``ddp_cli``: the user-facing command; checks exit code, one writer (rank 0: one ``metrics.jsonl`` line per
  record, one checkpoint folder), ``world_size`` = 2 and both ranks' random states in the checkpoint;
* ``ddp_ranks_identical``: this script as the torchrun worker (``--ddp-worker``): ``genlab.training.train`` with a
  hook that saves, at the last step, every rank's parameters, EMA parameters, its first batch indices and a draw
  of its training generator; the parent checks that parameters and EMA are equal across ranks (``torch.equal``)
  while the data shards and the noise differ, and that rank 0's parameters are the checkpoint's;
* ``ddp_resume``: a 2-process run of 40 steps (``ckpt_every=20``) vs a copy with the last checkpoint deleted,
  continued by ``torchrun ... --resume``. Expected: bit-equal.

Writes ``experiments/results/training_resume_ddp.json`` (and prints a summary). About 1–2 min.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
CONFIG = ROOT / "configs" / "moons_tiny.yaml"
COMMON = ["train.device=cpu", "logging.progress=false", "logging.stdout=false"]


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def _run(cmd: list[str], log: list[dict[str, Any]]) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    shown = " ".join(Path(c).name if c == sys.executable else c for c in cmd)
    log.append({"command": shown, "rc": proc.returncode, "seconds": round(time.perf_counter() - t0, 2)})
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {shown}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def genlab_train(
    out: Path, overrides: list[str], log: list[dict[str, Any]], *, resume: bool = False, config: bool = True
) -> None:
    """``python -m genlab train [configs/moons_tiny.yaml] --out OUT [--resume] --set ...``.

    ``config=False`` (with ``resume``) lets the CLI reuse the run folder's saved ``config.yaml``.
    """
    cmd = [sys.executable, "-m", "genlab", "train"] + ([str(CONFIG.relative_to(ROOT))] if config else [])
    cmd += ["--out", str(out)] + (["--resume"] if resume else [])
    _run(cmd + _sets((COMMON if config else []) + overrides), log)


def torchrun(args: list[str], log: list[dict[str, Any]]) -> None:
    """``torchrun --nproc_per_node 2 ARGS`` (as ``python -m torch.distributed.run``)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        *args,
    ]
    _run(cmd, log)


def _tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(_tensors(v, f"{prefix}/{i}"))
    return out


def compare_runs(a: Path, b: Path) -> dict[str, Any]:
    """Compare the final checkpoints (every tensor, torch.equal) and logged losses of two run folders."""
    from genlab.training import load_checkpoint

    ca, cb = load_checkpoint(a), load_checkpoint(b)
    ta = _tensors({k: ca[k] for k in ("model", "ema", "optimizer", "rng")})
    tb = _tensors({k: cb[k] for k in ("model", "ema", "optimizer", "rng")})
    keys = sorted(set(ta) | set(tb))
    unequal = [k for k in keys if k not in ta or k not in tb or not torch.equal(ta[k], tb[k])]
    model_diff = max(
        (float((ca["model"][k].double() - cb["model"][k].double()).abs().max()) for k in ca["model"]),
        default=0.0,
    )

    def losses(run: Path) -> list[tuple[int, float]]:
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        return [(r["step"], r["loss"]) for r in rows]

    la, lb = dict(losses(a)), dict(losses(b))
    common = sorted(set(la) & set(lb))
    return {
        "step": [int(ca["step"]), int(cb["step"])],
        "tensors_compared": len(keys),
        "tensors_equal": len(keys) - len(unequal),
        "unequal_tensors": unequal[:10],
        "all_tensors_equal": not unequal,
        "scheduler_equal": ca["scheduler"] == cb["scheduler"],
        "ema_step": [int(ca["ema"]["step"]), int(cb["ema"]["step"])],
        "max_abs_param_diff": model_diff,
        "logged_steps": [sorted(la), sorted(lb)],
        "logged_loss_equal_at": [s for s in common if la[s] == lb[s]],
        "logged_loss_differs_at": [s for s in common if la[s] != lb[s]],
        "bit_equal": (not unequal)
        and ca["scheduler"] == cb["scheduler"]
        and int(ca["step"]) == int(cb["step"]),
    }


def _drop_last_checkpoint(src: Path, dst: Path) -> int:
    """Copy a run folder and delete its newest checkpoint (a crash after the previous one). Returns the step kept."""
    from genlab.training import CheckpointManager

    shutil.copytree(src, dst)
    manager = CheckpointManager(dst / "checkpoints")
    latest = manager.latest()
    assert latest is not None
    latest.unlink()
    left = manager.latest()
    assert left is not None
    return int(torch.load(left, weights_only=True)["step"])


# ------------------------------------------------------------------------------------------------- DDP worker
def ddp_worker(run_dir: Path, report_dir: Path, overrides: list[str]) -> None:
    """Run under torchrun: train through the Python API and dump this rank's final state."""
    torch.set_num_threads(1)
    from genlab.training import Trainer, load_config, train

    state: dict[str, Any] = {}

    def at_end(trainer: Trainer) -> None:
        if trainer.step == trainer.config.train.steps:
            gen_state = trainer.generator.get_state()
            noise = torch.rand(4, generator=trainer.generator)
            trainer.generator.set_state(gen_state)  # leave the training noise stream untouched
            state.update(
                rank=trainer.engine.rank,
                world_size=trainer.engine.world_size,
                engine=type(trainer.engine).__name__,
                params={k: v.detach().clone() for k, v in trainer.net.state_dict().items()},
                ema={k: v.detach().clone() for k, v in trainer.ema.module.state_dict().items()},
                first_batch=trainer.batches.indices(0).clone(),
                noise=noise,
            )

    cfg = load_config(CONFIG, overrides=COMMON + overrides)
    result = train(cfg, out=run_dir, hooks=[at_end])
    state["checkpoint"] = None if result.checkpoint is None else str(result.checkpoint)
    torch.save(state, report_dir / f"rank{state['rank']}.pt")


# ------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ddp-worker", nargs=2, metavar=("RUN_DIR", "REPORT_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--stem", default="training_resume_ddp")
    args = parser.parse_args(argv)
    if args.ddp_worker:
        ddp_worker(Path(args.ddp_worker[0]), Path(args.ddp_worker[1]), args.set)
        return

    from genlab.training import load_checkpoint, train

    torch.set_num_threads(1)  # the same as the subprocesses' OMP_NUM_THREADS=1
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    log: list[dict[str, Any]] = []
    cases: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="gl_resume_ddp_"))
    try:
        # ---- resume: crash after the step-20 checkpoint, continued by the CLI
        genlab_train(tmp / "straight", ["train.steps=40", "train.ckpt_every=20"], log)
        kept = _drop_last_checkpoint(tmp / "straight", tmp / "crashed")
        genlab_train(tmp / "crashed", [], log, resume=True, config=False)
        cases["cli_resume_after_crash"] = {
            "what": "straight 40 steps (--set train.steps=40 --set train.ckpt_every=20) vs a copy with the step-40 "
            "checkpoint deleted + `genlab train --out COPY --resume` (saved config.yaml)",
            "resumed_from_step": kept,
            "expected_bit_equal": True,
            **compare_runs(tmp / "straight", tmp / "crashed"),
        }
        _drop_last_checkpoint(tmp / "straight", tmp / "crashed_cfg")
        genlab_train(tmp / "crashed_cfg", ["train.steps=40", "train.ckpt_every=20"], log, resume=True)
        cases["cli_resume_after_crash_with_config"] = {
            "what": "the same, continued with `genlab train configs/moons_tiny.yaml --out COPY --resume` and the "
            "same --set overrides repeated",
            "resumed_from_step": kept,
            "expected_bit_equal": True,
            **compare_runs(tmp / "straight", tmp / "crashed_cfg"),
        }
        _drop_last_checkpoint(tmp / "straight", tmp / "crashed_noset")
        genlab_train(tmp / "crashed_noset", [], log, resume=True)
        noset = load_checkpoint(tmp / "crashed_noset")
        cases["cli_resume_with_config_without_overrides"] = {
            "what": "the same, continued with `genlab train configs/moons_tiny.yaml --out COPY --resume` WITHOUT "
            "repeating --set train.steps=40: the YAML is re-read and train.steps / ckpt_every are resumable keys, "
            "so the run silently continues to the YAML's 200 steps",
            "final_step": int(noset["step"]),
            "expected_final_step": 200,
            "ok": int(noset["step"]) == 200,
        }

        # ---- resume: Python API, crash raised in a hook at step 21
        class Crash(RuntimeError):
            pass

        def crash_at_21(trainer: Any) -> None:
            if trainer.step == 21:
                raise Crash

        api_over = COMMON + ["train.steps=40", "train.ckpt_every=20"]
        try:
            train(CONFIG, out=tmp / "api_crash", overrides=api_over, hooks=[crash_at_21])
        except Crash:
            pass
        step_left = int(load_checkpoint(tmp / "api_crash")["step"])
        train(CONFIG, out=tmp / "api_crash", overrides=api_over, resume=True)
        cases["api_crash_hook"] = {
            "what": "genlab.training.train killed by a hook at step 21, then train(..., resume=True)",
            "resumed_from_step": step_left,
            "expected_bit_equal": True,
            **compare_runs(tmp / "straight", tmp / "api_crash"),
        }

        # ---- 20 steps, then --resume to 40 (cosine schedule of the config / constant)
        genlab_train(tmp / "cos20", ["train.steps=20"], log)
        genlab_train(tmp / "cos20", ["train.steps=40"], log, resume=True)
        cases["cli_20_then_resume_to_40_cosine"] = {
            "what": "`--set train.steps=20`, then `--resume --set train.steps=40` (config's warm-up + cosine LR, "
            "whose horizon is train.steps) vs straight 40",
            "expected_bit_equal": False,
            **compare_runs(tmp / "straight", tmp / "cos20"),
        }
        genlab_train(tmp / "const_straight", ["train.steps=40", "train.schedule=constant"], log)
        genlab_train(tmp / "const20", ["train.steps=20", "train.schedule=constant"], log)
        genlab_train(tmp / "const20", ["train.steps=40", "train.schedule=constant"], log, resume=True)
        cases["cli_20_then_resume_to_40_constant"] = {
            "what": "same with `train.schedule=constant` (nothing depends on train.steps)",
            "expected_bit_equal": True,
            **compare_runs(tmp / "const_straight", tmp / "const20"),
        }

        # ---- DDP: the user-facing command
        ddp_over = ["train.steps=40", "train.ckpt_every=20", "train.batch_size=64"]
        torchrun(
            ["-m", "genlab", "train", str(CONFIG.relative_to(ROOT)), "--out", str(tmp / "ddp")]
            + _sets(COMMON + ddp_over),
            log,
        )
        ck = load_checkpoint(tmp / "ddp")
        steps_logged = [
            json.loads(x)["step"] for x in (tmp / "ddp" / "metrics.jsonl").read_text().splitlines()
        ]
        cases["ddp_cli"] = {
            "what": "torchrun --nproc_per_node 2 -m genlab train configs/moons_tiny.yaml (gloo, CPU), 40 steps, "
            "batch 64 per process",
            "checkpoint_world_size": int(ck["world_size"]),
            "checkpoint_rng_states": len(ck["rng"]),
            "logged_steps": steps_logged,
            "single_writer": steps_logged == sorted(set(steps_logged)),
            "run_folder": sorted(p.name for p in (tmp / "ddp").iterdir()),
            "ok": int(ck["world_size"]) == 2
            and len(ck["rng"]) == 2
            and steps_logged == sorted(set(steps_logged)),
        }

        # ---- DDP: both ranks end with identical parameters
        reports = tmp / "reports"
        reports.mkdir()
        torchrun(
            [str(Path(__file__).resolve()), "--ddp-worker", str(tmp / "ddp_worker"), str(reports)]
            + [a for o in ddp_over for a in ("--set", o)],
            log,
        )
        r0 = torch.load(reports / "rank0.pt", weights_only=True)
        r1 = torch.load(reports / "rank1.pt", weights_only=True)
        ck_w = load_checkpoint(tmp / "ddp_worker")
        params_equal = all(torch.equal(r0["params"][k], r1["params"][k]) for k in r0["params"])
        ema_equal = all(torch.equal(r0["ema"][k], r1["ema"][k]) for k in r0["ema"])
        ckpt_equal = all(torch.equal(r0["params"][k], ck_w["model"][k]) for k in r0["params"])
        shards_disjoint = not (set(r0["first_batch"].tolist()) & set(r1["first_batch"].tolist()))
        noise_differs = not torch.equal(r0["noise"], r1["noise"])
        cases["ddp_ranks_identical"] = {
            "what": "2 torchrun workers (genlab.training.train + a final-step hook), 40 steps: parameters per rank",
            "engines": [r0["engine"], r1["engine"]],
            "world_size": int(r0["world_size"]),
            "n_param_tensors": len(r0["params"]),
            "params_equal_across_ranks": params_equal,
            "ema_equal_across_ranks": ema_equal,
            "rank0_params_equal_checkpoint": ckpt_equal,
            "first_batches_disjoint": shards_disjoint,
            "training_noise_differs": noise_differs,
            "checkpoint_written_by": [r0["checkpoint"] is not None, r1["checkpoint"] is not None],
            "ok": params_equal and ema_equal and ckpt_equal and shards_disjoint and noise_differs,
        }

        # ---- DDP resume
        kept = _drop_last_checkpoint(tmp / "ddp", tmp / "ddp_crashed")
        torchrun(
            ["-m", "genlab", "train", "--out", str(tmp / "ddp_crashed"), "--resume"]
            + _sets(["logging.progress=false", "logging.stdout=false"]),
            log,
        )
        cases["ddp_resume"] = {
            "what": "2-process run, 40 steps (ckpt_every=20) vs copy with the step-40 checkpoint deleted + "
            "`torchrun --nproc_per_node 2 -m genlab train --out COPY --resume`",
            "resumed_from_step": kept,
            "expected_bit_equal": True,
            **compare_runs(tmp / "ddp", tmp / "ddp_crashed"),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for name, c in cases.items():
        if "expected_bit_equal" in c:
            c["as_expected"] = c["bit_equal"] == c["expected_bit_equal"]
        else:
            c["as_expected"] = c["ok"]
    res = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "config": str(CONFIG.relative_to(ROOT)),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "omp_num_threads": 1,
            "cpus": os.cpu_count(),
            "load_start": list(load_start),
            "load_end": list(os.getloadavg()),
            "total_wall_seconds": time.perf_counter() - t_start,
            "all_as_expected": all(c["as_expected"] for c in cases.values()),
        },
        "cases": cases,
        "commands": log,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.stem}.json"
    from genlab.utils import atomic_write

    with atomic_write(path, "w") as fh:
        json.dump(res, fh, indent=1)
    for name, c in cases.items():
        detail = (
            f"bit_equal={c['bit_equal']} ({c['tensors_equal']}/{c['tensors_compared']} tensors, "
            f"max |Δθ| {c['max_abs_param_diff']:.3g})"
            if "bit_equal" in c
            else f"ok={c['ok']}"
        )
        print(f"{name:38s} {detail}  as expected: {c['as_expected']}")
    print(f"wrote {path} ({res['meta']['total_wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
