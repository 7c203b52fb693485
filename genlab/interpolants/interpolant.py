"""The single interpolant abstraction: ``x_t = α(t)·x0 + β(t)·x1 + γ(t)·z``.

One class covers stochastic interpolants (one- and two-sided), flow matching / rectified flow, IADB, diffusion
(VP/VE) seen as interpolants, diffusion bridges (DDBM/DBIM) and the Brownian bridge of Schrödinger bridges.

Every prediction kind is a linear function of the posterior means of the path's unknown slots, so conversions are
one small linear solve (``reference/interpolants.md`` §1.5, §8). genlab solves for the unknowns

* ``x̂0`` = E[x0 | x_t] when the source is data and not known at sampling time (two-sided paths),
* ``x̂1`` = E[x1 | x_t],
* ``ŝ`` = ∇log ρ_t(x_t) (the score) whenever the path has Gaussian noise,

from the constraint ``x_t = α x̂0 + β x̂1 + γ ẑ`` and the given prediction(s). Writing the noise through the score
(``ẑ = −n ŝ`` with n the noise coefficient) keeps every coefficient finite at t ∈ {0, 1}: the velocity's noise
term is ``γ̇ ẑ = −γγ̇ ŝ`` and γγ̇ is finite where γ̇ is not.

Prediction kinds (one vocabulary everywhere):

* ``"velocity"``: PF-ODE drift b = α̇x̂0 + β̇x̂1 + γ̇ẑ = v − γγ̇ s;
* ``"x1"``: data prediction (denoiser);
* ``"x0"``: source prediction; for a Gaussian source this is ε;
* ``"noise"``: E[z | x_t] for two-sided paths; for a Gaussian source, E[x0 | x_t] (the ε of diffusion models);
* ``"score"``: ∇ log ρ_t;
* ``"drift_fwd"`` / ``"drift_bwd"``: b ± ε s of the forward/backward SDE (need ``eps``);
* ``"g"``: the K + 1 stacked heads g_k = E[x_k | x] of a multimarginal model (only on
  :class:`~genlab.interpolants.RestrictedMultimarginal`, which converts them to every other kind).

:data:`KINDS` is the vocabulary; :meth:`Interpolant.kinds` is the one authority on which of them a path supports
(conversions, :class:`~genlab.models.Field` and the sampler capability checks all ask it). Other conventions
(diffusers' ``v_prediction``, k-diffusion's σ) are mapped to these kinds at the boundary, in the adapters.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field

import torch
from torch import Tensor

from genlab.interpolants.schedules import Coeffs, Schedule
from genlab.utils import append_dims, as_time, randn_like_per_sample, schedule_dtype

__all__ = ["CAPABILITIES", "DRIFT_SIGNS", "KINDS", "MULTI_HEAD_KINDS", "Interpolant", "PathSample", "Semilinear"]

def _scalar(v: object) -> float | None:
    """``v`` as a python float when it is a number or a one-element tensor, else ``None``."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, Tensor) and v.numel() == 1:
        return float(v)
    return None


def _check_unit(t: float) -> None:
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must lie in [0, 1] (genlab time); got {t:.6g}")


#: The prediction-kind vocabulary: every kind genlab understands (which a path supports: :meth:`Interpolant.kinds`).
KINDS: tuple[str, ...] = ("velocity", "x1", "x0", "noise", "score", "drift_fwd", "drift_bwd", "g")

#: The SDE-drift kinds and their sign: drift_fwd = b + ε s, drift_bwd = b − ε s (Albergo et al. 2023, §2.3, eq. 2.33).
DRIFT_SIGNS: dict[str, float] = {"drift_fwd": 1.0, "drift_bwd": -1.0}

#: Multi-head kinds: one field of such a kind determines every slot of its path (the multimarginal heads g_k).
MULTI_HEAD_KINDS: tuple[str, ...] = ("g",)

#: Structures a path offers to a field (what samplers require; see :meth:`Interpolant.capabilities`).
CAPABILITIES: dict[str, str] = {
    "velocity": "a PF-ODE velocity (every path with a determined conversion to 'velocity')",
    "drift": "a field that predicts an SDE drift (drift_fwd / drift_bwd) itself",
    "score": "a score, i.e. a path with Gaussian noise (Gaussian source or gamma > 0)",
    "implicit": "re-noising with predicted ends (Interpolant.implicit_step)",
    "markov": "a Markovian (eta > 0) implicit step (Gaussian source, DDBM bridge or Brownian bridge)",
    "semilinear": "exponential-integrator structure (Gaussian source, or a bridge with known x0)",
    "gaussian_source": "a Gaussian source x0 ~ N(0, I) (diffusion / flow matching from noise)",
    "bridge": "a bridge path whose field is conditioned on a known x0 (DDBM/DBIM)",
}
#: Capabilities that need the path's (α, β, γ) coefficients (dropped where the schedule does not describe the path).
_COEFFICIENT_CAPABILITIES = frozenset({"implicit", "markov", "semilinear"})


@dataclass
class PathSample:
    """A draw of the path at time ``t``.

    Attributes:
        t: Times, shape ``(B,)``.
        x_t: The interpolated state.
        x0: Source end.
        x1: Target end.
        z: Latent noise (``None`` when γ ≡ 0).
        targets: Regression target of each prediction kind (``velocity``, ``x1``, ``x0``, and, when the path has
            Gaussian noise, ``noise`` and ``score``).
    """

    t: Tensor
    x_t: Tensor
    x0: Tensor
    x1: Tensor
    z: Tensor | None
    targets: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Semilinear:
    """What exponential-integrator samplers need: ``x_t = known·x0 + data·x̂1 + noise·ê``.

    Attributes:
        noise: Coefficient of the Gaussian slot (α for a Gaussian source, γ for a bridge).
        data: Coefficient β of the data slot.
        known: Coefficient α of the known source (bridges), or ``None`` for a Gaussian source.
        lam: λ = log(data/noise), the half log-SNR.
    """

    noise: Tensor
    data: Tensor
    known: Tensor | None
    lam: Tensor


class Interpolant:
    """A path ``x_t = α(t)·x0 + β(t)·x1 + γ(t)·z`` with its targets, conversions and implicit steps.

    Args:
        schedule: The coefficients α, β, γ.
        source: ``"gaussian"`` (x0 ~ N(0, I) independent of x1: the noise of plain generation) or ``"data"``
            (x0 drawn by a coupling; noise, if any, comes from γ).
        conditional_source: For ``source="data"``: the source is known when sampling and the field is
            conditioned on it (bridges: DDBM/DBIM, data-dependent couplings with conditioning). Conversions then
            take ``x0`` and the unknowns are x̂1 and the score only.
        name: Optional display name.
    """

    def __init__(
        self,
        schedule: Schedule,
        *,
        source: str = "gaussian",
        conditional_source: bool = False,
        name: str | None = None,
    ) -> None:
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a genlab Schedule, got {type(schedule).__name__}")
        if source not in ("gaussian", "data"):
            raise ValueError(f"source must be 'gaussian' or 'data', got {source!r}")
        if source == "gaussian" and schedule.has_noise:
            raise ValueError(
                "a Gaussian source with a non-zero gamma has two independent noise slots; use gamma='zero' for a "
                "one-sided path, or source='data' for a two-sided stochastic interpolant"
            )
        if conditional_source and source != "data":
            raise ValueError("conditional_source=True needs source='data' (a bridge from a known x0)")
        self.schedule = schedule
        self.source = source
        self.conditional_source = bool(conditional_source)
        self.name = name or type(schedule).__name__
        # Memo of pure functions of a scalar time (coefficients, conversion weights) for the sampling fast path.
        self._scalar_memo: dict[tuple, object] = {}

    # ------------------------------------------------------------------ structure
    @property
    def gaussian_source(self) -> bool:
        """Whether x0 ~ N(0, I) (one-sided path)."""
        return self.source == "gaussian"

    @property
    def has_noise(self) -> bool:
        """Whether the path has a Gaussian slot (a Gaussian source, or γ ≢ 0): needed for score/noise kinds."""
        return self.gaussian_source or self.schedule.has_noise

    @property
    def unknowns(self) -> tuple[str, ...]:
        """Slots a conversion solves for, in order: ``x0`` (two-sided, unknown source), ``x1``, ``score``."""
        out: list[str] = []
        if self.source == "data" and not self.conditional_source:
            out.append("x0")
        out.append("x1")
        if self.has_noise:
            out.append("score")
        return tuple(out)

    def kinds(self) -> tuple[str, ...]:
        """Prediction kinds this path supports: the one authority (conversions, ``Field`` and samplers ask it).

        Every kind of the vocabulary :data:`KINDS` except the multi-head ``"g"`` on a path with Gaussian noise;
        ``velocity``, ``x1``, ``x0`` on a noise-free path. Subclasses with other fields (multimarginal heads)
        extend it.
        """
        if self.has_noise:
            return tuple(k for k in KINDS if k not in MULTI_HEAD_KINDS)
        return ("velocity", "x1", "x0")

    def field_kinds(self) -> tuple[str, ...]:
        """Kinds a :class:`~genlab.models.Field` on this path may predict.

        All of :meth:`kinds`, except ``"x0"`` on a bridge (``conditional_source=True``): there x0 is known, so an
        x0 prediction carries no information to convert from (:meth:`conversion_weights` refuses it).
        """
        if self.conditional_source:
            return tuple(k for k in self.kinds() if k != "x0")
        return self.kinds()

    def prediction_shape(self, kind: str, x_t: Tensor) -> torch.Size:
        """Shape of a prediction of ``kind`` at ``x_t``: ``x_t.shape`` (multi-head kinds extend it in subclasses)."""
        return x_t.shape

    def check_kind(self, kind: object, *, name: str = "kind") -> str:
        """Return ``kind`` if this path supports it, else raise naming the vocabulary and :meth:`kinds`.

        Args:
            kind: A prediction kind.
            name: Argument name for the message.

        Returns:
            ``kind``.

        Raises:
            ValueError: ``kind`` is outside the vocabulary (``unknown prediction kind``) or undefined on this path.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown prediction kind {kind!r} ({name}); choose one of {self.kinds()} on {self!r}")
        if kind not in self.kinds():
            raise ValueError(f"kind {kind!r} ({name}) is undefined on {self!r}; this path supports {self.kinds()}")
        return str(kind)

    def capabilities(self, field_kind: str | None = None) -> frozenset[str] | None:
        """Sampler structures (keys of :data:`CAPABILITIES`) a field of ``field_kind`` offers on this path.

        ``velocity`` when one field determines the drift (a velocity field needs no conversion even on a two-sided
        path); ``score`` and ``implicit`` where the path has Gaussian noise and one field determines every slot;
        ``implicit`` on a noise-free path; ``gaussian_source`` and ``markov`` for a Gaussian source; ``bridge`` for
        a known source; ``semilinear`` for a Gaussian or known source with noise; ``markov`` where the schedule has
        a closed-form Markov step; ``drift`` for a drift field. A multi-head field (``"g"``) determines every slot.
        Where the schedule does not describe the path (a multimarginal path off the {0, i, j} face), the
        coefficient-based structures (implicit, markov, semilinear) are dropped.

        Args:
            field_kind: Kind of the field that will be sampled (``None``: any single field).

        Returns:
            A frozenset of capability names, or ``None`` when no field of ``field_kind`` lives on this path (a kind
            it converts to but that is not one of :meth:`field_kinds`).
        """
        if field_kind is not None:
            self.check_kind(field_kind, name="field_kind")
            if field_kind not in self.field_kinds():
                return None
        caps: set[str] = set()
        single_ok = len(self.unknowns) <= 2 or field_kind in MULTI_HEAD_KINDS  # one field determines every kind
        if single_ok or field_kind == "velocity":
            caps.add("velocity")
        if field_kind in DRIFT_SIGNS:
            caps.add("drift")
        if single_ok:
            caps |= {"score", "implicit"} if self.has_noise else {"implicit"}
        if self.gaussian_source:
            caps |= {"gaussian_source", "markov"}
        if self.conditional_source:
            caps.add("bridge")
        if self.has_noise and (self.gaussian_source or self.conditional_source):
            caps.add("semilinear")
        if not self.schedule.describes_path:
            return frozenset(caps - _COEFFICIENT_CAPABILITIES)
        if self.schedule.markov_omega(torch.tensor([0.25], dtype=torch.float64),
                                      torch.tensor([0.5], dtype=torch.float64)) is not None:
            caps.add("markov")
        return frozenset(caps)

    def __repr__(self) -> str:
        return (f"Interpolant({self.schedule!r}, source={self.source!r}, "
                f"conditional_source={self.conditional_source})")

    # ------------------------------------------------------------------ coefficients
    def coeffs(self, t: Tensor | float, x: Tensor) -> Coeffs:
        """Coefficients at ``t`` in float64 (or float32 where float64 is unavailable), shape ``(B,)``.

        Args:
            t: Time(s) in [0, 1].
            x: A batch, used for its batch size and device.

        Returns:
            :class:`Coeffs` of shape ``(B,)``.
        """
        self.schedule.require_coefficients("coeffs")
        return self.schedule.coeffs(as_time(t, x))

    def _noise(self, c: Coeffs) -> tuple[Tensor, Tensor]:
        """(n, n·ṅ): coefficient of the Gaussian slot and the finite product n·ṅ."""
        if self.gaussian_source:
            return c.alpha, c.alpha_dalpha_finite
        return c.gamma, c.gamma_dgamma

    def _row(self, kind: str, c: Coeffs, eps: Tensor | None) -> list[Tensor]:
        """Coefficients of ``kind`` on the unknowns (x̂0?, x̂1, ŝ?), plus the coefficient on a known x0 last."""
        zero = torch.zeros_like(c.alpha)
        one = torch.ones_like(c.alpha)
        n, n_dn = self._noise(c) if self.has_noise else (zero, zero)
        gauss = self.gaussian_source
        # value of each kind as: x0_coef * x̂0 + x1_coef * x̂1 + s_coef * ŝ   (x̂0 = −α ŝ for a Gaussian source)
        if kind in ("velocity", "drift_fwd", "drift_bwd"):
            x0c, x1c, sc = (zero, c.d_beta, -n_dn) if gauss else (c.d_alpha, c.d_beta, -c.gamma_dgamma)
            if kind != "velocity":
                if eps is None:
                    raise ValueError(f"kind {kind!r} needs eps (the diffusion coefficient ε(t) of the SDE)")
                if not self.has_noise:
                    raise ValueError(f"kind {kind!r} needs a score, but this path has no Gaussian noise")
                sc = sc + DRIFT_SIGNS[kind] * eps  # b ± ε s as a row on the unknowns (see sde_drift)
        elif kind == "x1":
            x0c, x1c, sc = zero, one, zero
        elif kind == "x0":
            x0c, x1c, sc = (zero, zero, -n) if gauss else (one, zero, zero)
        elif kind in ("noise", "score"):
            if not self.has_noise:
                raise ValueError(
                    f"kind {kind!r} is undefined on a path without Gaussian noise (gaussian source or gamma > 0); "
                    f"this path supports {self.kinds()}"
                )
            x0c, x1c, sc = (zero, zero, -n) if kind == "noise" else (zero, zero, one)
        else:
            raise ValueError(f"unknown prediction kind {kind!r}; choose one of {self.kinds()}")
        row = []
        if "x0" in self.unknowns:
            row.append(x0c)
        row.append(x1c)
        if "score" in self.unknowns:
            row.append(sc)
        row.append(x0c if self.conditional_source else zero)  # coefficient on the known x0
        return row

    def _constraint_row(self, c: Coeffs) -> list[Tensor]:
        """x_t as a function of the unknowns: α x̂0 + β x̂1 − n² ŝ (+ α x0 when x0 is known)."""
        zero = torch.zeros_like(c.alpha)
        n, _ = self._noise(c) if self.has_noise else (zero, zero)
        row = []
        if "x0" in self.unknowns:
            row.append(c.alpha)
        row.append(c.beta)
        if "score" in self.unknowns:
            row.append(-(n**2))
        row.append(c.alpha if self.conditional_source else zero)
        return row

    # ------------------------------------------------------------------ sampling the path
    def sample(
        self,
        x0: Tensor | None,
        x1: Tensor,
        t: Tensor | float,
        z: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        antithetic: bool = False,
        targets: Collection[str] | None = None,
    ) -> PathSample:
        """Draw ``x_t`` and the regression targets of every kind.

        Args:
            x0: Source end; ``None`` for a Gaussian source draws it.
            x1: Target end (data), shape ``(B, ...)``.
            t: Times in [0, 1], a float or shape ``(B,)``.
            z: Latent noise (drawn if ``None`` and γ ≢ 0; ignored when γ ≡ 0, where it does not enter x_t and
                the noise/score targets of a Gaussian source are x0-based).
            generator: Random generator for the draws (per sample, so results do not depend on batch size).
            antithetic: Return a doubled batch with ``±z`` (or ``±x0`` for a Gaussian source): the antithetic
                estimator of Albergo et al. (2023, §6.1), which keeps the score/noise losses' variance finite as
                γ → 0.
            targets: Only these targets are computed (the training objective asks for its kind's; ``x0``,
                ``x1`` and ``noise`` cost nothing); ``None`` (default): every target of the path.

        Returns:
            A :class:`PathSample`.
        """
        self.schedule.require_coefficients("sample")
        if targets is not None:
            unknown = set(targets) - set(KINDS)
            if unknown:
                raise ValueError(f"targets {sorted(unknown)} are not prediction kinds; choose among {KINDS}")
        want_velocity = targets is None or "velocity" in targets
        want_score = targets is None or "score" in targets
        if x0 is None:
            if not self.gaussian_source:
                raise ValueError("x0 is required for a path with a data source (source='data')")
            x0 = randn_like_per_sample(x1, generator=generator)
        if x0.shape != x1.shape:
            raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
        t = as_time(t, x1)
        if not self.schedule.has_noise:
            z = None
        elif z is None:
            z = randn_like_per_sample(x1, generator=generator)
        if z is not None and z.shape != x1.shape:
            raise ValueError(f"z must have the shape of x1 {tuple(x1.shape)}, got {tuple(z.shape)}")
        if antithetic:
            if self.gaussian_source:
                x0 = torch.cat([x0, -x0])
            else:
                if z is None:
                    raise ValueError("antithetic=True needs Gaussian noise: the path has gamma = 0 and a data source")
                z = torch.cat([z, -z])
                x0 = torch.cat([x0, x0])
            x1, t = torch.cat([x1, x1]), torch.cat([t, t])
        c = self.schedule.coeffs(t)  # float64; only the coefficients used below are cast to the data dtype
        nd, dtype = x1.ndim, x1.dtype

        def cast(v: Tensor) -> Tensor:
            return append_dims(v.to(dtype), nd)

        a, b = cast(c.alpha), cast(c.beta)
        x_t = a * x0 + b * x1
        out: dict[str, Tensor] = {"x1": x1, "x0": x0}
        if z is not None:
            g = cast(c.gamma)
            x_t = x_t + g * z
            out["noise"] = z
            if want_score:
                out["score"] = -z / g
        elif self.gaussian_source:
            out["noise"] = x0
            if want_score:
                out["score"] = -x0 / a
        if want_velocity:
            velocity = cast(c.d_alpha) * x0 + cast(c.d_beta) * x1
            if z is not None:
                dg = cast(c.d_gamma)
                # γ̇ is infinite exactly at t ∈ {0, 1} for γ = √(t(1−t)); the conditional velocity's noise term
                # is then undefined and dropped (its conditional expectation −γγ̇·s stays finite).
                velocity = velocity + torch.where(torch.isfinite(dg), dg, torch.zeros_like(dg)) * z
            out["velocity"] = velocity
        return PathSample(t=t, x_t=x_t, x0=x0, x1=x1, z=z, targets=out)

    # ------------------------------------------------------------------ conversions
    def convert(
        self,
        pred: Tensor | tuple[Tensor, ...],
        from_kind: str | tuple[str, ...],
        to_kind: str,
        x_t: Tensor,
        t: Tensor | float,
        x0: Tensor | None = None,
        *,
        eps: Tensor | float | None = None,
    ) -> Tensor:
        """Convert a prediction between kinds exactly (``reference/interpolants.md`` §1.5, §8).

        Args:
            pred: The prediction, or a tuple of predictions for two-sided paths that need two fields.
            from_kind: Kind(s) of ``pred``.
            to_kind: Requested kind.
            x_t: Current state.
            t: Time(s) in [0, 1].
            x0: The known source (bridges, ``conditional_source=True``).
            eps: Diffusion coefficient ε(t) ≥ 0 for ``drift_fwd``/``drift_bwd`` (a float or ``(B,)``).

        Returns:
            The prediction of kind ``to_kind``.

        Raises:
            ValueError: unknown kinds, or an under-determined conversion (a two-sided path with a single field).
        """
        preds = (pred,) if isinstance(pred, Tensor) else tuple(pred)
        kinds = (from_kind,) if isinstance(from_kind, str) else tuple(from_kind)
        if len(preds) != len(kinds):
            raise ValueError(f"got {len(preds)} predictions for {len(kinds)} kinds {kinds}")
        for k in (*kinds, to_kind):
            self.check_kind(k)
        for p in preds:
            if p.shape != x_t.shape:
                raise ValueError(f"prediction shape {tuple(p.shape)} differs from x_t shape {tuple(x_t.shape)}")
        t_scalar = _scalar(t)
        eps_scalar = _scalar(eps) if eps is not None else None
        if t_scalar is not None and (eps is None or eps_scalar is not None):
            _check_unit(t_scalar)
            if len(kinds) == 1 and kinds[0] == to_kind:
                return preds[0]
            # sampling fast path: the weights are python floats, memoised per (kinds, time, eps)
            ws, wk = self._scalar_weights(kinds, to_kind, t_scalar, eps_scalar)
            if self.conditional_source and x0 is None:
                raise ValueError(
                    "this bridge path needs the known source x0 to convert predictions (pass x0=, or cond= to the "
                    "field/sampler)"
                )
            out = x_t * ws[-1]
            for w, p in zip(ws[:-1], preds):
                if w != 0.0:
                    out = out.add_(p, alpha=w)
            if self.conditional_source and wk != 0.0:
                out = out.add_(x0, alpha=wk)
            return out
        as_time(t, x_t)  # validates the shape and the range of t even when no conversion is needed
        if len(kinds) == 1 and kinds[0] == to_kind:
            return preds[0]
        weights, w_known = self.conversion_weights(kinds, to_kind, t, x_t, eps=eps)
        nd = x_t.ndim
        out = append_dims(weights[-1], nd) * x_t
        for w, p in zip(weights[:-1], preds):
            out = out + append_dims(w, nd) * p
        if self.conditional_source:
            if x0 is None:
                raise ValueError(
                    "this bridge path needs the known source x0 to convert predictions (pass x0=, or cond= to the "
                    "field/sampler)"
                )
            out = out + append_dims(w_known, nd) * x0
        return out

    def sde_drift(
        self,
        velocity: Tensor,
        score: Tensor | None,
        eps: Tensor | float,
        *,
        forward: bool = True,
    ) -> Tensor:
        """Drift of the forward or backward SDE, ``b_± = b ± ε·s`` (Albergo et al. 2023, §2.3; ref. §1.4).

        The one place genlab re-weights a velocity and a score into an SDE drift (fields, SDE samplers and the
        multimarginal conversions call it). The score is read only where ε ≠ 0 and may be ``None`` when ε ≡ 0.

        Args:
            velocity: PF-ODE drift b, shape ``(B, ...)``.
            score: ∇ log ρ_t, same shape (``None`` allowed when ε ≡ 0).
            eps: Diffusion coefficient ε(t) ≥ 0: a float, a one-element tensor or a ``(B,)`` tensor.
            forward: ``True`` for the forward SDE (b + εs, generation), ``False`` for the backward one (b − εs).

        Returns:
            The drift, shape and dtype of ``velocity``.

        Raises:
            ValueError: ``eps`` of a wrong shape, or ``score=None`` with ε ≠ 0.
        """
        e = torch.as_tensor(eps, dtype=velocity.dtype, device=velocity.device)
        if e.numel() == 1:
            e = e.reshape(())
        elif e.ndim == 1 and velocity.ndim >= 1 and e.shape[0] == velocity.shape[0]:
            e = append_dims(e, velocity.ndim)
        else:
            raise ValueError(f"eps must be a float or a ({velocity.shape[0]},) tensor; got shape {tuple(e.shape)}")
        if score is None:
            if bool((e != 0).any()):
                raise ValueError("score=None is only allowed where eps = 0 (the drift b ± eps*s needs the score)")
            return velocity
        return velocity + e * score if forward else velocity - e * score

    def conversion_weights(
        self,
        from_kinds: tuple[str, ...],
        to_kind: str,
        t: Tensor | float,
        x_t: Tensor,
        *,
        eps: Tensor | float | None = None,
    ) -> tuple[list[Tensor], Tensor]:
        """Weights ``w`` with ``to = Σ_k w_k·pred_k + w_x·x_t + w_known·x0`` (all of shape ``(B,)``, data dtype).

        Args:
            from_kinds: Kinds of the given predictions.
            to_kind: Requested kind.
            t: Time(s).
            x_t: Current state (batch size, device, dtype).
            eps: Diffusion coefficient for SDE drifts.

        Returns:
            (``[w_pred_1, ..., w_pred_k, w_x]``, ``w_known``).
        """
        self.schedule.require_coefficients("conversion between ordinary kinds")
        unknowns = self.unknowns
        if len(from_kinds) + 1 != len(unknowns):
            need = len(unknowns) - 1
            how = "under-determined" if len(from_kinds) < need else "over-determined"
            raise ValueError(
                f"conversion from {from_kinds} to {to_kind!r} is {how} on this path: it has unknowns "
                f"{unknowns} and needs exactly {need} prediction(s) besides x_t"
                + (" (a two-sided interpolant with an unknown source needs two fields, e.g. ('velocity', "
                   "'noise') or ('x0', 'x1'); or pass a known x0 by building the path with conditional_source=True)"
                   if "x0" in unknowns and len(from_kinds) < need else "")
            )
        if self.conditional_source and "x0" in from_kinds:
            raise ValueError("on a bridge path x0 is known; an 'x0' prediction carries no information to convert from")
        tt = as_time(t, x_t)
        # all times equal (the sampling case): solve once and broadcast
        uniform = bool((tt == tt[0]).all()) if tt.numel() > 0 else True
        t_solve = tt[:1] if uniform else tt
        c = self.schedule.coeffs(t_solve)
        eps_t = None
        if eps is not None:
            eps_t = torch.as_tensor(eps, dtype=t_solve.dtype, device=t_solve.device)
            eps_t = eps_t.expand_as(t_solve) if eps_t.ndim == 0 or not uniform else eps_t[:1]
        rows = [self._row(k, c, eps_t) for k in from_kinds] + [self._constraint_row(c)]
        k = len(unknowns)
        mat = torch.stack([torch.stack(r[:k], -1) for r in rows], -2)  # (B', k, k)
        known = torch.stack([r[k] for r in rows], -1)  # (B', k)  coefficient on x0 in each equation
        target = self._row(to_kind, c, eps_t)
        trow = torch.stack(target[:k], -1)  # (B', k)
        # to = trow · u + target_known·x0, with mat·u = rhs − known·x0  ⇒  u = mat⁻¹(rhs − known x0)
        try:
            w = torch.linalg.solve(mat.transpose(-1, -2), trow.unsqueeze(-1)).squeeze(-1)  # wᵀ = trowᵀ mat⁻¹
        except torch.linalg.LinAlgError:
            raise ValueError(
                f"conversion {from_kinds} -> {to_kind!r} is singular at t in [{float(tt.min()):.4g}, "
                f"{float(tt.max()):.4g}] on {self!r} (a coefficient it divides by vanishes there); evaluate at "
                "interior times"
            ) from None
        w_known = target[k] - (w * known).sum(-1)
        if uniform and tt.shape[0] != 1:
            w = w.expand(tt.shape[0], k)
            w_known = w_known.expand(tt.shape[0])
        dtype = x_t.dtype
        return [w[:, i].to(dtype) for i in range(k)], w_known.to(dtype)

    def _memo(self, key: tuple, make):
        memo = self.__dict__.setdefault("_scalar_memo", {})
        if key not in memo:
            if len(memo) > 65536:
                memo.clear()
            memo[key] = make()
        return memo[key]

    def _scalar_weights(self, kinds: tuple[str, ...], to_kind: str, t: float,
                        eps: float | None) -> tuple[list[float], float]:
        """:meth:`conversion_weights` at one time, as python floats (memoised)."""

        def make() -> tuple[list[float], float]:
            probe = torch.zeros(1, dtype=torch.float64)
            ws, wk = self.conversion_weights(kinds, to_kind, torch.tensor([t], dtype=torch.float64), probe, eps=eps)
            return [float(w) for w in ws], float(wk)

        return self._memo(("w", kinds, to_kind, t, eps), make)

    def scalar_coeffs(self, t: float) -> Coeffs:
        """Coefficients at one time as python floats (float64 arithmetic, memoised).

        Args:
            t: A time in [0, 1].

        Returns:
            :class:`Coeffs` whose fields are floats.
        """
        _check_unit(t)

        def make() -> Coeffs:
            c = self.schedule.coeffs(torch.tensor([t], dtype=torch.float64))
            vals = {k: float(getattr(c, k)) for k in ("alpha", "beta", "gamma", "d_alpha", "d_beta", "d_gamma",
                                                      "gamma_dgamma")}
            return Coeffs(**vals, alpha_dalpha=float(c.alpha_dalpha_finite))

        return self._memo(("c", t), make)

    def endpoints(
        self,
        pred: Tensor | tuple[Tensor, ...],
        from_kind: str | tuple[str, ...],
        x_t: Tensor,
        t: Tensor | float,
        x0: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Posterior means ``(x̂0, x̂1)`` of both ends (x̂0 is ε for a Gaussian source, the known x0 for bridges).

        Args:
            pred: Prediction(s).
            from_kind: Kind(s) of ``pred``.
            x_t: Current state.
            t: Time(s).
            x0: Known source (bridges).

        Returns:
            ``(x0_hat, x1_hat)``.
        """
        x1_hat = self.convert(pred, from_kind, "x1", x_t, t, x0)
        if self.conditional_source:
            if x0 is None:
                raise ValueError("this bridge path needs the known source x0")
            return x0, x1_hat
        x0_hat = self.convert(pred, from_kind, "x0", x_t, t, x0)
        return x0_hat, x1_hat

    # ------------------------------------------------------------------ implicit (DDIM / IADB / DBIM) steps
    def implicit_step(
        self,
        x_s: Tensor,
        s: Tensor | float,
        t: Tensor | float,
        x0_hat: Tensor | None,
        x1_hat: Tensor,
        omega: Tensor | float = 0.0,
        xi: Tensor | None = None,
    ) -> Tensor:
        """Re-noise from time ``s`` to ``t`` keeping the predicted ends fixed.

        ``x_t = Σ_{j ∉ noise} c_j(t) ê_j + √(n_t² − ω²)·ê_n + ω ξ``, with the noise estimate
        ``ê_n = (x_s − Σ_j c_j(s) ê_j)/n_s``. This one function is DDIM(η) (Song et al. ICLR'21, eq. 12) on a
        Gaussian-source path, IADB's deterministic step (Heitz et al. 2023, Alg. 2) with ω = 0 on the linear path,
        and the DBIM(η) step (Zheng et al. ICLR'25, eq. 10) on a bridge. Where ``n_s = 0`` (the booting step of a
        bridge), ê_n is taken as 0 and all noise comes from ``ω ξ``.

        Args:
            x_s: State at ``s``.
            s: Current time(s).
            t: Next time(s).
            x0_hat: Source estimate (the known x0 for bridges). Ignored, and may be ``None``, for a Gaussian
                source: the noise estimate is re-derived from ``x_s`` and ``x1_hat`` (which is the same ε̂ when
                both come from one prediction).
            x1_hat: Data estimate.
            omega: Std ω of the fresh noise (``η·markov_omega(s, t)`` for DDIM/DBIM(η)); must satisfy ω ≤ n_t.
            xi: Fresh standard normal noise, required when ω > 0.

        Returns:
            The state at ``t``.
        """
        self.schedule.require_coefficients("implicit_step")
        s_scalar, t_scalar, omega_scalar = _scalar(s), _scalar(t), _scalar(omega)
        if s_scalar is not None and t_scalar is not None and omega_scalar is not None:
            return self._implicit_step_scalar(x_s, s_scalar, t_scalar, x0_hat, x1_hat, omega_scalar, xi)
        cs = self.schedule.coeffs(as_time(s, x_s)).to(x_s.dtype)
        ct = self.schedule.coeffs(as_time(t, x_s)).to(x_s.dtype)
        nd = x_s.ndim
        if not self.has_noise:
            if isinstance(omega, Tensor) and bool((omega != 0).any()) or (not isinstance(omega, Tensor) and omega):
                raise ValueError("omega must be 0 on a path without Gaussian noise (no slot to re-noise)")
            return append_dims(ct.alpha, nd) * x0_hat + append_dims(ct.beta, nd) * x1_hat
        if self.gaussian_source:
            n_s, n_t = cs.alpha, ct.alpha
            mean_t = append_dims(ct.beta, nd) * x1_hat
            signal_s = append_dims(cs.beta, nd) * x1_hat
        else:
            n_s, n_t = cs.gamma, ct.gamma
            mean_t = append_dims(ct.alpha, nd) * x0_hat + append_dims(ct.beta, nd) * x1_hat
            signal_s = append_dims(cs.alpha, nd) * x0_hat + append_dims(cs.beta, nd) * x1_hat
        omega_t = torch.as_tensor(omega, dtype=x_s.dtype, device=x_s.device)
        if omega_t.ndim == 0:
            omega_t = omega_t.expand(x_s.shape[0])
        if bool((omega_t > n_t * (1 + 1e-6) + 1e-12).any()):
            raise ValueError("omega exceeds the noise level at t (need omega <= n(t)); lower eta")
        keep = torch.sqrt((n_t**2 - omega_t**2).clamp_min(0))
        safe = n_s > 0
        ratio = torch.where(safe, keep / torch.where(safe, n_s, torch.ones_like(n_s)), torch.zeros_like(n_s))
        out = mean_t + append_dims(ratio, nd) * (x_s - signal_s)
        if bool((omega_t > 0).any()):
            if xi is None:
                raise ValueError("xi (fresh standard normal noise) is required when omega > 0")
            out = out + append_dims(omega_t, nd) * xi
        return out

    def _implicit_step_scalar(self, x_s: Tensor, s: float, t: float, x0_hat: Tensor | None, x1_hat: Tensor,
                              omega: float, xi: Tensor | None) -> Tensor:
        """:meth:`implicit_step` at scalar times: the same formula as one fused linear combination."""
        cs, ct = self.scalar_coeffs(s), self.scalar_coeffs(t)
        if not self.has_noise:
            if omega != 0.0:
                raise ValueError("omega must be 0 on a path without Gaussian noise (no slot to re-noise)")
            return (x0_hat * ct.alpha).add_(x1_hat, alpha=ct.beta)
        n_s, n_t = (cs.alpha, ct.alpha) if self.gaussian_source else (cs.gamma, ct.gamma)
        if omega > n_t * (1 + 1e-6) + 1e-12:
            raise ValueError("omega exceeds the noise level at t (need omega <= n(t)); lower eta")
        ratio = math.sqrt(max(n_t**2 - omega**2, 0.0)) / n_s if n_s > 0 else 0.0
        # x_t = mean_t + ratio·(x_s − signal_s), written as a combination of x_s, x̂1 (and x̂0 for a data source)
        out = (x_s * ratio).add_(x1_hat, alpha=ct.beta - ratio * cs.beta)
        if not self.gaussian_source:
            out = out.add_(x0_hat, alpha=ct.alpha - ratio * cs.alpha)
        if omega > 0:
            if xi is None:
                raise ValueError("xi (fresh standard normal noise) is required when omega > 0")
            out = out.add_(xi, alpha=omega)
        return out

    def markov_omega(self, s: Tensor | float, t: Tensor | float, x: Tensor) -> Tensor:
        """ω of the Markovian (η = 1) step from ``s`` to ``t`` (data dtype, shape ``(B,)``).

        Uses the schedule's closed form when it has one (DDBM bridges: α_tρ_t√(1−ρ_t²/ρ_s²); Brownian bridge);
        otherwise, for a Gaussian source, DDPM's posterior std ``α_t √(1 − ν_t²/ν_s²)`` with ν = α/β the
        noise-to-signal ratio (Song et al. ICLR'21, eq. 16 with η = 1).

        Args:
            s: Current time(s).
            t: Next time(s).
            x: Batch (size/device/dtype).

        Returns:
            ω with shape ``(B,)``.
        """
        self.schedule.require_coefficients("markov_omega")
        ss, tt = as_time(s, x), as_time(t, x)
        omega = self.schedule.markov_omega(ss, tt)
        if omega is None:
            if not self.gaussian_source:
                raise ValueError(
                    f"{self.schedule!r} has no Markovian (eta > 0) step: only Gaussian-source paths, DDBM bridges "
                    "and the Brownian bridge define one; use eta=0"
                )
            cs, ct = self.schedule.coeffs(ss), self.schedule.coeffs(tt)
            nu_s = cs.alpha / cs.beta
            nu_t = ct.alpha / ct.beta
            ratio = torch.where(torch.isfinite(nu_s), (nu_t / nu_s) ** 2, torch.zeros_like(nu_s))
            omega = ct.alpha * torch.sqrt((1 - ratio).clamp_min(0))
        return omega.to(x.dtype)

    # ------------------------------------------------------------------ exponential-integrator structure
    def semilinear(self, t: Tensor | float, x: Tensor) -> Semilinear:
        """Coefficients for exponential-integrator samplers (DEIS, DPM-Solver++, DBIM high order).

        Args:
            t: Time(s).
            x: Batch (size/device).

        Returns:
            :class:`Semilinear` in the schedule dtype (float64 where available).

        Raises:
            ValueError: for paths without that structure (two-sided paths with an unknown source, or no noise).
        """
        self.schedule.require_coefficients("semilinear")
        if not self.has_noise:
            raise ValueError("semilinear structure needs Gaussian noise; this path has none (use an ODE sampler)")
        if self.source == "data" and not self.conditional_source:
            raise ValueError(
                "semilinear structure needs a Gaussian source or a known source (bridge); this two-sided "
                "interpolant has an unknown data source — use an ODE/SDE sampler"
            )
        c = self.schedule.coeffs(as_time(t, x))
        if self.gaussian_source:
            return Semilinear(noise=c.alpha, data=c.beta, known=None, lam=torch.log(c.beta / c.alpha))
        return Semilinear(noise=c.gamma, data=c.beta, known=c.alpha, lam=torch.log(c.beta / c.gamma))

    def lam(self, t: Tensor | float) -> Tensor:
        """The half log-SNR λ(t) = log(data/noise) of the semilinear structure (:meth:`semilinear`).

        λ = log(β/α) on a Gaussian-source path and log(β/γ) on a bridge with known source (DPM-Solver's λ = log(α/σ)
        in its notation, Lu et al. 2022, eq. 3.1); ``−inf`` where the data coefficient vanishes, ``+inf`` where the
        noise does. Monotone in t on every genlab path with that structure.

        Args:
            t: Time(s), a float or a tensor of any shape, in [0, 1].

        Returns:
            λ in float64 (where the device has it), shape of ``t``, on ``t``'s device (CPU for a float).
        """
        dev = t.device if isinstance(t, Tensor) else None
        tt = torch.as_tensor(t, dtype=schedule_dtype(dev), device=dev)
        flat = tt.reshape(-1)
        return self.semilinear(flat, flat).lam.to(flat.dtype).reshape(tt.shape)

    def time_at_lam(
        self,
        lam: Tensor | float,
        *,
        t_lo: Tensor | float = 0.0,
        t_hi: Tensor | float = 1.0,
        iters: int = 80,
    ) -> Tensor:
        """The time t in [t_lo, t_hi] at which :meth:`lam` equals ``lam`` (the one inverse of λ(t) in genlab).

        Uses the schedule's closed-form ``snr_inverse(2λ)`` on a Gaussian-source path when it has one and the
        result reproduces λ to float64 precision (1e-14 relative, or exactly for infinite targets); otherwise (or
        for the entries where the closed form loses digits, as the cosine-VP one does near t = 0) a float64
        bisection on the monotone λ(t). Targets outside [λ(t_lo), λ(t_hi)]
        go to the nearer end of the bracket (``+inf`` gives the end where the noise vanishes).

        Args:
            lam: Target λ values (float or tensor of any shape).
            t_lo: One end of the search bracket (float, or a tensor broadcastable to ``lam``: per-target brackets).
            t_hi: The other end (either orientation; λ(t_lo) may exceed λ(t_hi)).
            iters: Bisection halvings (80 reaches float64 resolution on [0, 1]).

        Returns:
            Times (float64 where the device has it) of ``lam``'s shape, on ``lam``'s device (CPU for a float).

        Raises:
            ValueError: If ``iters`` is not a positive integer.
        """
        if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
            raise ValueError(f"iters must be a positive integer, got {iters!r}")
        dev = lam.device if isinstance(lam, Tensor) else torch.device("cpu")
        dtype = schedule_dtype(dev)
        target = torch.as_tensor(lam, dtype=dtype, device=dev)
        shape = target.shape
        target = target.reshape(-1)
        a = torch.as_tensor(t_lo, dtype=dtype, device=dev).expand(shape).reshape(-1).clone()
        b = torch.as_tensor(t_hi, dtype=dtype, device=dev).expand(shape).reshape(-1).clone()
        lam_a, lam_b = self.lam(a), self.lam(b)
        swap = lam_a > lam_b  # orient each bracket so that λ(a) ≤ λ(b)
        a, b = torch.where(swap, b, a), torch.where(swap, a, b)
        out = torch.full_like(target, math.nan)
        todo = torch.ones_like(target, dtype=torch.bool)
        inv = getattr(self.schedule, "snr_inverse", None)
        if inv is not None and self.gaussian_source and target.numel():
            cand = torch.minimum(torch.maximum(inv(2 * target).to(dtype), torch.minimum(a, b)), torch.maximum(a, b))
            got = self.lam(cand)
            ok = (got == target) | ((got - target).abs() <= 1e-14 * target.abs().clamp_min(1.0))
            out = torch.where(ok, cand, out)
            todo = ~ok
        if bool(todo.any()):
            ta, tb, goal = a[todo], b[todo], target[todo]
            for _ in range(iters):
                mid = 0.5 * (ta + tb)
                right = self.lam(mid) < goal
                ta = torch.where(right, mid, ta)
                tb = torch.where(right, tb, mid)
            out[todo] = 0.5 * (ta + tb)
        return out.reshape(shape)

    # ------------------------------------------------------------------ loss
    def loss(
        self,
        pred: Tensor,
        sample: PathSample,
        kind: str,
        weight: Tensor | None = None,
        *,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Quadratic regression loss ``E_t E[w(t)·½|f̂(x_t) − target|²]`` (Albergo et al. 2023, §3 / ref. §1.3).

        Each SI loss (L_b, L_v, L_η, L_s) equals this up to a constant. The squared error is averaged over the
        non-batch dimensions (so learning rates do not depend on the data size) and over the batch.

        Args:
            pred: Network output of kind ``kind``.
            sample: The :class:`PathSample` the network was evaluated on.
            kind: Prediction kind (a key of ``sample.targets``).
            weight: Optional per-sample weights ``(B,)``.
            mask: Optional elementwise mask (1 = counts), e.g. the unmasked pixels of data-dependent inpainting.

        Returns:
            Scalar loss.
        """
        if kind not in sample.targets:
            raise ValueError(f"kind {kind!r} has no target on this path; available: {sorted(sample.targets)}")
        target = sample.targets[kind]
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} differs from the target's {tuple(target.shape)}")
        if mask is None and weight is None and pred.ndim > 1:
            # every sample has the same number of elements: the mean of the per-sample means is the mean over
            # all elements, one fused kernel forward and backward (the same value up to summation order)
            return 0.5 * torch.nn.functional.mse_loss(pred, target)
        err = 0.5 * (pred - target) ** 2
        if mask is not None:
            err = err * mask
        per_sample = err.flatten(1).mean(1)
        if weight is not None:
            if weight.shape != per_sample.shape:
                raise ValueError(f"weight must have shape {tuple(per_sample.shape)}, got {tuple(weight.shape)}")
            per_sample = per_sample * weight
        return per_sample.mean()

    def from_endpoints(
        self,
        kind: str,
        x_t: Tensor,
        t: Tensor | float,
        *,
        x0_hat: Tensor | None,
        x1_hat: Tensor,
        score: Tensor | None,
        eps: Tensor | float | None = None,
    ) -> Tensor:
        """Evaluate a prediction kind from known posterior quantities (used by exact/analytic fields).

        Args:
            kind: Kind to return.
            x_t: State.
            t: Time(s).
            x0_hat: E[x0 | x_t] (ignored for a Gaussian source, where x̂0 = −α ŝ).
            x1_hat: E[x1 | x_t].
            score: ∇ log ρ_t(x_t) (``None`` on paths without noise).
            eps: Diffusion coefficient for SDE drifts.

        Returns:
            The prediction of that kind.
        """
        tt = as_time(t, x_t)
        c = self.schedule.coeffs(tt)
        eps_t = None if eps is None else torch.as_tensor(eps, dtype=tt.dtype, device=tt.device).expand_as(tt)
        row = self._row(kind, c, eps_t)
        nd = x_t.ndim
        terms: list[Tensor] = []
        if "x0" in self.unknowns:
            terms.append(x0_hat)
        terms.append(x1_hat)
        if "score" in self.unknowns:
            terms.append(score)
        out = torch.zeros_like(x_t)
        for w, v in zip(row[: len(terms)], terms):
            out = out + append_dims(w.to(x_t.dtype), nd) * v
        if self.conditional_source:
            out = out + append_dims(row[-1].to(x_t.dtype), nd) * x0_hat
        return out

    def init_scale(self, t: Tensor | float, x: Tensor) -> Tensor:
        """Std of the Gaussian part of x_t at ``t`` for a Gaussian source: ``x_init = init_scale·N(0, I)``."""
        if not self.gaussian_source:
            raise ValueError("init_scale is defined for Gaussian-source paths; bridges start from a given x0")
        c = self.schedule.coeffs(as_time(t, x))
        return c.alpha.to(x.dtype)

    def time_dtype(self, x: Tensor) -> torch.dtype:
        """Dtype used for schedule arithmetic on ``x``'s device."""
        return schedule_dtype(x.device)
