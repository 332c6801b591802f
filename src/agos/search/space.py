"""The design space `agos search` explores, per organisation, in two families: *without* output
skipping (dense, input skipping, the two-sided join) and *with* it (static outputs and every
compaction realization: lanes modulo, matched, full; lane ports; compaction domain), each over the
window, then over array shape and buffer. Shipped as `spaces/default.yaml`; a user file with the
same fields replaces it. Every design is a full design file, so a winner re-simulates with
`agos simulate --arch FILE`."""

from __future__ import annotations

import itertools
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agos.arch.area import design_area
from agos.arch.load import ORGANISATIONS, LoadedArch, load_arch, validation_message, yaml_text
from agos.errors import AgosError

MiB = 2**20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Realizations(_Strict):
    """What the *with* family varies (docs/cost-model.md §2.3–§4)."""

    outputs: list[Literal["static", "compacted"]] = Field(default=["static", "compacted"], min_length=1)
    lanes: list[Literal["modulo", "matched", "full"]] = Field(
        default=["modulo", "matched", "full"], min_length=1
    )
    lane_ports: list[int | None] = Field(default=[None, 2], min_length=1)
    compaction_domain: list[int] = Field(default=[64, 128], min_length=1)


class Scale(_Strict):
    """What the second stage varies for the best designs of each family: at each buffer (and store
    size on `rows`), the largest PE array that fits each area budget (`fit`), and any fixed
    `arrays`. Fitting is what makes a budget's comparison one of equal area: on a fixed grid a
    family whose extras cost area drops a whole grid step below the budget."""

    fit: bool = True
    arrays: list[tuple[int, int]] = Field(default=[])
    buffer_mib: list[float] = Field(default=[1, 2, 4], min_length=1)
    store_entries: list[int] = Field(default=[256, 1024], min_length=1, description="rows only")

    @model_validator(mode="after")
    def _something(self) -> Scale:
        if not self.fit and not self.arrays:
            raise ValueError("scale: fit is off and no arrays are listed: stage two would have no designs")
        return self


class SearchSpace(_Strict):
    organisations: list[Literal["systolic", "rows"]] = Field(default=list(ORGANISATIONS), min_length=1)
    lookahead: list[int] = Field(default=[3, 8], min_length=1)
    broadcast_width: list[int] = Field(default=[1, 4], min_length=1)
    realizations: Realizations = Realizations()
    scale: Scale = Scale()
    top: int = Field(2, ge=1, le=50, description="designs of each family taken to the scale stage")

    def stage_one(self, org: str) -> list[tuple[str, LoadedArch]]:
        """(family, design) at the organisation's shipped array and buffer."""
        dense = load_arch(f"dense@{org}")
        out: list[tuple[str, LoadedArch]] = [("without", _named(dense, f"dense@{org}"))]
        for preset in ("input-skip", "agos"):
            base = load_arch(f"{preset}@{org}")
            widths = self.broadcast_width if preset == "agos" else [1]
            for window, bw in itertools.product(self.lookahead, widths):
                update = {"lookahead": window, "broadcast_width": bw, "bwd_data": _outputs(base, "none")}
                out.append(("without", _variant(base, f"{preset}@{org}~L{window}~B{bw}", update)))
        r = self.realizations
        for preset in ("output-skip", "agos"):
            base = load_arch(f"{preset}@{org}")
            windows = self.lookahead if preset == "agos" else [base.arch.skipping.lookahead]
            widths = self.broadcast_width if preset == "agos" else [1]
            for window, bw in itertools.product(windows, widths):
                common = {"lookahead": window, "broadcast_width": bw}
                tag = f"{preset}@{org}~L{window}~B{bw}" if preset == "agos" else f"{preset}@{org}"
                if "static" in r.outputs:
                    update = {**common, "bwd_data": _outputs(base, "static")}
                    out.append(("with", _variant(base, f"{tag}~static", update)))
                if "compacted" in r.outputs:
                    for lanes, ports, domain in itertools.product(r.lanes, r.lane_ports, r.compaction_domain):
                        update = {
                            **common,
                            "bwd_data": _outputs(base, "compacted"),
                            "lanes": lanes,
                            "lane_ports": ports,
                            "compaction_domain": domain,
                        }
                        name = f"{tag}~{lanes}~q{ports or 'w'}~D{domain}"
                        out.append(("with", _variant(base, name, update)))
        return _unique(out)

    def stage_two(self, best: LoadedArch, budgets_mm2: list[float] = ()) -> list[LoadedArch]:
        """The design at every buffer (and store size on `rows`), with the largest PE array that
        fits each area in `budgets_mm2` (when `fit`), and with every listed array."""
        a = best.arch
        o = a.organisation
        stores = self.scale.store_entries if o.sync == "independent" else [o.pe_store_entries]
        out: dict[str, LoadedArch] = {}
        for mib, entries in itertools.product(self.scale.buffer_mib, stores):
            memory = o.memory.model_copy(update={"global_buffer_bytes": int(mib * MiB)})
            base = o.model_copy(update={"memory": memory, "pe_store_entries": entries})
            shapes = list(self.scale.arrays)
            if self.scale.fit:
                shapes += [s for t in budgets_mm2 if (s := fitted_array(a, base, best.area, t)) is not None]
            for rows, cols in shapes:
                org = _shaped(base, rows, cols)
                tag = f"{rows}x{cols}~{mib:g}MiB" + (f"~E{entries}" if o.sync == "independent" else "")
                name = f"{a.name}~{tag}"
                if name not in out:
                    out[name] = _revalidated(best, a.model_copy(update={"name": name, "organisation": org}))
        return list(out.values())


MAX_SIDE = 4096  # the schema's largest PE array side
PAST = 1.25  # the walk stops once a design is this far above the target (dips are about 1 %)


def array_shape(k: int) -> tuple[int, int]:
    """The k-th PE array of the fitting sequence 1×1, 2×1, 2×2, 3×2, 3×3, …: one row or column at
    a time, the array as square as it can be, so that area grows with k."""
    return 1 + (k + 1) // 2, 1 + k // 2


def fitted_array(arch, org, table, target_mm2: float) -> tuple[int, int] | None:
    """The largest array of the sequence whose design (`arch` on `org`) has at most `target_mm2`
    of area; None when even 1 × 1 PE is larger (the buffer alone may be). Area is not monotone
    in the array (a wider row needs fewer banks per compaction domain, 22 × 21 → 22 × 22 PEs is
    smaller on agos@systolic), so the sequence is walked, not bisected, until its area is clearly
    past the target."""
    limit = target_mm2 * (1 + 1e-9)
    best = None
    for k in range(2 * (MAX_SIDE - 1) + 1):
        area = design_area(arch.model_copy(update={"organisation": _shaped(org, *array_shape(k))}), table)
        if area.total_mm2 <= limit:
            best = k
        elif area.total_mm2 > PAST * limit:
            break
    return array_shape(best) if best is not None else None


def _shaped(org, rows: int, cols: int):
    return org.model_copy(update={"pe_array": org.pe_array.model_copy(update={"rows": rows, "cols": cols})})


def _outputs(base: LoadedArch, outputs: str):
    return base.arch.skipping.bwd_data.model_copy(update={"outputs": outputs})


def _named(loaded: LoadedArch, name: str) -> LoadedArch:
    return loaded.with_arch(loaded.arch.model_copy(update={"name": name}))


def _variant(base: LoadedArch, name: str, skipping: dict) -> LoadedArch:
    a = base.arch
    return _revalidated(
        base, a.model_copy(update={"name": name, "skipping": a.skipping.model_copy(update=skipping)})
    )


def _revalidated(base: LoadedArch, arch) -> LoadedArch:
    """A copy built field by field is checked again by the schema, as a design file would be."""
    try:
        return base.with_arch(type(arch).model_validate(arch.model_dump()), f"search:{arch.name}")
    except ValidationError as exc:
        raise AgosError(validation_message(f"search design {arch.name}", exc)) from None


def _unique(designs: list[tuple[str, LoadedArch]]) -> list[tuple[str, LoadedArch]]:
    """One design per behaviour (e.g. static outputs do not depend on the lanes)."""
    seen: dict[str, tuple[str, LoadedArch]] = {}
    for family, loaded in designs:
        key = loaded.arch.model_copy(update={"name": "", "description": ""}).model_dump_json()
        seen.setdefault(key, (family, loaded))
    return list(seen.values())


def load_space(path: str | Path | None) -> SearchSpace:
    """The shipped space, or a user's YAML file of the same fields (every problem one line)."""
    if path is None:
        text = resources.files("agos.search").joinpath("spaces", "default.yaml").read_text(encoding="utf-8")
        where = "search space default"
    else:
        p = Path(path)
        if not p.is_file():
            raise AgosError(f"--space {path}: no such file")
        text, where = p.read_text(encoding="utf-8"), str(path)
    data = yaml_text(text, where) or {}
    if not isinstance(data, dict):
        raise AgosError(f"{where}: a search space is a mapping of fields")
    try:
        return SearchSpace.model_validate(data)
    except ValidationError as exc:
        raise AgosError(validation_message(where, exc)) from None
