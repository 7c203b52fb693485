"""Multimarginal generative modeling end to end (Albergo, Boffi, Lindsey & Vanden-Eijnden, ICLR'24, arXiv:2310.03695).

* :class:`MultimarginalObjective` (registered as ``objective: {name: multimarginal}``) trains one simplex network
  with K + 1 heads g_k(a, x) = E[x_k | x(a) = x] through the one :class:`~genlab.training.Trainer`: a batch of the
  :class:`~genlab.data.MultimarginalDataset` is made independent across marginals and joined with a Gaussian x_0
  by :class:`~genlab.couplings.MultimarginalCoupling`; a ∈ Δ^K is drawn by
  :meth:`~genlab.interpolants.Multimarginal.sample_simplex` (uniform Dirichlet(1, …, 1) law, plus edge draws with
  probability ``edge_prob``); the loss is :meth:`~genlab.interpolants.Multimarginal.loss`, Σ_k E|ĝ_k − x_k|².
* :func:`transport` pushes samples of one marginal to another along any simplex path (edge e_i → e_j: b = g_j − g_i,
  or a path through the interior), with any ODE sampler, or an SDE sampler (ε-term −ε g_0/a_0, needs a_0 > 0).
* :func:`path_cost` / :func:`optimize_path`: the transport cost C[a] = ∫ E|Σ_k ȧ_k g_k(a, x(a))|² dt of a path for
  frozen g_k, estimated by Monte Carlo, and its minimisation over a :class:`~genlab.interpolants.FourierPath`.
* :func:`correspondence`: one source sample pushed to every marginal (the paper's "style transfer" use).

Reconstructed, said plainly (see also :mod:`genlab.interpolants.multimarginal`): the α-sampling law for training
(uniform on Δ^K with optional edge oversampling) and the Fourier path's map onto the simplex are genlab's choices;
the paper's exact versions could not be read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from genlab.couplings import MultimarginalCoupling, stack_marginals
from genlab.interpolants import FourierPath, Multimarginal, RestrictedMultimarginal
from genlab.interpolants.simplex import EdgePath, GammaPath, SimplexPath
from genlab.models import Field, MultimarginalField
from genlab.training.components import Components, split_labels
from genlab.training.config import RunConfig
from genlab.training.objective import LossOutput, ObjectiveBase, register_objective
from genlab.utils import check_finite

__all__ = [
    "MultimarginalObjective",
    "PathOptimization",
    "correspondence",
    "default_vertices",
    "make_path",
    "marginal_draws",
    "optimize_path",
    "path_cost",
    "sample_transport",
    "transport",
]

#: ``net(x, a) -> (B, K + 1, ...)``: a simplex network (trained or exact).
SimplexNet = Callable[..., Tensor]


class MultimarginalObjective(ObjectiveBase):
    """Σ_k E_{a, (x_0..x_K)} |ĝ_k(a, x(a)) − x_k|² for one simplex network (module docstring).

    The run's config must hold ``interpolant: {name: multimarginal, K: K, edge_prob: ...}``, ``coupling: {name:
    multimarginal}``, ``data: {name: multimarginal, marginals: [... K names ...]}`` and a simplex network
    (``model: {name: simplex_mlp, data_dim: d, K: K}`` or ``simplex_unet``); ``model.kind`` is not used (the
    network's kind is the multi-head ``"g"``). The objective sets ``components.data_shape`` to one marginal's
    per-sample shape, so sampling a run draws single samples.

    Args:
        config: Run config.
        components: Its components.
        project: Project the heads onto Σ_k a_k g_k = x in the sampling Field.

    Raises:
        ValueError: A K that differs between the interpolant, the data and the network, or a labelled network.
        TypeError: Another interpolant or coupling than the multimarginal ones.
    """

    module_name: str = "model"

    def __init__(self, config: RunConfig, components: Components, *, project: bool = False) -> None:
        interp = components.interpolant
        if not isinstance(interp, RestrictedMultimarginal):
            raise TypeError(
                "objective 'multimarginal' needs interpolant: {name: multimarginal, K: <number of data sets>}; got "
                f"{interp!r}"
            )
        if not isinstance(components.coupling, MultimarginalCoupling):
            raise TypeError(
                f"objective 'multimarginal' needs coupling: {{name: multimarginal}}; got {components.coupling!r}"
            )
        self.mm: Multimarginal = interp.mm
        K = self.mm.K
        shape = tuple(components.data_shape)
        if getattr(components, "_mm_marginal_shape", None) is not None:
            shape = (K, *components._mm_marginal_shape)  # type: ignore[attr-defined]
        if len(shape) < 2 or shape[0] != K:
            n_data = shape[0] if shape else 0
            raise ValueError(
                f"interpolant.K={K} but the data holds {n_data} marginal(s) per item (data.marginals lists the data "
                f"sets, shape {shape}); make interpolant.K equal the length of data.marginals"
            )
        target = int(config.data.kwargs.get("target", 1)) if config.data.name == "multimarginal" else interp.j
        if target != interp.j:
            raise ValueError(
                f"data.target={target} but the default path ends at interpolant.end={interp.j}; set both to the same "
                "vertex (the data's x1 item is what samples of the default path are compared with)"
            )
        net_K = getattr(components.net, "K", None)
        if net_K != K:
            raise ValueError(
                f"model.K={net_K} but interpolant.K={K}; the simplex network needs K+1={K + 1} heads (model: "
                f"{{name: simplex_mlp, K: {K}, ...}} or simplex_unet)"
            )
        if components.needs_labels:
            raise ValueError("objective 'multimarginal' trains an unconditional simplex network; drop num_classes")
        self.config = config
        self.components = components
        self.project = bool(project)
        self.K = K
        components._mm_marginal_shape = shape[1:]  # type: ignore[attr-defined]
        components.data_shape = shape[1:]

    def modules(self) -> dict[str, nn.Module]:
        """``{"model": the simplex network}``."""
        return {self.module_name: self.components.net}

    def field(self, *, ema: bool = True, path: SimplexPath | None = None) -> MultimarginalField:
        """The :class:`~genlab.models.MultimarginalField` of the EMA (or raw) network along ``path`` (default: the
        config's edge, Gaussian → marginal 1)."""
        net = self.module(self.module_name, ema=ema) if ema else self.components.net
        interp = self.components.interpolant
        restricted = interp if path is None else self.mm.restrict(path, project=self.project)
        if path is None and self.project:
            restricted = self.mm.restrict(interp.path, project=True)
        return MultimarginalField(net, restricted)

    def fields(self, *, ema: bool = True) -> dict[str, Field]:
        """``{"model": field(ema=ema)}``."""
        return {self.module_name: self.field(ema=ema)}

    def loss(self, batch: Any, *, step: int, generator: torch.Generator | None) -> LossOutput:
        """The g_k regression on one batch (``step`` unused)."""
        data, _ = split_labels(batch, self.components.split.train)
        pair = self.components.coupling.sample(data, generator=generator)
        xs = stack_marginals(pair)
        smp = self.mm.sample(xs, generator=generator)
        net = self.module(self.module_name)
        a = smp.a.to(smp.x.dtype)
        if self.autocast is None:
            pred = net(smp.x, a)
        else:
            with self.autocast():
                pred = net(smp.x, a)
        loss = self.mm.loss(pred.to(smp.x.dtype), smp)
        check_finite(loss, name="multimarginal training loss")
        return LossOutput(loss=loss, batch_size=int(smp.x.shape[0]))


register_objective("multimarginal", MultimarginalObjective)


# ---------------------------------------------------------------------------------------------- transport
def make_path(kind: str, i: int, j: int, K: int, *, gamma: str = "bsquared", a: float = 1.0) -> SimplexPath:
    """A named path from vertex ``i`` to ``j``: ``"edge"`` (:class:`EdgePath`) or ``"gamma"`` (:class:`GammaPath`,
    the edge smoothed through the Gaussian vertex, a_0(t) = γ(t) > 0 inside, needed for SDE transport)."""
    if kind == "edge":
        return EdgePath(i, j, K)
    if kind == "gamma":
        if 0 in (i, j):
            raise ValueError(f"path 'gamma' joins two data vertices through the Gaussian one; got {i} -> {j} (use 'edge')")
        return GammaPath(i, j, K, gamma=gamma, a=a)
    raise ValueError(f"unknown path {kind!r}; choose 'edge' or 'gamma'")


def transport(
    fld: MultimarginalField,
    x_init: Tensor,
    *,
    path: SimplexPath,
    sampler: str = "heun",
    steps: int = 50,
    generator: torch.Generator | None = None,
    grid: str = "uniform",
    grid_options: dict[str, Any] | None = None,
    t_eps: float | None = None,
    **options: Any,
) -> Any:
    """Push samples of vertex ``path.start`` to vertex ``path.end`` with any registered sampler.

    The score −g_0/a_0 of the SDE drift is undefined where a_0 = 0 (at data vertices), so an SDE transport runs on
    the uniform grid of [t_eps, 1 − t_eps] (``t_eps`` = 1e-3 by default when ``eps`` ≠ 0): it starts from the start
    marginal at t_eps and stops at 1 − t_eps, an O(t_eps) approximation of the end points.

    Args:
        fld: A multimarginal Field (its network is reused on ``path``).
        x_init: Samples of the start marginal (the Gaussian for vertex 0), ``(n, ...)``.
        path: The simplex path.
        sampler: Registered sampler (ODE; or SDE, e.g. ``euler_maruyama`` with ``eps=...``, on paths with a_0 > 0
            wherever ε ≠ 0).
        steps: Grid steps.
        generator: Generator of SDE noise.
        grid: Grid name.
        grid_options: Grid options.
        t_eps: Distance of the grid from both ends (see above; 0 for ODE transports).
        **options: Sampler options (``eps`` ...).

    Returns:
        The sampler's :class:`~genlab.samplers.SampleResult` (``.x`` the transported samples, ``.nfe``).
    """
    from genlab.samplers import sample  # training may use samplers

    if not isinstance(fld, MultimarginalField):
        raise TypeError(f"fld must be a MultimarginalField, got {type(fld).__name__}")
    if not isinstance(x_init, Tensor) or x_init.ndim < 2:
        raise ValueError("x_init must be a (n, ...) tensor of samples of the start marginal")
    eps = options.get("eps")
    if t_eps is None:
        t_eps = 1e-3 if (eps is not None and not (isinstance(eps, (int, float)) and float(eps) == 0.0)) else 0.0
    if t_eps > 0 and isinstance(grid, str):
        if grid != "uniform":
            raise ValueError(f"an SDE transport (eps={eps!r}) runs on a uniform grid inside (t_eps, 1 - t_eps); got "
                             f"grid={grid!r}: pass explicit times instead")
        grid = torch.linspace(t_eps, 1 - t_eps, steps + 1, dtype=torch.float64)
    return sample(fld.on_path(path), sampler, steps=steps, x_init=x_init, generator=generator, grid=grid,
                  grid_options=grid_options, **options)


def correspondence(
    fld: MultimarginalField,
    x_source: Tensor,
    source: int,
    *,
    sampler: str = "heun",
    steps: int = 50,
) -> Tensor:
    """One source sample pushed to every marginal: ``out[:, k]`` is ``x_source`` transported along e_source → e_k
    (``out[:, source] = x_source``). Shape ``(n, K + 1, ...)``; deterministic (ODE) transports, so each row is one
    multi-way correspondence.
    """
    K = fld.interpolant.mm.K
    cols = []
    for k in range(K + 1):
        if k == source:
            cols.append(x_source)
        else:
            cols.append(transport(fld, x_source, path=EdgePath(source, k, K), sampler=sampler, steps=steps).x)
    return torch.stack(cols, dim=1)


# ---------------------------------------------------------------------------------------------- path cost
def path_cost(
    net: SimplexNet,
    path: SimplexPath,
    xs: Tensor,
    *,
    t: Tensor | int = 32,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Monte-Carlo transport cost ``C[a] = ∫_0^1 E|Σ_k ȧ_k(t) g_k(a(t), x(a(t)))|² dt`` of ``path`` for frozen g_k.

    The expectation runs over the independent tuples ``xs`` (x(a) = Σ_k a_k x_k), the time integral over ``t``:
    given times, or a number T of stratified uniform times (one per cell of a uniform T-partition, drawn with
    ``generator``; an unbiased estimate). Each time uses its own slice of ``xs`` (``n // T`` tuples). The result is
    differentiable in the path's parameters (the network's own parameters are left as they are).

    Args:
        net: Simplex network ``net(x, a) -> (B, K + 1, ...)``.
        path: Path on Δ^K.
        xs: ``(n, K + 1, ...)`` independent draws of every marginal (``xs[:, 0]`` Gaussian).
        t: Times, or their number for stratified sampling.
        generator: Generator of the stratified times.

    Returns:
        Scalar cost (sum over data dimensions, mean over samples and times).
    """
    if not isinstance(xs, Tensor) or xs.ndim < 3 or xs.shape[1] != path.K + 1:
        got = tuple(xs.shape) if isinstance(xs, Tensor) else type(xs).__name__
        raise ValueError(f"xs must have shape (n, K+1={path.K + 1}, ...); got {got}")
    if isinstance(t, int):
        if t < 1:
            raise ValueError(f"t must be a positive number of times or a tensor of times; got {t}")
        u = torch.rand(t, generator=generator, dtype=torch.float64, device=generator.device if generator else None)
        t = (torch.arange(t, dtype=torch.float64) + u.cpu()) / t
    t = torch.as_tensor(t, dtype=torch.float64)
    T, n = t.shape[0], xs.shape[0]
    per = n // T
    if per < 1:
        raise ValueError(f"xs holds {n} tuples but {T} times need at least one each; pass more samples or fewer times")
    a, a_dot = path(t)  # (T, K + 1)
    a = a.to(xs.dtype).repeat_interleave(per, 0)
    a_dot = a_dot.to(xs.dtype).repeat_interleave(per, 0)
    xs = xs[: T * per]
    w = a.reshape(*a.shape, *([1] * (xs.ndim - 2)))
    x = (w * xs).sum(1)
    g = net(x, a)
    g = g.reshape(xs.shape)
    b = (a_dot.reshape(w.shape) * g).sum(1)
    return (b * b).flatten(1).sum(1).mean()


@dataclass
class PathOptimization:
    """Result of :func:`optimize_path`.

    Attributes:
        path: The optimised :class:`FourierPath` (detached coefficients).
        initial_cost: Cost estimate of the initial path (fixed evaluation draws).
        final_cost: Cost estimate of the optimised path (same draws).
        history: Stochastic cost estimate at every optimiser step.
    """

    path: FourierPath
    initial_cost: float
    final_cost: float
    history: list[float] = field(default_factory=list)


def optimize_path(
    net: SimplexNet,
    i: int,
    j: int,
    K: int,
    draw: Callable[[int, torch.Generator], Tensor],
    *,
    modes: int = 4,
    steps: int = 200,
    lr: float = 0.05,
    n: int = 1024,
    times: int = 32,
    eval_n: int = 8192,
    init: FourierPath | str = "edge",
    seed: int = 0,
) -> PathOptimization:
    """Minimise the transport cost of a :class:`FourierPath` e_i → e_j for a frozen simplex network (Adam with a
    cosine learning-rate decay to 0, so the stochastic estimates settle).

    The paper's path optimisation (Albergo et al., ICLR'24, "optimizing the path" — reconstructed, see the module
    docstring): g_k are fixed, only the path's coefficients move. Each step draws ``n`` fresh tuples from ``draw``
    and ``times`` stratified times; initial and final costs are evaluated on one fixed set of ``eval_n`` tuples and
    a fixed midpoint grid of ``times`` nodes, so they compare like with like.

    Args:
        net: Simplex network (its parameters are not changed).
        i: Start vertex.
        j: End vertex.
        K: Simplex dimension.
        draw: ``draw(n, generator) -> (n, K + 1, ...)`` independent tuples of every marginal.
        modes: Sine modes per vertex.
        steps: Optimiser steps.
        lr: Initial Adam learning rate.
        n: Tuples per step.
        times: Time nodes per step.
        eval_n: Tuples of the before/after evaluation.
        init: Starting path: ``"edge"`` (the FourierPath fitted to the linear edge e_i → e_j, whose cost is close to
            the edge's), ``"zero"`` (zero coefficients: a slower reparametrisation of the edge) or a FourierPath.
        seed: Seed of every draw.

    Returns:
        :class:`PathOptimization`.
    """
    if init == "edge":
        path = FourierPath.fit(EdgePath(i, j, K), modes=modes)
    elif init == "zero":
        path = FourierPath(i, j, K, modes=modes)
    elif isinstance(init, FourierPath):
        path = init.detached()
    else:
        raise ValueError(f"init must be 'edge', 'zero' or a FourierPath; got {init!r}")
    if (path.i, path.j, path.K) != (i, j, K):
        raise ValueError(f"init goes {path.i} -> {path.j} on Δ^{path.K}; expected {i} -> {j} on Δ^{K}")
    if steps < 0 or n < times:
        raise ValueError(f"need steps >= 0 and n >= times; got steps={steps}, n={n}, times={times}")
    gen = torch.Generator().manual_seed(int(seed))
    eval_xs = draw(eval_n, torch.Generator().manual_seed(int(seed) + 1))
    eval_t = (torch.arange(times, dtype=torch.float64) + 0.5) / times
    params = list(net.parameters()) if isinstance(net, nn.Module) else []
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        with torch.no_grad():
            initial = float(path_cost(net, path, eval_xs, t=eval_t))
        coeffs = path.parameters()
        opt = torch.optim.Adam(coeffs, lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
        history = []
        for _ in range(steps):
            xs = draw(n, gen)
            with torch.enable_grad():
                cost = path_cost(net, path, xs, t=times, generator=gen)
                opt.zero_grad()
                cost.backward()
            opt.step()
            sched.step()
            history.append(float(cost.detach()))
        final_path = path.detached()
        with torch.no_grad():
            final = float(path_cost(net, final_path, eval_xs, t=eval_t))
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
    return PathOptimization(path=final_path, initial_cost=initial, final_cost=final, history=history)


def marginal_draws(components: Components, *, split: str = "test") -> Callable[[int, torch.Generator], Tensor]:
    """``draw(n, generator) -> (n, K + 1, ...)``: independent tuples from a multimarginal run's data split (each
    marginal resampled with replacement, the Gaussian drawn fresh)."""
    data = (components.split.test if split == "test" else components.split.train).tensors[0]

    def draw(n: int, generator: torch.Generator) -> Tensor:
        K = data.shape[1]
        idx = torch.randint(0, data.shape[0], (K, n), generator=generator)
        cols = [data[idx[k], k] for k in range(K)]
        z = torch.randn((n, *data.shape[2:]), generator=generator, dtype=data.dtype)
        return torch.stack([z, *cols], dim=1)

    return draw


def sample_transport(
    run: Any,
    *,
    source: int,
    target: int,
    path: str = "edge",
    sampler: str | None = None,
    steps: int | None = None,
    n: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    ema: bool = True,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    **options: Any,
) -> Any:
    """Transport held-out samples of marginal ``source`` to marginal ``target`` with a trained multimarginal run
    (``genlab sample --run R --from i --to j``).

    Vertex 0 is the Gaussian (fresh draws), vertex k ≥ 1 the k-th entry of ``data.marginals`` (its held-out split,
    cycled to ``n`` samples). With ``out`` writes ``<out>.pt`` (``x``, ``x_init``, ``source``, ``target``, ``nfe``,
    ...) and, for ``.png``, a picture (2-D: source / target data / transported panels; images: a grid).

    Args:
        run: Run folder or loaded :class:`~genlab.training.Run` of a multimarginal run.
        source: Start vertex i.
        target: End vertex j ≠ i.
        path: ``"edge"`` or ``"gamma"`` (through the Gaussian vertex; see :func:`make_path`).
        sampler: Sampler (default: the run's ``sample.sampler``).
        steps: Grid steps (default: the run's).
        n: Number of samples (default: the run's ``sample.n``).
        seed: Seed of the Gaussian draws and SDE noise (default: the run's ``sample.seed``).
        out: ``.png`` or ``.pt`` output.
        ema: EMA weights.
        device: Device.
        overwrite: Replace existing outputs.
        **options: Sampler options (e.g. ``eps`` for ``euler_maruyama``).

    Returns:
        :class:`~genlab.training.RunSamples`.

    Raises:
        TypeError: Not a multimarginal run.
        ValueError: A vertex out of range.
        FileExistsError: An output that exists (without ``overwrite``).
    """
    import time

    from genlab.training.api import RunSamples, load_run
    from genlab.training.sampling import Samples, save_picture
    from genlab.utils import atomic_write, randn_per_sample

    if out is not None:
        out = Path(out)
        if out.suffix not in (".png", ".pt"):
            raise ValueError(f"out must end with .png or .pt, got {str(out)!r}")
        existing = [str(p) for p in {out, out.with_suffix(".pt")} if p.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"out={str(out)!r} would replace {sorted(existing)}; pass overwrite=True (--overwrite)")
    loaded = load_run(run, ema=ema, device=device)
    objective = loaded.objective
    if not isinstance(objective, MultimarginalObjective):
        raise TypeError(
            f"--from/--to transport between marginals of a multimarginal run (objective: multimarginal); "
            f"{loaded.run_dir} was trained with {type(objective).__name__}"
        )
    K = objective.K
    for name, v in (("source (--from)", source), ("target (--to)", target)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= K:
            raise ValueError(f"{name} must be a vertex in 0..{K} (0 = Gaussian, k = data.marginals[k-1]); got {v!r}")
    if source == target:
        raise ValueError(f"source and target must differ; got {source} twice")
    scfg = loaded.config.sample
    n = n if n is not None else scfg.n
    seed = seed if seed is not None else scfg.seed
    steps = steps if steps is not None else scfg.steps
    sampler = sampler or scfg.sampler
    gen = torch.Generator().manual_seed(int(seed))
    held = loaded.components.split.test.tensors[0]
    dev = next(objective.components.net.parameters()).device

    def marginal(k: int) -> Tensor:
        if k == 0:
            return randn_per_sample((n, *held.shape[2:]), generator=gen, dtype=held.dtype)
        return held[torch.arange(n) % held.shape[0], k - 1]

    x_init = marginal(source).to(dev)
    p = make_path(path, source, target, K)
    t0 = time.perf_counter()
    res = transport(loaded.field, x_init, path=p, sampler=sampler, steps=steps, generator=gen,
                    **{**scfg.options, **options})
    smp = Samples(x=res.x, nfe=res.nfe, sampler=sampler, steps=steps, seconds=time.perf_counter() - t0,
                  x_init=x_init)
    files: list[Path] = []
    if out is not None:
        pt = out.with_suffix(".pt")
        dump = {"x": smp.x.cpu(), "x_init": x_init.cpu(), "source": source, "target": target, "path": path,
                "nfe": smp.nfe, "sampler": sampler, "steps": steps, "step": loaded.step}
        with atomic_write(pt, "wb") as fh:
            torch.save(dump, fh)
        files.append(pt)
        if out.suffix == ".png":
            x = smp.x.cpu()
            title = f"vertex {source} -> {target} ({path}), {sampler} {smp.nfe} NFE"
            if x.ndim == 2 and x.shape[1] == 2:
                from genlab.viz import scatter_panels

                ref = marginal(target).cpu() if target != 0 else None
                panels = [(f"vertex {source}", x_init.cpu())]
                if ref is not None:
                    panels.append((f"vertex {target} (held out)", ref))
                panels.append((title, x))
                pic = scatter_panels(panels, out)
            else:
                pic = save_picture(x, out, title=title)
            if pic is None:
                raise ValueError(f"samples of shape {tuple(x.shape[1:])} have no picture; use a .pt output")
            files.append(pic)
    return RunSamples(samples=smp, step=loaded.step, files=files)


def default_vertices(run_dir: str | Path) -> tuple[int, int] | None:
    """``(start, end)`` of the default path of a multimarginal run folder (from its ``config.yaml``); ``None`` for
    any other run (so ``genlab sample --run R`` without ``--from/--to`` transports Gaussian → marginal 1 there)."""
    from genlab.training.config import load_config

    cfg_path = Path(run_dir) / "config.yaml"
    if not cfg_path.is_file():
        return None
    cfg = load_config(cfg_path)
    if cfg.objective.name != "multimarginal":
        return None
    kw = cfg.interpolant.kwargs
    return int(kw.get("start", 0)), int(kw.get("end", 1))
