"""The HVAE: likelihood normalisation, analytic KL vs Monte-Carlo, ELBO vs importance-sampled bound, sampling
temperatures, and its training objective (resume bit for bit, KL warm-up, gradient-skip guard)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from genlab.models import HVAE, build_network, network_config
from genlab.models.hvae import (
    discretized_logistic_logp,
    discretized_logistic_mean,
    gaussian_kl,
    level_temperatures,
)
from genlab.training import Trainer, load_config, load_hvae


def _net(seed: int = 0) -> HVAE:
    torch.manual_seed(seed)
    return HVAE(image_size=8, width=8, zdim=2, groups=(1, 2, 4, 8))


def _digits_like(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 17, (n, 1, 8, 8), generator=g).float() / 8 - 1


def test_discretized_logistic_sums_to_one_over_the_levels() -> None:
    levels = torch.arange(17).float() / 8 - 1
    mean = torch.tensor([-1.3, -0.2, 0.05, 0.9])[:, None]
    logscale = torch.tensor([-3.0, -1.0, 0.0, -6.5])[:, None]
    probs = discretized_logistic_logp(levels[None].expand(4, -1), mean, logscale, n_bins=17).exp()
    torch.testing.assert_close(probs.sum(1), torch.ones(4), atol=1e-5, rtol=0)
    # the decoder mean E[x | z] that PnP-HVAE uses is the mean of these bin masses, inside [-1, 1]
    expected = (probs * levels).sum(1)
    torch.testing.assert_close(discretized_logistic_mean(mean[:, 0], logscale[:, 0], n_bins=17), expected,
                               atol=1e-5, rtol=0)


def test_gaussian_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    qm, ql, pm, pl = (torch.randn(50, generator=g) for _ in range(4))
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(qm, ql.exp()),
                                            torch.distributions.Normal(pm, pl.exp()))
    torch.testing.assert_close(gaussian_kl(qm, ql, pm, pl), ref, atol=1e-5, rtol=1e-5)


def test_elbo_equals_the_mean_log_weight_and_lies_below_the_importance_sampled_bound() -> None:
    """E_q[log p(x,z) − log q(z|x)] (Monte Carlo, K = 1 weights) equals the analytic-KL ELBO; the K = 64 IWAE
    bound is above it (Burda et al. 2016)."""
    net = _net().eval()
    x = _digits_like(4)
    with torch.no_grad():
        elbo = net.elbo(x, generator=torch.Generator().manual_seed(1))
        nll_mc = torch.stack([net.elbo(x, generator=torch.Generator().manual_seed(100 + i)).nll for i in range(32)])
        analytic = -nll_mc.mean(0) - elbo.kl.sum(1)
        logw = torch.stack([net.log_likelihood_is(x, k=1, generator=torch.Generator().manual_seed(200 + i))
                            for i in range(32)])
        iw = net.log_likelihood_is(x, k=64, generator=torch.Generator().manual_seed(3))
    se = (logw.std(0) ** 2 / 32 + nll_mc.std(0) ** 2 / 32).sqrt()
    assert bool(((logw.mean(0) - analytic).abs() < 4 * se + 1e-3).all()), (logw.mean(0), analytic, se)
    assert bool((iw >= analytic - 4 * se).all())
    torch.testing.assert_close(elbo.bpd, -elbo.elbo / (64 * math.log(2)))


def test_sampling_temperatures_and_network_registry() -> None:
    net = _net().eval()
    a = net.sample(3, temperature=1e-7, generator=torch.Generator().manual_seed(0)).x
    b = net.sample(3, temperature=1e-7, generator=torch.Generator().manual_seed(1)).x
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)  # T → 0: every group at its prior mean
    c = net.sample(5, temperature=(1.0, 0.5), generator=torch.Generator().manual_seed(0)).x
    torch.testing.assert_close(c[:3], net.sample(3, temperature=(1.0, 0.5),
                                                 generator=torch.Generator().manual_seed(0)).x)
    assert level_temperatures((1.0, 0.6), 4) == pytest.approx([1.0, 0.9, 0.8, 0.7])
    for bad in (0.0, -0.5, float("inf"), [1.0, 0.5, 0.2]):
        with pytest.raises(ValueError, match="temperature"):
            net.sample(2, temperature=bad)
    rebuilt = build_network(network_config(net))
    assert isinstance(rebuilt, HVAE) and rebuilt.config == net.config
    with pytest.raises(ValueError, match="groups"):
        HVAE(image_size=8, groups=(4, 2))
    with pytest.raises(ValueError, match="shape"):
        net.elbo(torch.zeros(2, 1, 16, 16))


def _config(tmp_path: Path, **objective):
    cfg = {
        "name": "hvae_test",
        "data": {"name": "digits", "size": 8, "labels": False, "test_fraction": 0.1, "split_seed": 0},
        "model": {"name": "hvae", "width": 8, "zdim": 2, "groups": [1, 2, 4, 8], "n_bins": 17},
        "objective": {"name": "hvae", **objective},
        "train": {"steps": 4, "batch_size": 16, "lr": 1e-3, "warmup": 0, "ckpt_every": 2, "log_every": 2,
                  "device": "cpu"},
        "logging": {"progress": False, "stdout": False},
    }
    return load_config(cfg)


def test_objective_trains_checkpoints_and_resumes_bit_for_bit(tmp_path: Path) -> None:
    full = Trainer(_config(tmp_path, kl_warmup=4), tmp_path / "full")
    full.fit()

    class _Crash(Exception):
        pass

    def crash_after_3(trainer: Trainer) -> None:
        if trainer.step == 3:  # killed between two checkpoints
            raise _Crash

    with pytest.raises(_Crash):
        Trainer(_config(tmp_path, kl_warmup=4), tmp_path / "part", hooks=[crash_after_3]).fit()
    resumed = Trainer(_config(tmp_path, kl_warmup=4), tmp_path / "part")
    resumed.fit(resume=True)
    assert resumed.step == full.step == 4
    for (k, a), (_, b) in zip(full.net.state_dict().items(), resumed.net.state_dict().items()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=k)
    loaded = load_hvae(tmp_path / "full")
    assert loaded.step == 4 and loaded.n_skipped == 0 and isinstance(loaded.model, HVAE)
    assert full.objective.kl_weight(0) == pytest.approx(0.25) and full.objective.kl_weight(10) == 1.0


def test_gradient_skip_guard_leaves_the_model_untouched(tmp_path: Path) -> None:
    trainer = Trainer(_config(tmp_path, skip_threshold=1e-12), tmp_path / "skip")
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    trainer.fit()
    assert trainer.objective.n_skipped == 4
    for k, v in trainer.net.state_dict().items():
        torch.testing.assert_close(v, before[k], atol=0, rtol=0, msg=k)
    with pytest.raises(TypeError, match="hvae"):
        bad = _config(tmp_path)
        bad.model.name = "unet"
        bad.model.kwargs = {"block_out_channels": [8, 16], "layers_per_block": 1}
        Trainer(bad, tmp_path / "bad")


@pytest.mark.slow
def test_trained_model_elbo_matches_the_monte_carlo_bound(tmp_path: Path) -> None:
    """A briefly trained HVAE (300 steps on digits): the analytic-KL ELBO equals the Monte-Carlo mean of the
    K = 1 log-weights within 4 standard errors, and the K = 64 importance-sampled bound sits above it by a small
    gap (< 0.3 bits/dim; the encoder approximates the model's posterior)."""
    cfg = _config(tmp_path)
    cfg.train.steps = 300
    cfg.train.ckpt_every = 300
    cfg.train.batch_size = 64
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.fit()
    net = load_hvae(tmp_path / "run").model
    x = torch.stack([trainer.components.split.test[i] for i in range(16)]).float()
    with torch.no_grad():
        elbo = net.elbo(x, generator=torch.Generator().manual_seed(0))
        nll = torch.stack([net.elbo(x, generator=torch.Generator().manual_seed(10 + i)).nll for i in range(64)])
        analytic = -nll.mean(0) - elbo.kl.sum(1)
        logw = torch.stack([net.log_likelihood_is(x, k=1, generator=torch.Generator().manual_seed(100 + i))
                            for i in range(64)])
        iw = net.log_likelihood_is(x, k=64, generator=torch.Generator().manual_seed(3))
    se = (logw.std(0) ** 2 / 64 + nll.std(0) ** 2 / 64).sqrt()
    assert bool(((logw.mean(0) - analytic).abs() < 4 * se + 1e-3).all())
    gap_bpd = (iw - analytic) / (64 * math.log(2))
    assert bool((gap_bpd > -4 * se / (64 * math.log(2))).all()) and float(gap_bpd.mean()) < 0.3
