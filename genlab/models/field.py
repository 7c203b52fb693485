"""Field: a network plus the prediction kind it outputs on a given interpolant.

Every sampler and guidance method talks to a :class:`Field`, so an analytic oracle (``genlab.analytic``), a trained
network and a wrapped diffusers UNet are interchangeable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor, nn

from genlab.interpolants.interpolant import DRIFT_SIGNS, KINDS, MULTI_HEAD_KINDS, Interpolant
from genlab.utils import as_time

__all__ = ["Field", "Precond", "call_net"]


class Precond(Protocol):
    """Preconditioning of a raw network (EDM / DDBM style ``c_skip·x + c_out·F(c_in·x, c_noise)``).

    A preconditioning may also carry its training law, which the training objective reads from it (not from the
    config): ``loss_weight(t, x) -> (B,)`` (EDM's and DDBM's ``λ = 1/c_out²``) and ``train_times(n, *, generator,
    device)`` (DDBM's τ ~ U[τ_min, T]); see :class:`genlab.models.EDMPrecond`, :class:`genlab.models.DDBMPrecond`.
    """

    def __call__(self, net: nn.Module, x_t: Tensor, t: Tensor, cond: Any | None) -> Tensor:
        """Return the field's prediction (of the Field's kind)."""


def call_net(net: nn.Module | Callable[..., Tensor], x_t: Tensor, t: Tensor, cond: Any | None = None) -> Tensor:
    """Call a raw network the way a :class:`Field` does (preconditionings call their network through this).

    Args:
        net: Called as ``net(x_t, t)``, ``net(x_t, t, c)`` or with ``labels=``.
        x_t: Network input ``(B, ...)``.
        t: Times ``(B,)`` in the data dtype.
        cond: ``None``, a tensor (extra input), or a dict with keys ``"x0"`` (known source), ``"cond"``
            (network input, defaults to x0) and ``"labels"`` (class labels, passed as ``labels=``).

    Returns:
        The network output.
    """
    if cond is None:
        return net(x_t, t)
    if isinstance(cond, dict):
        unknown = set(cond) - {"x0", "cond", "labels"}
        if unknown:
            raise ValueError(f"cond dict keys must be among 'x0', 'cond', 'labels'; got {sorted(unknown)}")
        c = cond.get("cond", cond.get("x0"))
        kwargs = {"labels": cond["labels"]} if cond.get("labels") is not None else {}
        return net(x_t, t, c, **kwargs) if c is not None else net(x_t, t, **kwargs)
    return net(x_t, t, cond)


class Field(nn.Module):
    """A network ``net(x_t, t[, cond])`` that predicts ``kind`` on ``interpolant``.

    Args:
        net: Module (or callable) called as ``net(x_t, t)`` or ``net(x_t, t, cond)`` with ``t`` a ``(B,)`` float
            tensor in the data dtype.
        interpolant: The path the network was trained on.
        kind: Its prediction kind, one of ``interpolant.field_kinds()`` (``"velocity"``, ``"x1"``, ``"x0"``,
            ``"noise"``, ``"score"``, ``"drift_fwd"``, ``"drift_bwd"``; the multi-head ``"g"`` on a restricted
            multimarginal path). The interpolant is the one authority on kinds.
        precond: Optional preconditioning wrapper (then ``net`` is the raw network).
        eps: Diffusion coefficient when ``kind`` is an SDE drift (needed to convert it).
        x1_range: ``(low, high)`` range of the data: the field's implied data prediction x̂1 is clamped to it and
            the output re-derived from the clamped x̂1, so every sampler and guidance method sees it. This is
            DDPM's ``clip_sample`` (Ho et al. 2020; diffusers' default for pixel-space ε-models): an ε-network's
            small bias becomes an x̂1 error of order (α/β)·bias at the noise end, which unclipped solvers amplify
            into diverging samples. Needs a path on which x̂1 determines the field's kind (no latent noise,
            ``γ = 0``) or ``kind="x1"``. ``None`` (default): no clamping.
    """

    def __init__(
        self,
        net: nn.Module | Callable[..., Tensor],
        interpolant: Interpolant,
        kind: str,
        precond: Precond | None = None,
        *,
        eps: float | None = None,
        x1_range: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(interpolant, Interpolant):
            raise TypeError(f"interpolant must be a genlab Interpolant, got {type(interpolant).__name__}")
        allowed = interpolant.field_kinds()
        if kind not in allowed:
            if kind not in KINDS:
                raise ValueError(f"unknown kind {kind!r}; a field on {interpolant!r} predicts one of {allowed}")
            raise ValueError(f"kind {kind!r} is not defined on {interpolant!r} for a field; it supports {allowed}")
        if kind in DRIFT_SIGNS and eps is None:
            raise ValueError(
                f"a field of kind {kind!r} needs eps (the SDE diffusion coefficient it was trained with)"
            )
        if x1_range is not None:
            try:
                low, high = (float(v) for v in x1_range)
            except (TypeError, ValueError):
                raise ValueError(f"x1_range must be a pair (low, high) of floats; got {x1_range!r}") from None
            if not low < high:
                raise ValueError(f"x1_range must have low < high; got {x1_range!r}")
            if kind != "x1" and (interpolant.schedule.has_noise or kind in DRIFT_SIGNS or kind in MULTI_HEAD_KINDS):
                raise ValueError(
                    f"x1_range clamps the data prediction, which does not determine a {kind!r} field on "
                    f"{interpolant!r} (the path has latent noise or the kind is not a one-field prediction); "
                    "use a field of kind 'x1' or drop x1_range"
                )
            x1_range = (low, high)
        self.net = net
        self.interpolant = interpolant
        self.kind = kind
        self.precond = precond
        self.eps = eps
        self.x1_range = x1_range

    def forward(self, x_t: Tensor, t: Tensor | float, cond: Any | None = None) -> Tensor:
        """The raw prediction of this field's own kind.

        Args:
            x_t: State ``(B, ...)``.
            t: Time(s) in [0, 1].
            cond: Conditioning passed to the network: a tensor (extra input; for bridges the known source x0),
                or a dict with keys ``"x0"`` (known source), ``"cond"`` (network input, defaults to x0) and
                ``"labels"`` (class labels, passed as ``labels=``).

        Returns:
            Prediction of kind :attr:`kind`, same shape as ``x_t``.
        """
        tt = as_time(t, x_t).to(x_t.dtype)
        if self.precond is not None:
            out = self.precond(self.net, x_t, tt, cond)
        else:
            out = call_net(self.net, x_t, tt, cond)
        expected = self.interpolant.prediction_shape(self.kind, x_t)
        if out.shape != expected:
            raise ValueError(f"the network returned shape {tuple(out.shape)} for input {tuple(x_t.shape)} "
                             f"(a {self.kind!r} field must return {tuple(expected)})")
        if self.x1_range is not None:
            out = self._clamp_x1(out, x_t, tt, cond)
        return out

    def _clamp_x1(self, out: Tensor, x_t: Tensor, t: Tensor, cond: Any | None) -> Tensor:
        """Re-derive the output from its data prediction clamped to :attr:`x1_range` (DDPM's ``clip_sample``)."""
        low, high = self.x1_range  # type: ignore[misc]
        x0 = self.known_source(cond)
        if self.kind == "x1":
            return out.clamp(low, high)
        x1_hat = self.interpolant.convert(out, self.kind, "x1", x_t, t, x0=x0)
        clamped = x1_hat.clamp(low, high)
        return self.interpolant.convert(clamped, "x1", self.kind, x_t, t, x0=x0)

    def save_pretrained(
        self,
        path: str | Path,
        *,
        interpolant_spec: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write this field as a genlab pretrained folder (config JSON + safetensors weights).

        See :func:`genlab.models.pretrained.save_field`; ``interpolant_spec`` is the ``{"name": ..., **kwargs}``
        the path was built from (a run's ``config.interpolant``), checked against this field's coefficients.
        """
        from genlab.models.pretrained import save_field

        return save_field(self, path, interpolant_spec=interpolant_spec, metadata=metadata)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: Any = None) -> Field:
        """Read a folder written by :meth:`save_pretrained` (see :func:`genlab.models.pretrained.load_field`)."""
        from genlab.models.pretrained import load_field

        return load_field(path, device=device)

    def known_source(self, cond: Any | None) -> Tensor | None:
        """The known x0 of a bridge path from the conditioning (a tensor, or a dict with key ``"x0"``)."""
        if not self.interpolant.conditional_source:
            return None
        if isinstance(cond, dict):
            cond = cond.get("x0")
        if not isinstance(cond, Tensor):
            raise ValueError(  # noqa: TRY004 - a missing condition is a value problem of the call, not a type error
                "this field lives on a bridge path (conditional_source=True): pass the known source x0 as cond "
                "(a tensor, or a dict with key 'x0')"
            )
        return cond

    def predict(
        self,
        x_t: Tensor,
        t: Tensor | float,
        kind: str,
        cond: Any | None = None,
        *,
        eps: Tensor | float | None = None,
    ) -> Tensor:
        """The prediction of ``kind``, converted exactly through the interpolant.

        Args:
            x_t: State.
            t: Time(s).
            kind: Requested kind.
            cond: Conditioning (bridges: the known x0).
            eps: Diffusion coefficient for ``drift_fwd``/``drift_bwd`` requests.

        Returns:
            The prediction of kind ``kind``.
        """
        return self.convert_output(self(x_t, t, cond), x_t, t, kind, cond, eps=eps)

    def convert_output(
        self,
        out: Tensor,
        x_t: Tensor,
        t: Tensor | float,
        kind: str,
        cond: Any | None = None,
        *,
        eps: Tensor | float | None = None,
    ) -> Tensor:
        """Convert a raw output of this field (computed at ``(x_t, t, cond)``) to ``kind`` without a new call.

        A drift field is defined with its own training ε; a drift with another ε is re-weighted through the
        velocity and the score, which needs a path where this field determines both.

        Args:
            out: Raw output of kind :attr:`kind`.
            x_t: State it was computed at.
            t: Time(s).
            kind: Requested kind.
            cond: Conditioning (bridges: the known x0).
            eps: Diffusion coefficient for ``drift_fwd``/``drift_bwd`` requests.

        Returns:
            The prediction of kind ``kind``.
        """
        same_eps = eps is None or (not isinstance(eps, Tensor) and float(eps) == self.eps)
        if kind == self.kind and (kind not in DRIFT_SIGNS or same_eps):
            return out
        x0 = self.known_source(cond)
        if self.kind in DRIFT_SIGNS:
            # the field's own drift is defined with its training eps; convert through that
            if kind in DRIFT_SIGNS and eps is not None:
                score = self.interpolant.convert(out, self.kind, "score", x_t, t, x0, eps=self.eps)
                vel = self.interpolant.convert(out, self.kind, "velocity", x_t, t, x0, eps=self.eps)
                return self.interpolant.sde_drift(vel, score, eps, forward=kind == "drift_fwd")
            return self.interpolant.convert(out, self.kind, kind, x_t, t, x0, eps=self.eps)
        return self.interpolant.convert(out, self.kind, kind, x_t, t, x0, eps=eps)
