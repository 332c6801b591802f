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


def _design(ref: str) -> tuple[dict, str, bool]:
    """(design fields, origin, is a preset)."""
    if ref in PRESETS:
        text, origin = _packaged("presets", ref)  # type: ignore[misc]
        return _parse(text, origin), origin, True
    path = Path(ref)
    if path.suffix not in (".yaml", ".yml") and not path.is_file():
        raise AgosError(f"no preset or design file named '{ref}' (presets: {', '.join(PRESETS)})")
    if not path.is_file():
        raise AgosError(f"design file {ref} does not exist")
    return _parse(_read(path), str(path)), str(path), False


def load_arch(ref: str) -> LoadedArch:
    """`PRESET@ORG`, `FILE@ORG` or `FILE` (a design file naming its organisation). ORG is a shipped
    organisation or an organisation file."""
    ref = ref.strip()
    design_ref, _, org_ref = ref.rpartition("@") if "@" in ref else (ref, "", "")
    data, origin, preset = _design(design_ref)
    if org_ref:
        org_data, org_origin = load_organisation(org_ref, origin)
    elif "organisation" in data:
        org_data, org_origin = load_organisation(data["organisation"], origin)
    else:
        raise AgosError(
            f"{origin}: a design needs an organisation: write '{design_ref}@systolic' or "
            f"'{design_ref}@rows', or give the file an 'organisation' field"
        )
    fields = {k: v for k, v in data.items() if k != "organisation"}
    base = str(fields.get("name", design_ref))
    fields["name"] = f"{base}@{org_data.get('name', org_ref)}" if (preset or org_ref) else base
    if preset:
        fields["preset"] = design_ref
    try:
        arch = Arch.model_validate({**fields, "organisation": org_data})
    except ValidationError as exc:
        raise AgosError(validation_message(origin, exc)) from None
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
    source = (
        f"preset:{design_ref}@{org_origin}" if preset else (f"{origin}@{org_origin}" if org_ref else origin)
    )
    return LoadedArch(arch, energy, area, source)


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
    return loaded


def dense_twin(loaded: LoadedArch) -> LoadedArch:
    """The same organisation with skipping off (same energy and area tables)."""
    return loaded.with_arch(loaded.arch.twin(), f"{loaded.source}, skipping off")


def all_designs() -> list[str]:
    return [f"{p}@{o}" for p in PRESETS for o in ORGANISATIONS]
