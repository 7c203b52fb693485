"""EDM preconditioning in (α, β): Karras et al. 2022, Table 1 for VE, and the x/β reduction for VP/RF."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.interpolants import RectifiedFlow, VEDiffusion, VPDiffusion
from genlab.models.precond import EDMPreconditioner, edm_loss_weight


class _Scale(nn.Module):
    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = k

    def forward(self, x, t):
        return self.k * x


def test_ve_matches_karras_table_1() -> None:
    ve, sd = VEDiffusion(sigma_min=0.002, sigma_max=80.0), 0.5
    x = torch.randn(6, 2, dtype=torch.float64)
    t = torch.linspace(0.05, 0.95, 6, dtype=torch.float64)
    sigma = ve.coeffs(t, x).alpha[:, None]  # x_t = x1 + σ x0
    c_skip = sd**2 / (sigma**2 + sd**2)
    c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
    c_in = 1 / (sigma**2 + sd**2).sqrt()
    torch.testing.assert_close(EDMPreconditioner(_Scale(0.0), ve, sigma_data=sd)(x, t), c_skip * x)
    torch.testing.assert_close(
        EDMPreconditioner(_Scale(2.0), ve, sigma_data=sd)(x, t), c_skip * x + c_out * 2.0 * c_in * x
    )
    torch.testing.assert_close(
        edm_loss_weight(ve, t, x, sigma_data=sd), (sigma[:, 0] ** 2 + sd**2) / (sigma[:, 0] * sd) ** 2
    )


@pytest.mark.parametrize("path", [VPDiffusion(), RectifiedFlow()], ids=["vp", "rf"])
def test_scaled_paths_reduce_to_edm_on_x_over_beta(path) -> None:
    sd = 0.7
    x = torch.randn(5, 3, dtype=torch.float64)
    t = torch.linspace(0.1, 0.9, 5, dtype=torch.float64)
    c = path.coeffs(t, x)
    a, b = c.alpha[:, None], c.beta[:, None]
    sigma, y = a / b, x / b  # x_t / β = x1 + (α/β) x0
    edm = (
        sd**2 / (sigma**2 + sd**2) * y
        + sigma * sd / (sigma**2 + sd**2).sqrt() * 3.0 * y / (sigma**2 + sd**2).sqrt()
    )
    torch.testing.assert_close(EDMPreconditioner(_Scale(3.0), path, sigma_data=sd)(x, t), edm)


def test_needs_gaussian_source() -> None:
    with pytest.raises(ValueError, match="Gaussian-source"):
        EDMPreconditioner(_Scale(1.0), RectifiedFlow(source="data"))
