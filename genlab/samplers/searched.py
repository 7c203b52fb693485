"""Searched solvers: presets (data files) and the one sampler that runs them.

A *searched solver* is a data-form multistep table (:class:`~genlab.samplers.multistep.MultistepTable`: the grid,
the state ratios and the weights over the history of data predictions x̂1) found by a search procedure
(:mod:`genlab.samplers.search`: the differentiable solver search of NeuralSolver/DSS and the AutoDiffusion-style
evolutionary search) for one field, one path and one NFE budget. It is stored as a **preset**: a small JSON file
with the table and its provenance (model, path, field kind, NFE, loss, method, teacher), never code
(``DESIGN.md``, "Searched solvers"). :class:`SearchedSampler` (registered as ``"searched"``) drives any preset
through the one coefficient-table engine :func:`~genlab.samplers.multistep.run_multistep`.

A preset carries its own grid: :func:`genlab.sample` takes the grid from it (:meth:`SearchedSampler.recommended_grid`;
``steps`` must be the preset's step count and ``grid`` left at its default), and a preset refuses a field on another path (its
coefficients are functions of that path's α, β). Presets searched for the shipped configs live in the package
(``genlab/assets/presets/*.json``, see :func:`shipped_presets`); with no ``preset`` the sampler picks the shipped
preset for the field's path and step count when exactly one exists.

Format (``format = "genlab-solver-preset"``, ``version = 1``)::

    {"format": ..., "version": 1, "table": MultistepTable.to_dict(), "provenance": {"model": ..., "path": ...,
     "field_kind": ..., "nfe": ..., "loss": ..., "method": ..., ...}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.interpolants.interpolant import Interpolant
from genlab.models.field import Field
from genlab.samplers.multistep import MultistepTable, TableSampler
from genlab.samplers.registry import register_sampler
from genlab.utils import atomic_write

__all__ = [
    "PRESET_FORMAT",
    "PRESET_VERSION",
    "SearchedSampler",
    "SolverPreset",
    "load_preset",
    "path_id",
    "preset_dir",
    "shipped_presets",
]

PRESET_FORMAT = "genlab-solver-preset"
PRESET_VERSION = 1
#: Provenance keys every preset carries.
_REQUIRED_PROVENANCE = ("model", "path", "field_kind", "nfe", "loss", "method")


def path_id(interpolant: Interpolant) -> str:
    """The identity of a path that a preset is tied to: ``repr(interpolant)`` (schedule, its parameters, source)."""
    return repr(interpolant)


def preset_dir() -> Path:
    """Folder of the presets shipped with genlab (``genlab/assets/presets``)."""
    return Path(__file__).resolve().parent.parent / "assets" / "presets"


@dataclass(frozen=True)
class SolverPreset:
    """A searched solver: its coefficient table and where it came from.

    Attributes:
        table: Data-form multistep table (grid, ratios, weights; ``known`` on bridges).
        provenance: ``model`` (what it was searched on), ``path`` (:func:`path_id` of the field's path),
            ``field_kind``, ``nfe``, ``loss`` (final search loss), ``method`` and free-form extras (teacher,
            search cost, ...).
        name: Display name (the file stem when loaded from a file).
    """

    table: MultistepTable
    provenance: dict[str, Any]
    name: str = "preset"

    def __post_init__(self) -> None:
        if not isinstance(self.table, MultistepTable):
            raise TypeError(f"table must be a MultistepTable, got {type(self.table).__name__}")
        if self.table.form != "data":
            raise ValueError(f"a searched preset is a data-form table, got form={self.table.form!r}")
        if not isinstance(self.provenance, dict):
            raise TypeError(f"provenance must be a dict, got {type(self.provenance).__name__}")
        missing = [k for k in _REQUIRED_PROVENANCE if k not in self.provenance]
        if missing:
            raise ValueError(f"preset provenance misses {missing}; it needs {list(_REQUIRED_PROVENANCE)}")
        if int(self.provenance["nfe"]) != self.table.steps:
            raise ValueError(f"provenance nfe={self.provenance['nfe']} differs from the table's {self.table.steps} "
                             "steps (one evaluation per step)")

    @property
    def steps(self) -> int:
        """Number of steps (= NFE)."""
        return self.table.steps

    @property
    def times(self) -> Tensor:
        """The preset's grid (float64, CPU)."""
        return self.table.times

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (inverse of :meth:`from_dict`)."""
        return {"format": PRESET_FORMAT, "version": PRESET_VERSION, "name": self.name,
                "table": self.table.to_dict(), "provenance": _jsonable(self.provenance)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, name: str | None = None) -> SolverPreset:
        """Rebuild a preset from :meth:`to_dict` output.

        Args:
            data: The dict.
            name: Display name (default: the stored one).

        Returns:
            The preset.

        Raises:
            ValueError: If it is not a genlab solver preset of a known version.
        """
        if not isinstance(data, dict) or data.get("format") != PRESET_FORMAT:
            raise ValueError(f"not a genlab solver preset (expected format={PRESET_FORMAT!r})")
        if data.get("version") != PRESET_VERSION:
            raise ValueError(f"preset version {data.get('version')!r} is not supported (this genlab reads "
                             f"version {PRESET_VERSION})")
        return cls(table=MultistepTable.from_dict(data["table"]), provenance=dict(data["provenance"]),
                   name=name or str(data.get("name", "preset")))

    def save(self, path: str | Path) -> Path:
        """Write the preset as JSON, atomically (temp file + rename).

        Args:
            path: Target ``.json`` file (parent folders are created).

        Returns:
            The path written.
        """
        path = Path(path)
        if path.suffix != ".json":
            raise ValueError(f"a preset file must end with .json, got {str(path)!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=1)
            fh.write("\n")
        return path

    def check_field(self, fld: Field) -> None:
        """Refuse a field whose path or kind is not the one the preset was searched for.

        Raises:
            ValueError: Naming both paths.
        """
        want, got = self.provenance["path"], path_id(fld.interpolant)
        if want != got:
            raise ValueError(f"preset {self.name!r} was searched on the path {want}, but the field lives on {got}; "
                             "its coefficients are functions of that path's schedule: search a preset for this path "
                             "(genlab.samplers.search.search_solver or `genlab search`)")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def shipped_presets() -> dict[str, Path]:
    """Presets shipped with genlab: name (file stem) → file."""
    folder = preset_dir()
    return {p.stem: p for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def load_preset(preset: str | Path | SolverPreset | dict[str, Any]) -> SolverPreset:
    """A preset from a file, a shipped preset name (see :func:`shipped_presets`), a dict or a preset.

    Args:
        preset: ``.json`` path, shipped name, :meth:`SolverPreset.to_dict` output or a :class:`SolverPreset`.

    Returns:
        The preset.

    Raises:
        ValueError: If the name is neither a file nor a shipped preset.
        TypeError: For another type.
    """
    if isinstance(preset, SolverPreset):
        return preset
    if isinstance(preset, dict):
        return SolverPreset.from_dict(preset)
    if not isinstance(preset, (str, Path)):
        raise TypeError(f"preset must be a .json path, a shipped preset name, a dict or a SolverPreset, got "
                        f"{type(preset).__name__}")
    path = Path(preset)
    if not path.is_file():
        shipped = shipped_presets()
        if str(preset) not in shipped:
            raise ValueError(f"preset {str(preset)!r} is neither a file nor a shipped preset; shipped: "
                             f"{sorted(shipped)}")
        path = shipped[str(preset)]
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return SolverPreset.from_dict(data, name=path.stem)


def _matching(presets: Iterable[SolverPreset], fld: Field) -> list[SolverPreset]:
    """The presets searched for ``fld``'s path and prediction kind."""
    pid = path_id(fld.interpolant)
    return [p for p in presets if p.provenance["path"] == pid and p.provenance["field_kind"] == fld.kind]


@register_sampler
class SearchedSampler(TableSampler):
    """A searched solver: runs a :class:`SolverPreset` (NeuralSolver/DSS or evolutionary search) on its own grid.

    One evaluation per step; the table is data-form (``x ← r_i·x + Σ_j w_ij·x̂1_{i−j}``), so it runs on every path
    with semilinear structure the preset was searched for. The grid is the preset's: pass ``preset.times`` (or let
    :func:`genlab.sample` take it).

    Args:
        preset: A ``.json`` file, a shipped preset name, a dict or a :class:`SolverPreset`. ``None`` picks the
            shipped preset for the field's path and step count (an error lists the shipped presets when none or
            several match).
    """

    name: ClassVar[str] = "searched"

    def __init__(self, *, preset: str | Path | SolverPreset | dict[str, Any] | None = None) -> None:
        self.preset = None if preset is None else load_preset(preset)

    def expected_nfe(self, steps: int) -> int | None:
        return steps

    def resolve(self, fld: Field, steps: int | None = None) -> SolverPreset:
        """The preset to run on ``fld`` (the given one, or the shipped one for its path and ``steps``).

        Raises:
            ValueError: If the preset refuses the field, or no single shipped preset matches.
        """
        if self.preset is not None:
            self.preset.check_field(fld)
            return self.preset
        pid = path_id(fld.interpolant)
        presets = {name: load_preset(path) for name, path in shipped_presets().items()}
        found = [p for p in _matching(presets.values(), fld) if steps is None or p.steps == steps]
        if len(found) != 1:
            shipped = {n: (p.provenance["model"], p.steps) for n, p in presets.items()}
            what = "no shipped preset" if not found else f"{len(found)} shipped presets ({[p.name for p in found]})"
            raise ValueError(f"sampler 'searched': {what} for a {fld.kind!r} field on {pid}"
                             f"{'' if steps is None else f' with {steps} steps'}; pass preset= (a .json file from "
                             f"`genlab search` or a shipped name: {shipped})")
        return found[0]

    def default_steps(self, field: Field) -> int:
        """The preset's own step count (the given preset, or the single shipped one for ``field``'s path)."""
        return self.resolve(field).steps

    def recommended_grid(self, field: Field, steps: int, *, device: torch.device | str | None = None,
                         **options: Any) -> Tensor:
        """The grid :func:`genlab.sample` runs this sampler on when none is given: the preset's own times.

        Args:
            field: The field.
            steps: Requested steps (must be the preset's count; selects the shipped preset when none is given).
            device: Device of the returned grid.
            **options: Grid options — refused: a searched preset fixes its grid.

        Returns:
            The preset's ``(N+1,)`` times.

        Raises:
            ValueError: If ``steps`` disagrees with the preset or grid options are given.
        """
        if options:
            raise ValueError(f"a searched preset carries its own grid; drop grid_options {sorted(options)}")
        preset = self.resolve(field, steps)
        if steps != preset.steps:
            raise ValueError(f"preset {preset.name!r} has {preset.steps} steps: pass steps={preset.steps} — a "
                             "searched preset fixes its grid")
        return preset.times.to(device=device)

    def check(self, fld: Field) -> None:
        super().check(fld)
        if self.preset is not None:
            self.preset.check_field(fld)
        if not (fld.interpolant.gaussian_source or fld.interpolant.conditional_source):
            raise ValueError("sampler 'searched' needs a Gaussian-source path or a bridge with a known source")
        # refuse up front (not mid-run) a field no shipped preset was searched for
        if self.preset is None and not _matching((load_preset(p) for p in shipped_presets().values()), fld):
            pid = path_id(fld.interpolant)
            raise ValueError(f"sampler 'searched': no shipped preset for a {fld.kind!r} field on {pid}; pass "
                             "preset= (a .json file written by `genlab search` / search_solver)")

    def build_table(self, interpolant: Interpolant, grid: Tensor) -> MultistepTable:
        """The given preset's table on ``grid`` (without a preset the field picks it: see :meth:`resolve_table`).

        Raises:
            ValueError: If no preset was given, or ``grid`` is not the preset's grid.
        """
        if self.preset is None:
            raise ValueError("sampler 'searched' without preset= chooses a shipped preset by the field's path and kind;"
                             " use sample()/resolve_table with the field, or pass preset=")
        return self._table_on(self.preset, grid)

    def resolve_table(self, field: Field, grid: Tensor) -> tuple[MultistepTable, dict[str, Any]]:
        """The preset for ``field`` (the given one, or the shipped one for its path and step count) on ``grid``."""
        preset = self.resolve(field, grid.numel() - 1)
        return self._table_on(preset, grid), {"preset": preset.name}

    @staticmethod
    def _table_on(preset: SolverPreset, grid: Tensor) -> MultistepTable:
        times = grid.detach().to("cpu", torch.float64)
        if times.shape != preset.times.shape or not torch.allclose(times, preset.times, rtol=0, atol=1e-12):
            raise ValueError(f"the grid differs from preset {preset.name!r}'s times: pass preset.times as the grid "
                             "(genlab.sample does so)")
        return preset.table
