"""Load an accelerator description: a shipped preset by name, or a YAML file. Every problem is one
line naming the file, the field and what is wrong."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from agos.arch.energy import EnergyTable
from agos.arch.schema import Arch
from agos.errors import AgosError

PRESETS = ("dense", "zero-gate", "input-skip", "output-skip", "agos", "ideal")


@dataclass(frozen=True)
class LoadedArch:
    arch: Arch
    energy: EnergyTable
    source: str  # "preset:agos" or the file path
    text: str  # the YAML as read
    sha256: str  # of the YAML text: the provenance of every simulated number

    @property
    def name(self) -> str:
        return self.arch.name


def _packaged(kind: str, name: str) -> tuple[str, str] | None:
    path = resources.files("agos.arch").joinpath(kind, f"{name}.yaml")
    if path.is_file():
        return path.read_text(), f"{'preset' if kind == 'presets' else kind}:{name}"
    return None


def _parse(text: str, where: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise AgosError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise AgosError(f"{where}: expected a mapping of fields at the top level")
    return data


def _validation_message(where: str, exc: ValidationError) -> str:
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
    return path.read_text(), str(path)


def load_energy(ref: str | dict, where: str) -> EnergyTable:
    if isinstance(ref, dict):
        data, origin = ref, f"{where} (inline energy table)"
    else:
        text, origin = _shipped_or_file(
            "energy", ref, f"{where}: field 'energy': no shipped table or file named '{ref}'"
        )
        data = _parse(text, origin)
    try:
        return EnergyTable.model_validate(data)
    except ValidationError as exc:
        raise AgosError(_validation_message(origin, exc)) from None


def load_arch(ref: str) -> LoadedArch:
    """`ref` is a preset name or a path to a YAML file."""
    text, source = _shipped_or_file(
        "presets", ref, f"no preset or arch file named '{ref}' (presets: {', '.join(PRESETS)})"
    )
    data = _parse(text, source)
    try:
        arch = Arch.model_validate(data)
    except ValidationError as exc:
        raise AgosError(_validation_message(source, exc)) from None
    energy = load_energy(arch.energy, source)
    try:
        energy.mac_pj(arch.precision.multiply, arch.precision.accumulate)
    except KeyError as missing:
        raise AgosError(f"{source}: energy table '{energy.name}' has no MAC price for {missing}") from None
    return LoadedArch(arch, energy, source, text, hashlib.sha256(text.encode()).hexdigest())


def load_archs(spec: str) -> list[LoadedArch]:
    """A comma-separated list of presets and files, in order, without duplicates."""
    refs = [r.strip() for r in spec.split(",") if r.strip()]
    if not refs:
        raise AgosError("--arch needs at least one preset or file")
    loaded = [load_arch(r) for r in refs]
    names = [a.name for a in loaded]
    if len(set(names)) != len(names):
        raise AgosError(f"--arch names the same design twice: {', '.join(names)}")
    return loaded


def agnostic_twin(loaded: LoadedArch) -> LoadedArch:
    """The design with its skipping switched off (same array, memory, schedule and energy table)."""
    twin = loaded.arch.without_skipping()
    return LoadedArch(twin, loaded.energy, f"{loaded.source}, skipping off", loaded.text, loaded.sha256)
