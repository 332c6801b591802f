"""Load designs: a feature preset placed on an organisation (`agos@rows`), a bare preset (on every
shipped organisation), or a YAML design file (optionally `FILE@ORG`). Every problem is one line
naming the file, the field and what is wrong."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from agos.arch.area import AreaTable
from agos.arch.energy import EnergyTable
from agos.arch.schema import Arch, Organisation
from agos.errors import AgosError
from agos.yamlio import load_yaml

PRESETS = ("dense", "zero-gate", "input-skip", "output-skip", "agos", "ideal")
ORGANISATIONS = ("systolic", "rows")
DEFAULT_DESIGNS = ",".join(PRESETS)  # every preset on every organisation


@dataclass(frozen=True)
class LoadedArch:
    arch: Arch
    energy: EnergyTable
    area: AreaTable
    source: str  # "preset:agos@organisation:rows" or a file path
    overrides: tuple[str, ...] = ()  # "path: inherited → given", for a file that inherits

    @property
    def name(self) -> str:
        return self.arch.name

    @property
    def sha256(self) -> str:
        """Of the resolved design and its tables: the provenance of every simulated number."""
        blob = json.dumps(
            {
                "arch": self.arch.model_dump(),
                "energy": self.energy.model_dump(),
                "area": self.area.model_dump(),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def with_arch(self, arch: Arch, source: str | None = None) -> LoadedArch:
        return LoadedArch(arch, self.energy, self.area, source or self.source)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AgosError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise AgosError(f"{path}: cannot read ({exc.strerror})") from None


def _packaged(kind: str, name: str) -> tuple[str, str] | None:
    path = resources.files("agos.arch").joinpath(kind, f"{name}.yaml")
    if path.is_file():
        return path.read_text(encoding="utf-8"), f"{kind.rstrip('s')}:{name}"
    return None


def yaml_text(text: str, where: str):
    """The YAML document in `text`, read strictly (agos.yamlio: duplicate keys refused); every
    problem is one line naming the file."""
    return load_yaml(text, where)


def _parse(text: str, where: str) -> dict:
    data = yaml_text(text, where)
    if not isinstance(data, dict):
        raise AgosError(f"{where}: expected a mapping of fields at the top level")
    return data


def validation_message(where: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    extra = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{where}: field '{field}': {first['msg']}{extra}"


def _shipped_or_file(kind: str, ref: str, missing: str) -> tuple[str, str]:
    """(YAML text, where it came from): a shipped file of `kind` by name, else a path."""
    shipped = _packaged(kind, ref) if "/" not in ref and not ref.endswith((".yaml", ".yml")) else None
    if shipped is not None:
        return shipped
    path = Path(ref)
    if not path.is_file():
        raise AgosError(missing)
    return _read(path), str(path)


def _table(kind: str, model, ref: str | dict, where: str):
    if isinstance(ref, dict):
        data, origin = ref, f"{where} (inline {kind} table)"
    else:
        text, origin = _shipped_or_file(
            kind, ref, f"{where}: field '{kind}': no shipped table or file '{ref}'"
        )
        data = _parse(text, origin)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AgosError(validation_message(origin, exc)) from None


def load_energy(ref: str | dict, where: str) -> EnergyTable:
    return _table("energy", EnergyTable, ref, where)


def load_area(ref: str | dict, where: str) -> AreaTable:
    return _table("area", AreaTable, ref, where)


def load_organisation(ref: str | dict, where: str) -> tuple[dict, str]:
    """(organisation fields, origin) from a shipped name, a file, or an inline mapping."""
    if isinstance(ref, dict):
        data, origin = ref, where
    elif isinstance(ref, str):
        text, origin = _shipped_or_file(
            "organisations",
            ref,
            f"{where}: no shipped organisation or file '{ref}' (organisations: {', '.join(ORGANISATIONS)})",
        )
        data = _parse(text, origin)
    else:
        raise AgosError(f"{where}: field 'organisation': a name, a file or a mapping")
    try:
        Organisation.model_validate(data)
    except ValidationError as exc:
        raise AgosError(validation_message(origin, exc)) from None
    return data, origin


def _merge(base: dict, over: dict) -> dict:
    """`over` laid on `base` field by field: a mapping merges into a mapping, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _leaves(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value}


def _changes(base: dict, resolved: dict, prefix: str, skip: tuple[str, ...]) -> list[str]:
    """'path base → resolved' for every field that differs."""
    was, now = _leaves(base), _leaves(resolved)
    return [
        f"{prefix}{k}: {was.get(k, '(unset)')} → {v}"
        for k, v in now.items()
        if k.split(".")[0] not in skip and was.get(k) != v
    ]


@dataclass(frozen=True)
class _Design:
    data: dict  # the design's own fields (a preset's fields with the file's laid over them)
    origin: str  # where it came from: "preset:agos" or the file's path
    preset: str | None  # the preset it is or inherits from
    is_preset: bool  # named as a preset (`agos@rows`), not a file


def _preset_fields(name: str) -> dict:
    text, origin = _packaged("presets", name)  # type: ignore[misc]
    return _parse(text, origin)


def _design(ref: str) -> _Design:
    if ref in PRESETS:
        return _Design(_preset_fields(ref), f"preset:{ref}", ref, True)
    path = Path(ref)
    if path.suffix not in (".yaml", ".yml") and not path.is_file():
        raise AgosError(f"no preset or design file named '{ref}' (presets: {', '.join(PRESETS)})")
    if not path.is_file():
        raise AgosError(f"design file {ref} does not exist")
    origin = str(path)
    data = _parse(_read(path), origin)
    preset = data.pop("preset", None)
    if preset is None:
        return _Design(data, origin, None, False)
    if not isinstance(preset, str) or preset not in PRESETS:
        raise AgosError(f"{origin}: field 'preset': no preset '{preset}' (presets: {', '.join(PRESETS)})")
    base = {k: v for k, v in _preset_fields(preset).items() if k not in ("name", "description")}
    return _Design(_merge(base, data), origin, preset, False)


def _organisation(spec, org_ref: str, where: str, design_ref: str) -> tuple[dict, str, dict | None]:
    """(organisation fields, origin, the fields of the organisation it inherits from). `spec` is
    the design's `organisation` field: a name, a file, or a mapping that either names a shipped
    organisation (`name: systolic`) or a `base:` and overrides any of its fields, or gives every
    field itself. `org_ref` (the `@ORG` of `FILE@ORG`) replaces what the design inherits from."""
    if spec is None or isinstance(spec, str):
        ref = org_ref or spec
        if ref is None:
            raise AgosError(
                f"{where}: a design needs an organisation: write '{design_ref}@systolic' or "
                f"'{design_ref}@rows', or give the file an 'organisation' field"
            )
        data, origin = load_organisation(ref, where)
        return data, origin, None
    if not isinstance(spec, dict):
        raise AgosError(f"{where}: field 'organisation': a name, a file or a mapping")
    over = dict(spec)
    base_ref = org_ref or over.pop("base", None)
    if base_ref is None and over.get("name") in ORGANISATIONS:
        base_ref = over["name"]
    if base_ref is None:  # a whole organisation, every required field given
        data, origin = load_organisation(over, where)
        return data, origin, None
    if not isinstance(base_ref, str):
        raise AgosError(f"{where}: field 'organisation.base': the name or file of an organisation")
    base, base_origin = load_organisation(base_ref, where)
    if org_ref or over.get("name") == base.get("name"):
        over.pop("name", None)  # named only to inherit from it
    merged = _merge(base, over)
    try:
        # keeps the name it inherits: dense designs on it are named with what differs from the
        # shipped one (cost.network.dense_name: dense@systolic[16x16 PEs, 2 MiB]), never as it
        Organisation.model_validate(merged)
    except ValidationError as exc:
        raise AgosError(
            validation_message(f"{where} (organisation {base_ref} with overrides)", exc)
        ) from None
    return merged, f"{base_origin} with overrides from {where}", base


def load_arch(ref: str) -> LoadedArch:
    """`PRESET@ORG`, `FILE@ORG` or `FILE` (a design file naming its organisation). ORG is a shipped
    organisation or an organisation file. A design file may inherit: `preset: agos` takes that
    preset's fields, and the file's own fields override any of them by path (`skipping: {fwd:
    {stream: false}}`); its `organisation` may name a shipped one and override its fields
    (`{name: systolic, pe_array: {rows: 16, cols: 16}}`). What differs from the inherited design is
    listed in `LoadedArch.overrides`."""
    ref = ref.strip()
    design_ref, _, org_ref = ref.rpartition("@") if "@" in ref else (ref, "", "")
    design = _design(design_ref)
    origin = design.origin
    org_data, org_origin, org_base = _organisation(
        design.data.get("organisation"), org_ref, origin, design_ref
    )
    fields = {k: v for k, v in design.data.items() if k != "organisation"}
    base_name = design_ref if design.is_preset else str(fields.get("name") or Path(design_ref).stem)
    fields["name"] = (
        f"{base_name}@{org_data.get('name', org_ref)}" if (design.is_preset or org_ref) else base_name
    )
    if design.preset is not None:
        fields["preset"] = design.preset
    try:
        arch = Arch.model_validate({**fields, "organisation": org_data})
    except ValidationError as exc:
        raise AgosError(validation_message(origin, exc)) from None
    overrides: list[str] = []
    if design.preset is not None and not design.is_preset:
        preset = Arch.model_validate({**_preset_fields(design.preset), "organisation": org_data})
        overrides += _changes(
            preset.model_dump(mode="json"),
            arch.model_dump(mode="json"),
            "",
            ("name", "description", "preset", "organisation"),
        )
        if not arch.description:
            what = f" with {len(overrides)} override(s)" if overrides else ""
            arch = arch.model_copy(
                update={"description": f"preset {design.preset}{what}: {preset.description}"}
            )
    if org_base is not None:
        overrides += _changes(
            Organisation.model_validate(org_base).model_dump(mode="json"),
            arch.organisation.model_dump(mode="json"),
            "organisation.",
            ("name", "description"),
        )
    energy = load_energy(arch.energy, origin)
    area = load_area(arch.area, origin)
    p = arch.precision
    try:
        energy.mac_pj(p.multiply, p.accumulate)
    except KeyError as missing:
        raise AgosError(f"{origin}: energy table '{energy.name}' has no MAC price for {missing}") from None
    try:
        area.mac_um2(p.multiply, p.accumulate)
    except KeyError as missing:
        raise AgosError(f"{origin}: area table '{area.name}' has no MAC area for {missing}") from None
    if design.is_preset:
        source = f"{origin}@{org_origin}"
    else:
        inherits = f" (preset {design.preset})" if design.preset and not design.is_preset else ""
        source = (
            f"{origin}{inherits}@{org_origin}" if (org_ref or org_base is not None) else origin + inherits
        )
    return LoadedArch(arch, energy, area, source, tuple(overrides))


def expand(spec: str) -> list[str]:
    """A comma-separated list: a bare preset means that preset on every shipped organisation."""
    refs = [r.strip() for r in spec.split(",") if r.strip()]
    if not refs:
        raise AgosError("--arch needs at least one design (e.g. agos@systolic, dense, FILE.yaml)")
    out: list[str] = []
    for r in refs:
        out.extend([f"{r}@{o}" for o in ORGANISATIONS] if r in PRESETS else [r])
    return out


def load_archs(spec: str) -> list[LoadedArch]:
    """Every design of a comma-separated list, in order, without duplicates."""
    loaded = [load_arch(r) for r in expand(spec)]
    names = [a.name for a in loaded]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AgosError(f"--arch names the same design twice: {', '.join(dupes)}")
    seen: dict[str, str] = {}
    for a in loaded:
        twin = seen.setdefault(behaviour_key(a.arch), a.name)
        if twin != a.name:
            raise AgosError(
                f"--arch: {a.name} ({a.source}) is the same design as {twin} (every field but its name "
                "agrees); give one of them"
            )
    return loaded


def behaviour_key(arch: Arch) -> str:
    """What a design does, its labels (name, description, preset) aside: two designs with the same
    key give the same figures (cost.network deduplicates the designs of a run by the same rule)."""
    return arch.model_copy(update={"name": "", "description": "", "preset": None}).model_dump_json()


def dense_twin(loaded: LoadedArch) -> LoadedArch:
    """The same organisation with skipping off (same energy and area tables)."""
    return loaded.with_arch(loaded.arch.twin(), f"{loaded.source}, skipping off")


def all_designs() -> list[str]:
    return [f"{p}@{o}" for p in PRESETS for o in ORGANISATIONS]
