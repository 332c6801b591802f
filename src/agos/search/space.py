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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    """What the second stage varies for the best designs of each family."""

    arrays: list[tuple[int, int]] = Field(default=[(16, 16), (32, 32), (48, 48), (64, 64)], min_length=1)
    buffer_mib: list[float] = Field(default=[1, 2, 4], min_length=1)
    store_entries: list[int] = Field(default=[256, 1024], min_length=1, description="rows only")


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

    def stage_two(self, best: LoadedArch) -> list[LoadedArch]:
        """The design at every array shape and buffer (and store size on `rows`)."""
        a = best.arch
        o = a.organisation
        stores = self.scale.store_entries if o.sync == "independent" else [o.pe_store_entries]
        out = []
        for (rows, cols), mib, entries in itertools.product(self.scale.arrays, self.scale.buffer_mib, stores):
            org = o.model_copy(
                update={
                    "pe_array": o.pe_array.model_copy(update={"rows": rows, "cols": cols}),
                    "memory": o.memory.model_copy(update={"global_buffer_bytes": int(mib * MiB)}),
                    "pe_store_entries": entries,
                }
            )
            tag = f"{rows}x{cols}~{mib:g}MiB" + (f"~E{entries}" if o.sync == "independent" else "")
            out.append(
                _revalidated(best, a.model_copy(update={"name": f"{a.name}~{tag}", "organisation": org}))
            )
        return out


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
