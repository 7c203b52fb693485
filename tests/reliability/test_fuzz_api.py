"""Property-based tests (hypothesis) over the public entry points: every call ends in a result or a clear
ValueError/TypeError with a message, never another exception type.

Deterministic (``derandomize=True``) and fast (small ``max_examples``, tiny problems). The number of cases run is
counted in :data:`CASES` and printed at the end of the module (``pytest -s``).
"""

from __future__ import annotations

import math
from collections import Counter

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import genlab
from genlab.analytic import GaussianMixture, exact_field
from genlab.config import ConfigError
from genlab.interpolants import RectifiedFlow, VPDiffusion
from genlab.models import Field

CASES: Counter[str] = Counter()
RESULTS: Counter[str] = Counter()  # cases that ended in a result (the rest ended in a clear error)
FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CLEAR = (ValueError, TypeError)


def _outcome(fn, label: str):
    """Run ``fn``: a result, or a ValueError/TypeError with a non-empty message (anything else fails the test)."""
    CASES[label] += 1
    try:
        out = fn()
    except CLEAR as err:
        assert str(err).strip(), f"{type(err).__name__} without a message"
        return err
    RESULTS[label] += 1
    return out


_GMM = GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=torch.float64), 0.2)


class _Net(torch.nn.Module):
    """A tiny float32 network ``(x, t) -> velocity`` (a trained-model stand-in with parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.cat([x, t.reshape(-1, 1).to(x.dtype).expand(x.shape[0], 1)], 1))


torch.manual_seed(0)
_FIELDS = {
    "rf": exact_field(RectifiedFlow(), "gaussian", _GMM, "velocity"),
    "vp": exact_field(VPDiffusion(), "gaussian", _GMM, "noise"),
    "net": Field(_Net(), RectifiedFlow(), "velocity").requires_grad_(False),
}
_SAMPLERS = ["euler", "heun", "ddim", "dpmpp_2m", "euler_maruyama", "edm", "nosuch", "rk4", ""]
_GRIDS = ["uniform", "power", "log_snr", "karras", "nosuch", "UNIFORM"]
_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, "float32", None]
_ints = st.one_of(st.integers(-3, 5), st.sampled_from([0, 1, 2.5, "3", True, None]))


@FUZZ
@given(
    path=st.sampled_from(sorted(_FIELDS)),
    sampler=st.sampled_from(_SAMPLERS),
    grid=st.sampled_from(_GRIDS),
    n=_ints,
    steps=_ints,
    shape=st.sampled_from([(2,), (3,), (), (0,), (2, 1), (-1,), None, "2"]),
    dtype=st.sampled_from(_DTYPES),
    seed=st.sampled_from([0, 1, None, -1, "x"]),
)
def test_sample_fuzz(path, sampler, grid, n, steps, shape, dtype, seed) -> None:
    field = _FIELDS[path]
    kw = {"dtype": dtype} if dtype is not None else {}
    res = _outcome(
        lambda: genlab.sample(field, sampler, steps=steps, grid=grid, n=n, shape=shape, seed=seed, **kw),
        "sample",
    )
    if not isinstance(res, Exception):
        assert res.x.shape[0] == n and res.x.dtype == (dtype or torch.float32)


@FUZZ
@given(
    path=st.sampled_from(sorted(_FIELDS)),
    sampler=st.sampled_from(["euler", "heun", "ddim", "dpmpp_2m", "euler_maruyama", "edm", "rk4", "deis_tab"]),
    grid=st.sampled_from(["uniform", "power", "log_snr", "karras"]),
    n=st.integers(1, 6),
    steps=st.integers(1, 6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
)
def test_sample_valid_arguments_fuzz(path, sampler, grid, n, steps, dtype, seed) -> None:
    """Well-formed calls: a finite, deterministic result of the right shape, or a clear incompatibility error."""

    def run():
        return genlab.sample(_FIELDS[path], sampler, steps=steps, grid=grid, n=n, shape=(2,), seed=seed, dtype=dtype)

    res = _outcome(run, "sample_valid")
    if not isinstance(res, Exception):
        assert res.x.shape == (n, 2) and res.x.dtype == dtype and torch.isfinite(res.x).all()
        assert torch.equal(run().x, res.x)


@FUZZ
@given(
    sampler=st.sampled_from(["euler", "heun", "ddim", "dpmpp_2m"]),
    bad=st.sampled_from([math.nan, math.inf, -math.inf, 0.0]),
    where=st.integers(0, 5),
    rows=st.integers(0, 3),
)
def test_sample_x_init_fuzz(sampler, bad, where, rows) -> None:
    x = torch.zeros(rows, 2, dtype=torch.float64)
    if rows:
        x.view(-1)[where % x.numel()] = bad
    res = _outcome(lambda: genlab.sample(_FIELDS["rf"], sampler, steps=3, x_init=x), "x_init")
    finite_input = rows > 0 and math.isfinite(bad)
    assert isinstance(res, Exception) != finite_input  # non-finite or empty input is refused, finite runs
    if finite_input:
        assert torch.isfinite(res.x).all()


@FUZZ
@given(
    key=st.sampled_from(
        ["train.lr", "train.steps", "sample.grid", "sample.sampler", "sample.options.eta", "sample.options.foo",
         "sample.grid_options.t_end", "sample.grid_options.kappa", "data.foo", "data.noise", "model.kind",
         "eval.metrics", "train.device", "nosuch", "train.nosuch", "interpolant.name", "sample.n", "coupling.x"]
    ),
    value=st.sampled_from(["1", "0", "-1", "1e-3", "nan", "inf", "abc", "[sw, foo]", "[]", "null", "{a: 1}",
                           "true", "power", "karras", "ddim", "cuda:9", ""]),
)
def test_config_override_fuzz(key, value) -> None:
    from genlab.training import check_components, load_config

    def run() -> None:
        cfg = load_config("configs/moons_tiny.yaml", overrides=[f"{key}={value}"])
        check_components(cfg)

    res = _outcome(run, "config")
    assert res is None or isinstance(res, (ConfigError, ValueError, TypeError))


_SECTIONS = ["", "train.", "sample.", "sample.options.", "sample.grid_options.", "data.", "model.", "eval.",
             "interpolant.", "coupling.", "logging.", "objective."]


@FUZZ
@given(
    section=st.sampled_from(_SECTIONS),
    key=st.text(alphabet="abcdeilmnoprstux_.0", min_size=0, max_size=8),
    value=st.one_of(
        st.text(alphabet="0123456789.-+eE:[]{},ntruflsaTFx ", max_size=10),
        st.sampled_from(["2020-01-01", "1e999", "-.inf", ".nan", "0x10", "~", "'1'", "[1, [2]]", "{a: {b: 1}}"]),
    ),
)
def test_config_random_override_fuzz(section, key, value) -> None:
    """Random dotted keys and YAML values: a config, or a ConfigError/ValueError/TypeError naming the problem."""
    from genlab.training import check_components, load_config

    def run() -> None:
        check_components(load_config("configs/moons_tiny.yaml", overrides=[f"{section}{key}={value}"]))

    _outcome(run, "config_random")


_METRICS = st.one_of(
    st.none(),
    st.sampled_from(["sw", "foo", "sw,mmd", "sw,,", "", ",", "SW", "mse"]),
    st.lists(st.sampled_from(["sw", "mmd", "energy", "foo", 1]), max_size=3),
    st.sampled_from([3, 2.0, b"sw"]),
)


@FUZZ
@given(metrics=_METRICS)
def test_metric_names_fuzz(metrics) -> None:
    from genlab.checks import check_metrics
    from genlab.training.config import EVAL_METRICS

    res = _outcome(lambda: check_metrics(metrics, EVAL_METRICS), "metrics")
    if isinstance(res, list):
        assert res and set(res) <= set(EVAL_METRICS)


@FUZZ
@given(
    device=st.sampled_from(["cpu", "cuda", "cuda:7", "meta", "mps", "gpu", "", "auto", 0, None, "cpu:0", "xla"]),
    n=st.sampled_from([1, 4]),
)
def test_device_fuzz(device, n) -> None:
    res = _outcome(
        lambda: genlab.sample(_FIELDS["rf"], "euler", steps=2, n=n, shape=(2,), seed=0, device=device), "device"
    )
    if not isinstance(res, Exception):
        assert res.x.shape == (n, 2)


# ------------------------------------------------------------------------------------ inverse problems
def _inverse():
    from genlab.inverse import CompressedSensing, DiffusionPrior, InverseProblem, solve

    gen = torch.Generator().manual_seed(0)
    gmm = GaussianMixture(torch.randn(3, 4, generator=gen, dtype=torch.float64), 0.5)
    prior = DiffusionPrior.from_gmm(gmm, VPDiffusion())
    op = CompressedSensing(2, 4, generator=gen)
    problem = InverseProblem.simulate(op, gmm.sample(1, generator=gen), sigma=0.1, generator=gen)
    return solve, problem, prior, op


@FUZZ
@given(
    method=st.sampled_from(["dps", "pigdm", "nosuch", "", 3]),
    sampler=st.sampled_from([None, "ddim", "euler", "dpmpp_2m", "nosuch", 5]),
    steps=st.sampled_from([None, 0, -1, 2, 2.5, "3"]),
    n_samples=st.sampled_from([1, 2, 0, -2, 1.5, None]),
    seed=st.sampled_from([0, None, "s"]),
    extra=st.sampled_from([{}, {"foo": 1}, {"eta": -1.0}, {"eta": math.nan}]),
)
def test_solve_argument_fuzz(method, sampler, steps, n_samples, seed, extra) -> None:
    solve, problem, prior, _ = _inverse()
    res = _outcome(
        lambda: solve(problem, prior, method, sampler=sampler, steps=steps, n_samples=n_samples, seed=seed, **extra),
        "solve",
    )
    if not isinstance(res, Exception):
        assert res.samples.shape[0] == n_samples and torch.isfinite(res.samples).all()


@FUZZ
@given(
    method=st.sampled_from(["dps", "pigdm"]),
    sampler=st.sampled_from([None, "ddim", "euler", "dpmpp_2m", "heun"]),
    steps=st.integers(1, 4),
    n_samples=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_solve_valid_arguments_fuzz(method, sampler, steps, n_samples, seed) -> None:
    solve, problem, prior, _ = _inverse()
    res = _outcome(
        lambda: solve(problem, prior, method, sampler=sampler, steps=steps, n_samples=n_samples, seed=seed),
        "solve_valid",
    )
    if not isinstance(res, Exception):
        assert res.samples.shape[0] == n_samples and torch.isfinite(res.samples).all()


@FUZZ
@given(
    shape=st.sampled_from([(1, 4), (3, 4), (4,), (1, 5), (1, 2), (0, 4), (2, 2, 2), ()]),
    which=st.sampled_from(["A", "At", "AtA", "simulate"]),
    bad=st.sampled_from([None, math.nan]),
)
def test_operator_shape_fuzz(shape, which, bad) -> None:
    _, _, _, op = _inverse()
    from genlab.inverse import InverseProblem

    x = torch.zeros(shape, dtype=torch.float64)
    if bad is not None and x.numel():
        x.view(-1)[0] = bad

    def run():
        if which == "simulate":
            return InverseProblem.simulate(op, x, sigma=0.1, generator=torch.Generator().manual_seed(0))
        return getattr(op, which)(x)

    _outcome(run, "operator")


def test_zz_report_case_count() -> None:
    """Prints how many property-based cases ran (pytest -s); every fuzz test above ran at least once."""
    total = sum(CASES.values())
    print(f"\nproperty-based cases run: {total} ({dict(sorted(CASES.items()))}); ended in a result: "
          f"{dict(sorted(RESULTS.items()))}, the rest in a clear ValueError/TypeError")
    assert total > 0
