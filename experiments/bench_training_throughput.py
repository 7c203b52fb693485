"""Training throughput of the 2-D MLP loop: genlab vs Meta's ``flow_matching`` example loop, in one process.

Same network, same batch, same loss family, same optimiser on both sides:

* network: ``genlab.models.TimeMLP(2, hidden=256, depth=3)`` (the ``moons_si`` size, 134k parameters), one
  initialisation copied to every variant; batch 512 drawn from the same 20 000 moons points
  (``genlab.data.get_dataset("moons", n=20000, seed=0)``); AdamW, lr 2e-3;
* loss: conditional-OT flow matching, ``x_t = (1 − t)·x0 + t·x1`` with ``x0 ~ N(0, I)``, velocity target
  ``x1 − x0``, squared error. genlab: ``RectifiedFlow`` / the run's ``Objective`` (``Interpolant.loss`` =
  ``½·mean``); flow_matching: ``AffineProbPath(CondOTScheduler())``, ``path.sample(x_0, x_1, t).dx_t`` and
  ``(v − dx_t)².mean()`` as in its 2-D example notebook. The factor ½ does not change the cost.

Variants (one optimiser step each = batch draw + path sample + forward + loss + backward + AdamW step):

* ``genlab_interpolant``: ``sample_times`` + ``RectifiedFlow().sample(None, x1, t, generator=g)`` +
  ``Interpolant.loss``; noise drawn per sample from a generator (genlab's batch-size-invariant noise);
* ``genlab_interpolant_nogen``: the same with ``generator=None`` (plain ``torch.randn``): isolates the cost of
  the per-sample noise loop (``genlab.utils.randn_per_sample``);
* ``genlab_objective``: ``genlab.training.Objective`` (coupling + times + path + ``Field`` + loss +
  finiteness check), as the Trainer calls it, without clipping/EMA;
* ``flow_matching``: the library's example loop (global RNG, ``torch.rand``/``torch.randn_like``);
* ``genlab_objective_batched_noise`` (diagnostic): ``genlab_objective`` with genlab's per-sample noise draw
  replaced, inside this process only, by one batched ``torch.randn`` call (``unittest.mock``; genlab unchanged).

Full loops (N steps from a fresh optimiser, wall time of the loop):

* ``genlab_trainer_default``: ``genlab.training.Trainer.fit`` with EMA (every step), grad-norm clipping (1.0),
  warm-up + cosine LR, ``log_every=50`` (JSON lines on), ``ckpt_every=500`` (+ final checkpoint), progress bar
  and stdout off;
* ``genlab_trainer_lean``: the same Trainer with JSON lines off, one log record, only the final checkpoint
  (EMA, clipping and LR schedule cannot be switched off in the Trainer);
* ``genlab_trainer_lean_batched_noise`` (diagnostic): the lean Trainer with the batched noise draw;
* ``fm_example_loop``: flow_matching's example loop (no EMA, no clipping, no schedule, no logging);
* ``fm_loop_with_extras``: the flow_matching loop plus what the Trainer does, written by hand: clipping 1.0,
  the same LR schedule, an EMA (``torch._foreach_lerp_``) every step, ``loss.item()`` every step, a JSON line
  every 50 steps and a ``torch.save`` checkpoint (model + EMA + optimiser) every 500 steps and at the end;
* ``fm_loop_with_extras_fused`` (diagnostic): the same with ``AdamW(fused=True)``, the optimiser genlab's
  Trainer picks (``genlab.training.fastpath.make_adamw``), so that row pair compares the rest of the step.

Headline (``paired_loops``): one default ``Trainer.fit`` whose hook runs, every 25 Trainer steps, 25 steps of one of
the flow_matching loops (example / + extras / + extras + fused AdamW, in turn, each persistent). Each Trainer block is
paired with the flow_matching block right after it (CPU time between hook calls vs inside the hook), so both see the
same load of the shared machine; reported: the median per-block ratio with a bootstrap 95 % interval and the ratio
of the summed times. The separate runs below spread by ±15 % per round on this machine; the pairing removes most of
that.

Protocol of the separate runs: ``torch.set_num_threads(1)``; times are CPU seconds of the process (``time.process_time``, robust to
other jobs on a shared machine; ``--clock wall`` for elapsed seconds); warm-up, then the rounds; in each round every variant runs
once, the order alternating between rounds (interleaved, so load changes of the shared machine hit all variants
alike). Reported: median steps/s per variant, and per pair the median over rounds of the per-round ratio
genlab/flow_matching (> 1: genlab faster) with its min–max.

Run: ``python experiments/bench_training_throughput.py [--quick]``. Writes
``experiments/results/training_throughput.{json,md,png}``. About 5 min on 2 idle CPU cores (paired part: 6000 Trainer
steps + 6000 flow_matching steps, ≈ 90 s), 10–15 min while other jobs share them.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from torch import Tensor, nn

from genlab.data import get_dataset
from genlab.interpolants import RectifiedFlow
from genlab.models import TimeMLP
from genlab.training import (
    InterpolantObjective,
    Trainer,
    build_components,
    load_config,
    lr_factor,
    make_field,
    sample_times,
)
from genlab.utils import atomic_write
from genlab.viz import require_matplotlib, save_figure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
BATCH = 512
#: The clock of every timing (set by ``--clock``): ``time.process_time`` (CPU seconds of this process: not the
#: time spent waiting for a core on a shared machine) or ``time.perf_counter`` (wall seconds).
CLOCK: dict[str, Any] = {"name": "cpu", "fn": time.process_time}
HIDDEN, DEPTH = 256, 3
LR = 2e-3
N_DATA = 20_000
#: Config of the genlab runs (the moons_si budget/optimiser settings on the rectified-flow path).
RUN_CONFIG: dict[str, Any] = {
    "name": "throughput",
    "data": {"name": "moons", "n": N_DATA, "seed": 0, "test_fraction": 0.1},
    "interpolant": {"name": "rectified_flow"},
    "coupling": {"name": "independent"},
    "model": {"name": "mlp", "kind": "velocity", "hidden": HIDDEN, "depth": DEPTH},
    "train": {
        "batch_size": BATCH,
        "lr": LR,
        "warmup": 100,
        "schedule": "cosine",
        "ema_decay": 0.999,
        "grad_clip": 1.0,
        "device": "cpu",
        "sample_every": 0,
        "eval_every": 0,
    },
    "logging": {"progress": False, "stdout": False},
}


def _flow_matching() -> dict[str, Any]:
    try:
        import flow_matching
        from flow_matching.path import AffineProbPath
        from flow_matching.path.scheduler import CondOTScheduler
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise SystemExit(
            "this benchmark needs flow_matching: pip install -c constraints-bench.txt 'flow_matching>=1.0.10,<1.1' "
            f"({err})"
        ) from None
    return {
        "path": AffineProbPath(scheduler=CondOTScheduler()),
        "version": getattr(flow_matching, "__version__", "unknown"),
    }


# ------------------------------------------------------------------------------------------------- diagnostic
@contextlib.contextmanager
def batched_noise() -> Iterator[None]:
    """DIAGNOSTIC ONLY (genlab is not changed): inside this block the independent coupling and the interpolant
    draw their Gaussian noise with one ``torch.randn`` call from the same generator instead of
    ``genlab.utils.randn_like_per_sample`` (one call per row). Measures what the per-sample draw costs."""
    from genlab.couplings import independent
    from genlab.interpolants import interpolant

    def batched(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        dev = generator.device if generator is not None else x.device
        return torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)

    with (
        mock.patch.object(independent, "randn_like_per_sample", batched),
        mock.patch.object(interpolant, "randn_like_per_sample", batched),
    ):
        yield


# ------------------------------------------------------------------------------------------------- bare steps
class StepVariant:
    """A named optimiser-step closure with its own copy of the network and optimiser."""

    def __init__(
        self,
        name: str,
        net: nn.Module,
        make_step: Callable[[nn.Module, torch.optim.Optimizer], Callable[[], Tensor]],
        *,
        context: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
    ):
        self.name = name
        self.net = net
        self.opt = torch.optim.AdamW(net.parameters(), lr=LR)
        self.step = make_step(net, self.opt)
        self.context = context

    def time(self, n: int) -> float:
        """Seconds for ``n`` steps."""
        with self.context():
            t0 = CLOCK["fn"]()
            for _ in range(n):
                self.step()
            return CLOCK["fn"]() - t0


def bare_variants(init: nn.Module, data: Tensor, fm_path: Any) -> list[StepVariant]:
    """The four bare-step variants, each on a copy of ``init``."""
    rf = RectifiedFlow()
    n = data.shape[0]

    def genlab_interp(use_gen: bool) -> Callable[[nn.Module, torch.optim.Optimizer], Callable[[], Tensor]]:
        def make(net: nn.Module, opt: torch.optim.Optimizer) -> Callable[[], Tensor]:
            gen = torch.Generator().manual_seed(0) if use_gen else None

            def step() -> Tensor:
                idx = torch.randint(n, (BATCH,), generator=gen)
                x1 = data[idx]
                t = sample_times(BATCH, generator=gen, device=x1.device)
                ps = rf.sample(None, x1, t, generator=gen)
                loss = rf.loss(net(ps.x_t, ps.t.to(x1.dtype)), ps, "velocity")
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                return loss

            return step

        return make

    cfg = load_config(RUN_CONFIG)
    with torch.random.fork_rng(devices=[]):
        comps = build_components(cfg)
    objective = InterpolantObjective(cfg, comps)

    def genlab_objective(net: nn.Module, opt: torch.optim.Optimizer) -> Callable[[], Tensor]:
        gen = torch.Generator().manual_seed(0)
        fld = make_field(net, cfg, comps)
        fld.train()

        def step() -> Tensor:
            idx = torch.randint(n, (BATCH,), generator=gen)
            out = objective(fld, data[idx], generator=gen)
            out.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return out.loss

        return step

    def flow_matching(net: nn.Module, opt: torch.optim.Optimizer) -> Callable[[], Tensor]:
        def step() -> Tensor:
            x_1 = data[torch.randint(n, (BATCH,))]
            x_0 = torch.randn_like(x_1)
            t = torch.rand(x_1.shape[0])
            ps = fm_path.sample(t=t, x_0=x_0, x_1=x_1)
            loss = torch.pow(net(ps.x_t, ps.t) - ps.dx_t, 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        return step

    return [
        StepVariant("genlab_interpolant", copy.deepcopy(init), genlab_interp(True)),
        StepVariant("genlab_interpolant_nogen", copy.deepcopy(init), genlab_interp(False)),
        StepVariant("genlab_objective", copy.deepcopy(init), genlab_objective),
        StepVariant(
            "genlab_objective_batched_noise", copy.deepcopy(init), genlab_objective, context=batched_noise
        ),
        StepVariant("flow_matching", copy.deepcopy(init), flow_matching),
    ]


# ------------------------------------------------------------------------------------------------- full loops
def genlab_trainer(init: nn.Module, steps: int, *, lean: bool, noise_batched: bool = False) -> float:
    """Seconds of ``Trainer.fit`` for ``steps`` steps from ``init``'s weights (fresh run folder)."""
    overrides = [f"train.steps={steps}"]
    if lean:
        overrides += [f"train.log_every={steps}", "train.ckpt_every=0", "logging.jsonl=false"]
    else:
        overrides += ["train.log_every=50", "train.ckpt_every=500", "logging.jsonl=true"]
    run_dir = Path(tempfile.mkdtemp(prefix="glthr_"))
    try:
        trainer = Trainer(load_config(RUN_CONFIG, overrides=overrides), run_dir / "run")
        trainer.net.load_state_dict(init.state_dict())
        trainer.ema.module.load_state_dict(init.state_dict())
        with batched_noise() if noise_batched else contextlib.nullcontext():
            t0 = CLOCK["fn"]()
            result = trainer.fit()
            cpu = CLOCK["fn"]() - t0
        assert result.step == steps
        # wall: TrainResult.seconds (the loop); cpu: the whole fit() call (also lock, folder set-up, tracker)
        return result.seconds if CLOCK["name"] == "wall" else cpu
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


class FMLoop:
    """flow_matching's example loop, run in blocks of steps (``run(k)``) so it can be timed beside the Trainer.

    ``extras``: + clipping 1.0, the Trainer's LR schedule over ``steps``, an EMA (``torch._foreach_lerp_``),
    ``loss.item()`` every step, a JSON line every 50 steps and a ``torch.save`` checkpoint every 500 steps and at
    ``steps``; ``fused``: PyTorch's fused AdamW kernel instead of its CPU default, the single-tensor loop.
    """

    def __init__(
        self, init: nn.Module, data: Tensor, fm_path: Any, steps: int, run_dir: Path, *, extras: bool,
        fused: bool = False,
    ) -> None:
        self.net = copy.deepcopy(init)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=LR, fused=True if fused else None)
        self.data, self.path, self.steps, self.run_dir, self.extras = data, fm_path, steps, run_dir, extras
        self.it = 0
        if extras:
            self.sched = torch.optim.lr_scheduler.LambdaLR(
                self.opt, lambda s: lr_factor(s, steps=steps, warmup=100, schedule="cosine")
            )
            self.ema = [p.detach().clone() for p in self.net.parameters()]
            self.log = open(run_dir / "metrics.jsonl", "w")  # noqa: SIM115 - closed by close()

    def run(self, k: int) -> None:
        """``k`` more steps."""
        net, opt, data, n = self.net, self.opt, self.data, self.data.shape[0]
        for _ in range(k):
            self.it += 1
            it = self.it
            x_1 = data[torch.randint(n, (BATCH,))]
            x_0 = torch.randn_like(x_1)
            t = torch.rand(x_1.shape[0])
            ps = self.path.sample(t=t, x_0=x_0, x_1=x_1)
            loss = torch.pow(net(ps.x_t, ps.t) - ps.dx_t, 2).mean()
            opt.zero_grad()
            loss.backward()
            if self.extras:
                gn = torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            if self.extras:
                self.sched.step()
                d = min(0.999, 1.0 - (1.0 + it - 1) ** (-2.0 / 3.0))
                torch._foreach_lerp_(self.ema, [p.detach() for p in net.parameters()], 1.0 - d)
                val = loss.item()
                if it % 50 == 0 or it == self.steps:
                    self.log.write(json.dumps({"step": it, "loss": val, "grad_norm": float(gn)}) + "\n")
                    self.log.flush()
                if it % 500 == 0 or it == self.steps:
                    torch.save(
                        {"model": net.state_dict(), "ema": self.ema, "optimizer": opt.state_dict(), "step": it},
                        self.run_dir / f"ckpt_{it:08d}.pt",
                    )

    def close(self) -> None:
        if self.extras:
            self.log.close()


def fm_loop(
    init: nn.Module, data: Tensor, fm_path: Any, steps: int, *, extras: bool, fused: bool = False
) -> float:
    """Seconds of ``steps`` steps of the flow_matching example loop (see :class:`FMLoop`) from a fresh optimiser."""
    run_dir = Path(tempfile.mkdtemp(prefix="fmthr_"))
    try:
        loop = FMLoop(init, data, fm_path, steps, run_dir, extras=extras, fused=fused)
        t0 = CLOCK["fn"]()
        loop.run(steps)
        seconds = CLOCK["fn"]() - t0
        loop.close()
        return seconds
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


#: The flow_matching loops paired with the Trainer in :func:`paired_loops` (name -> (extras, fused)).
PAIRED_FM = {
    "fm_example_loop": (False, False),
    "fm_loop_with_extras": (True, False),
    "fm_loop_with_extras_fused": (True, True),
}


def paired_loops(init: nn.Module, data: Tensor, fm_path: Any, *, steps: int, block: int) -> dict[str, Any]:
    """One default ``Trainer.fit`` of ``steps`` steps whose hook runs, every ``block`` Trainer steps, ``block``
    steps of one flow_matching loop (the three of :data:`PAIRED_FM` in turn, each a persistent loop).

    Each Trainer block (the CPU time between two hook calls: its steps with their logging and checkpoints) is
    paired with the flow_matching block run right after it, so both see the same state of the shared machine.
    The first block (it holds the Trainer's set-up) is dropped.

    Returns:
        ``{name: {"genlab": [seconds per block], "fm": [seconds per block]}}``.
    """
    names = list(PAIRED_FM)
    n_blocks = steps // block
    per_loop = {name: block * len(range(i, n_blocks, len(names))) for i, name in enumerate(names)}
    out: dict[str, dict[str, list[float]]] = {name: {"genlab": [], "fm": []} for name in names}
    with contextlib.ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="glpair_"))
        stack.callback(shutil.rmtree, root, True)
        loops = {}
        for name, (extras, fused) in PAIRED_FM.items():
            (root / name).mkdir()
            loops[name] = FMLoop(init, data, fm_path, per_loop[name], root / name, extras=extras, fused=fused)
            stack.callback(loops[name].close)
        overrides = [f"train.steps={n_blocks * block}", "train.log_every=50", "train.ckpt_every=500"]
        trainer = Trainer(load_config(RUN_CONFIG, overrides=overrides), root / "run")
        trainer.net.load_state_dict(init.state_dict())
        trainer.ema.module.load_state_dict(init.state_dict())
        last_exit: list[float] = []

        def hook(tr: Trainer) -> None:
            if tr.step % block:
                return
            enter = CLOCK["fn"]()
            b = tr.step // block - 1
            name = names[b % len(names)]
            loops[name].run(block)
            leave = CLOCK["fn"]()
            if last_exit:  # block 0 also holds fit()'s set-up: not paired
                out[name]["genlab"].append(enter - last_exit[0])
                out[name]["fm"].append(leave - enter)
            last_exit[:] = [leave]
            return

        trainer.hooks.append(hook)
        trainer.fit()
    return out


def _paired_stats(pairs: dict[str, list[float]], *, seed: int = 0, n_boot: int = 2000) -> dict[str, float]:
    """Per-block ratios fm/genlab seconds (> 1: genlab faster): median with a bootstrap 95 % interval, and the
    ratio of the summed times."""
    r = [f / g for f, g in zip(pairs["fm"], pairs["genlab"])]
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(r), (n_boot, len(r)), generator=gen)
    meds = torch.tensor(r, dtype=torch.float64)[idx].median(dim=1).values.sort().values
    return {
        "median": statistics.median(r),
        "lo": float(meds[int(0.025 * n_boot)]),
        "hi": float(meds[int(0.975 * n_boot) - 1]),
        "total": sum(pairs["fm"]) / sum(pairs["genlab"]),
        "blocks": len(r),
    }


# ------------------------------------------------------------------------------------------------- reporting
def _ratio_stats(num: list[float], den: list[float]) -> dict[str, float]:
    """Per-round ratios ``den_time / num_time`` (= num steps/s ÷ den steps/s): median, min, max."""
    r = [d / n for n, d in zip(num, den)]
    return {"median": statistics.median(r), "min": min(r), "max": max(r), "rounds": len(r)}


def markdown(res: dict[str, Any]) -> str:
    meta = res["meta"]
    lines = [
        "# Training throughput: genlab vs flow_matching (2-D MLP, conditional-OT flow matching)",
        "",
        (
            f"Generated by `experiments/bench_training_throughput.py {meta['argv']}` ({meta['date']}, "
            f"{meta['total_wall_seconds']:.0f} s). torch {meta['torch']}, flow_matching {meta['flow_matching']}, "
            f"**torch threads = 1**, {meta['cpus']} CPU cores shared with other jobs (load average "
            f"{meta['load_start'][0]:.1f} → {meta['load_end'][0]:.1f}): absolute steps/s are those of a loaded "
            "machine; the ratios are per round of interleaved runs. **Clock: "
            + ("CPU seconds of the process** (`time.process_time`: the time a job waits for a core on the shared "
               "machine is not counted, so the ratios compare the work done; on an idle machine it equals wall "
               "time for these one-thread loops; `--clock wall` for elapsed time)."
               if meta.get("clock", "wall") == "cpu" else "wall seconds** (`time.perf_counter`).")
        ),
        "",
        (
            f"* Model: TimeMLP(2, hidden={HIDDEN}, depth={DEPTH}), {meta['n_params']} parameters, batch {BATCH}, "
            f"AdamW lr {LR}; same initial weights everywhere; data: {N_DATA} moons points."
        ),
        "* Loss: x_t = (1 − t)·x0 + t·x1, target x1 − x0, squared error (genlab: ½·mean, flow_matching: mean).",
        (
            f"* Bare steps: {meta['bare_steps']} steps per variant per round, {meta['bare_rounds']} rounds, after "
            f"{meta['warmup']} warm-up steps each. Full loops: {meta['loop_steps']} steps per run, "
            f"{meta['loop_rounds']} rounds (a fresh optimiser / Trainer / run folder each time; Trainer construction "
            "not timed, its final checkpoint is)."
        ),
        "",
        "## Headline: the Trainer beside flow_matching's loops, interleaved block by block",
        "",
        (
            f"One default `Trainer.fit` of {meta['paired_steps']} steps (EMA, clipping, cosine LR, a JSON line every "
            f"50 steps, a checkpoint every 500); a Trainer hook runs, after every {meta['paired_block']} Trainer "
            f"steps, {meta['paired_block']} steps of one flow_matching loop (the three in turn, each a persistent "
            "loop with its own network and optimiser). Each Trainer block (the CPU time between two hook calls) is "
            "paired with the flow_matching block right after it, so both run under the same load of the shared "
            "machine, which the separate runs below cannot ensure (their per-round ratios spread by ±15 %). "
            "Ratio = flow_matching seconds / genlab seconds for the same number of steps (> 1: genlab faster)."
        ),
        "",
        "| genlab Trainer (default) vs | median ratio per block | 95 % interval (bootstrap) | ratio of totals | blocks |",
        "|---|---|---|---|---|",
    ]
    labels = {
        "fm_example_loop": "flow_matching example loop (no EMA/clip/schedule/logging; PyTorch's default AdamW)",
        "fm_loop_with_extras": "flow_matching loop + the same extras (clip, cosine LR, EMA, loss read, jsonl, ckpt)",
        "fm_loop_with_extras_fused": "the same + fused AdamW (genlab's optimiser choice)",
    }
    for name, r in res.get("paired", {}).items():
        lines.append(
            f"| {labels.get(name, name)} | **{r['median']:.3f}** | {r['lo']:.3f}–{r['hi']:.3f} | {r['total']:.3f} "
            f"| {r['blocks']} |"
        )
    if not res["variants"]:
        return "\n".join(lines + [""])
    lines += [
        "",
        "## Steps per second, separate runs (median over rounds)",
        "",
        "| variant | what it does | steps/s | ms/step |",
        "|---|---|---|---|",
    ]
    for name, row in res["variants"].items():
        lines.append(
            f"| {name} | {row['what']} | {row['steps_per_s']:.1f} | {1000 / row['steps_per_s']:.2f} |"
        )
    lines += [
        "",
        "## Ratios genlab / flow_matching (steps/s; > 1 = genlab faster), median [min–max] over rounds",
        "",
        "| comparison | ratio |",
        "|---|---|",
    ]
    for name, r in res["ratios"].items():
        lines.append(f"| {name} | **{r['median']:.2f}** [{r['min']:.2f}–{r['max']:.2f}] |")
    lines += (
        ["", "## Notes", ""]
        + [f"* {n}" for n in res["notes"]]
        + ["", "![throughput](training_throughput.png)", ""]
    )
    return "\n".join(lines)


def figure(res: dict[str, Any], path: Path) -> Path:
    plt = require_matplotlib()
    names = list(res["variants"])
    fig, ax = plt.subplots(figsize=(8, 3.8))
    colors = ["tab:blue" if n.startswith("genlab") else "tab:orange" for n in names]
    vals = [res["variants"][n]["steps_per_s"] for n in names]
    ax.barh(range(len(names)), vals, color=colors)
    for i, n in enumerate(names):
        samples = res["variants"][n]["steps_per_s_rounds"]
        ax.plot(samples, [i] * len(samples), "k.", ms=3)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("steps / s (1 thread, median; dots: rounds)")
    ax.set_title(
        "TimeMLP 2-D, batch 512, CondOT flow matching: genlab (blue) vs flow_matching (orange)", fontsize=9
    )
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--stem", default="training_throughput")
    parser.add_argument("--bare-rounds", type=int, default=None, help="rounds of bare steps (default 9; quick 3)")
    parser.add_argument("--loop-rounds", type=int, default=None, help="rounds of full loops (default 12; quick 2)")
    parser.add_argument("--paired-steps", type=int, default=None,
                        help="Trainer steps of the paired run (default 6000; quick 300)")
    parser.add_argument("--paired-block", type=int, default=25, help="steps per paired block (default 25)")
    parser.add_argument("--only-paired", action="store_true",
                        help="only the paired Trainer/flow_matching run (e.g. to compare two genlab versions)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: CPU seconds of this process (robust on a shared machine); wall: elapsed seconds")
    args = parser.parse_args(argv)
    CLOCK.update(name=args.clock, fn=time.process_time if args.clock == "cpu" else time.perf_counter)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    warmup, bare_steps, bare_rounds = (10, 30, 3) if args.quick else (30, 100, 9)
    loop_steps, loop_rounds = (100, 2) if args.quick else (300, 12)
    bare_rounds = args.bare_rounds or bare_rounds
    loop_rounds = args.loop_rounds or loop_rounds
    paired_steps = args.paired_steps or (300 if args.quick else 6000)
    if args.only_paired:
        bare_rounds = loop_rounds = 0
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    fm = _flow_matching()
    data = get_dataset("moons", n=N_DATA, seed=0).tensors[0].float()
    torch.manual_seed(0)
    init = TimeMLP(2, hidden=HIDDEN, depth=DEPTH)

    # bare steps
    variants = bare_variants(init, data, fm["path"])
    for v in variants if bare_rounds else []:
        v.time(warmup)
    bare: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(bare_rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for v in order:
            bare[v.name].append(v.time(bare_steps))
        print(
            f"bare round {r + 1}/{bare_rounds}: "
            + ", ".join(f"{k} {bare_steps / s[-1]:.1f}/s" for k, s in bare.items()),
            file=sys.stderr,
            flush=True,
        )

    # full loops
    loops: dict[str, Callable[[], float]] = {
        "genlab_trainer_default": lambda: genlab_trainer(init, loop_steps, lean=False),
        "genlab_trainer_lean": lambda: genlab_trainer(init, loop_steps, lean=True),
        "genlab_trainer_lean_batched_noise": lambda: genlab_trainer(
            init, loop_steps, lean=True, noise_batched=True
        ),
        "fm_example_loop": lambda: fm_loop(init, data, fm["path"], loop_steps, extras=False),
        "fm_loop_with_extras": lambda: fm_loop(init, data, fm["path"], loop_steps, extras=True),
        "fm_loop_with_extras_fused": lambda: fm_loop(init, data, fm["path"], loop_steps, extras=True, fused=True),
    }
    if loop_rounds:
        genlab_trainer(init, 20, lean=False)  # warm-up (imports, allocator, first checkpoint write)
        fm_loop(init, data, fm["path"], 20, extras=True)
    full: dict[str, list[float]] = {k: [] for k in loops}
    names = list(loops)
    for r in range(loop_rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            full[k].append(loops[k]())
        print(
            f"loop round {r + 1}/{loop_rounds}: "
            + ", ".join(f"{k} {loop_steps / s[-1]:.1f}/s" for k, s in full.items()),
            file=sys.stderr,
            flush=True,
        )

    # paired: the Trainer and the flow_matching loops interleaved in blocks of steps within one process
    paired = paired_loops(init, data, fm["path"], steps=paired_steps, block=args.paired_block)
    paired_out = {name: _paired_stats(pairs) for name, pairs in paired.items()}
    print(
        "paired: " + ", ".join(f"{k} {v['median']:.3f} [{v['lo']:.3f}-{v['hi']:.3f}]" for k, v in paired_out.items()),
        file=sys.stderr,
        flush=True,
    )

    what = {
        "genlab_interpolant": "sample_times + RectifiedFlow.sample(generator) + Interpolant.loss + AdamW",
        "genlab_interpolant_nogen": "same, generator=None (batched torch.randn noise)",
        "genlab_objective": "genlab.training.Objective (coupling, times, path, Field, loss, finite check) + AdamW",
        "flow_matching": "flow_matching example step: AffineProbPath(CondOT).sample + MSE + AdamW",
        "genlab_trainer_default": "Trainer.fit: EMA, clip, cosine LR, jsonl every 50, ckpt every 500 + final",
        "genlab_trainer_lean": "Trainer.fit: EMA, clip, cosine LR, 1 record, no jsonl, final ckpt only",
        "genlab_trainer_lean_batched_noise": "DIAGNOSTIC: the lean Trainer with the noise drawn in one randn call",
        "genlab_objective_batched_noise": "DIAGNOSTIC: genlab_objective with the noise drawn in one randn call",
        "fm_example_loop": "flow_matching example loop (no EMA/clip/schedule/logging)",
        "fm_loop_with_extras": "flow_matching loop + clip, cosine LR, EMA, loss.item(), jsonl/50, ckpt/500 + final",
        "fm_loop_with_extras_fused": "DIAGNOSTIC: fm_loop_with_extras with fused AdamW (genlab's optimiser choice)",
    }
    variants_out: dict[str, Any] = {}
    for k, secs in (bare if bare_rounds else {}).items():
        rates = [bare_steps / s for s in secs]
        variants_out[k] = {
            "what": what[k],
            "steps_per_s": statistics.median(rates),
            "steps_per_s_rounds": rates,
        }
    for k, secs in (full if loop_rounds else {}).items():
        rates = [loop_steps / s for s in secs]
        variants_out[k] = {
            "what": what[k],
            "steps_per_s": statistics.median(rates),
            "steps_per_s_rounds": rates,
        }
    ratios = {} if not (bare_rounds and loop_rounds) else {
        "bare step: genlab Interpolant (per-sample noise) / flow_matching": _ratio_stats(
            bare["genlab_interpolant"], bare["flow_matching"]
        ),
        "bare step: genlab Interpolant (generator=None) / flow_matching": _ratio_stats(
            bare["genlab_interpolant_nogen"], bare["flow_matching"]
        ),
        "bare step: genlab Objective / flow_matching": _ratio_stats(
            bare["genlab_objective"], bare["flow_matching"]
        ),
        "DIAGNOSTIC bare step: genlab Objective with batched noise / flow_matching": _ratio_stats(
            bare["genlab_objective_batched_noise"], bare["flow_matching"]
        ),
        "full loop: genlab Trainer (default logging/ckpt) / flow_matching example loop": _ratio_stats(
            full["genlab_trainer_default"], full["fm_example_loop"]
        ),
        "full loop: genlab Trainer (lean) / flow_matching example loop": _ratio_stats(
            full["genlab_trainer_lean"], full["fm_example_loop"]
        ),
        "full loop: genlab Trainer (default) / flow_matching loop + same extras": _ratio_stats(
            full["genlab_trainer_default"], full["fm_loop_with_extras"]
        ),
        "full loop: genlab Trainer (lean) / flow_matching loop + same extras": _ratio_stats(
            full["genlab_trainer_lean"], full["fm_loop_with_extras"]
        ),
        "DIAGNOSTIC full loop: genlab Trainer (lean, batched noise) / flow_matching loop + same extras": (
            _ratio_stats(full["genlab_trainer_lean_batched_noise"], full["fm_loop_with_extras"])
        ),
        "DIAGNOSTIC full loop: genlab Trainer (lean) / flow_matching loop + same extras + fused AdamW": (
            _ratio_stats(full["genlab_trainer_lean"], full["fm_loop_with_extras_fused"])
        ),
    }
    per_sample_ms = (
        1000
        * (
            statistics.median(bare["genlab_interpolant"])
            - statistics.median(bare["genlab_interpolant_nogen"])
        )
        / bare_steps
        if bare_rounds
        else math.nan
    )
    notes = [
        (
            f"Per-sample noise (genlab.utils.randn_per_sample: a vectorised Box–Muller transform of per-row "
            f"uniforms, so sample i depends only on (seed, i) whatever the batch size) costs ≈ {per_sample_ms:.2f} ms "
            f"per step at batch {BATCH} here (genlab_interpolant − genlab_interpolant_nogen; a value below zero "
            "means the difference is within the round-to-round noise)."
        ),
        (
            "The Trainer's step uses genlab.training.fastpath: fused AdamW where PyTorch has the kernel (CPU "
            "included; PyTorch's CPU default, used by the flow_matching rows, is the single-tensor loop), called "
            "directly for a plain fused AdamW (fastpath.optimizer_step: the two calls AdamW.step makes, bit for bit, "
            "without its per-call bookkeeping), a multi-tensor gradient clip equal bit for bit to "
            "clip_grad_norm_, a one-pass EMA update (torch._foreach_lerp_, as torch.optim.swa_utils does) with "
            "cached tensor pairs, gradients dropped without zero_grad's profiler scope, a cached train-mode check, "
            "and epoch permutations built on the tensor (StepBatches.epoch_order: DistributedSampler's order "
            "without its Python list). The `fm_loop_with_extras_fused` row gives the flow_matching loop the same "
            "optimiser, so the remaining difference is the rest of the step."
        ),
        (
            "genlab's Trainer always keeps an EMA, clips the gradient norm, steps an LR scheduler and syncs the loss "
            "to a Python float every step; the `fm_loop_with_extras` row adds the same work to the flow_matching loop."
        ),
        (
            "DIAGNOSTIC rows patch genlab.couplings.independent / genlab.interpolants.interpolant's "
            "`randn_like_per_sample` inside this process only (unittest.mock) to one batched torch.randn call "
            "from the same generator; genlab itself is unchanged. They show how much of the gap the per-sample "
            "noise explains."
        ),
        (
            "Trainer timings are TrainResult.seconds (the training loop including its checkpoint writes); building the "
            "Trainer (data split, network, config checks) is not timed."
        ),
    ]
    res = {
        "meta": {
            "argv": " ".join(sys.argv[1:] if argv is None else argv),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "torch": torch.__version__,
            "flow_matching": fm["version"],
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "load_start": list(load_start),
            "load_end": list(os.getloadavg()),
            "warmup": warmup,
            "bare_steps": bare_steps,
            "bare_rounds": bare_rounds,
            "loop_steps": loop_steps,
            "loop_rounds": loop_rounds,
            "paired_steps": paired_steps,
            "paired_block": args.paired_block,
            "clock": args.clock,
            "batch": BATCH,
            "n_params": sum(p.numel() for p in init.parameters()),
            "total_wall_seconds": time.perf_counter() - t_start,
        },
        "paired": paired_out,
        "variants": variants_out,
        "ratios": ratios,
        "raw_seconds": {"bare": bare, "loops": full, "paired": paired},
        "notes": notes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    png = figure(res, args.out / f"{args.stem}.png") if variants_out else None
    with atomic_write(args.out / f"{args.stem}.json", "w") as fh:
        json.dump(res, fh, indent=1)
    with atomic_write(args.out / f"{args.stem}.md", "w") as fh:
        fh.write(markdown(res))
    print(markdown(res))
    print(f"wrote {args.out / args.stem}.{{json,md}}" + (f" and {png}" if png else ""))


if __name__ == "__main__":
    main()
