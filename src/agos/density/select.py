"""Choose the masks a simulation runs on: the trace's real masks, or statistical ones.

`--density` syntax:

- `real` (default): the trace's own masks;
- `uniform:S`: every ReLU activation has zero fraction S (0 ≤ S ≤ 1);
- `profile:FILE[:CHECKPOINT]`: per-activation zero fractions from a profile. FILE is `sparsetrain`
  (the published profile shipped with agos; the model is taken from the trace), `sparsetrain/MODEL`
  (a published model named explicitly), or a CSV file (formats in `profiles.py`). CHECKPOINT is a
  1-based integer, `first` or `last` (the default: converged).

Either statistical spec may end in `:structure=STRUCTURE` — `independent`, `channels[:F]`,
`planes[:F]`, `positions[:F]` or `blobs:B[:F]` — which places exactly round(S·n) zeros per mask in
that structure
(`uniform:0.6:structure=blobs:4`, `profile:sparsetrain:last:structure=channels`; `structure.py`).

Statistical masks are seeded (`seed`); how they are made is in `statistical.py`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from agos.capture.trace import Trace
from agos.density.profiles import PUBLISHED, ProfileMapping, map_profile, resolve_profile
from agos.density.real import iter_real_masks
from agos.density.statistical import Fractions, statistical_masks, uniform_fractions
from agos.density.structure import Structure, split_structure
from agos.errors import AgosError
from agos.workload.masks import REAL, LayerMasks

SYNTAX = "real, uniform:S (0 ≤ S ≤ 1) or profile:FILE[:CHECKPOINT], either with an optional :structure=…"
_CHECKPOINT = re.compile(r"(?i)^(\d+|first|last)$")


@dataclass(frozen=True)
class DensitySpec:
    text: str
    kind: Literal["real", "uniform", "profile"]
    zero_fraction: float | None = None  # uniform
    file: str | None = None  # profile
    checkpoint: str | None = None  # profile: as given; None = last
    structure: Structure | None = None  # statistical: where the zeros lie; None: Bernoulli per element


def parse_density(text: str) -> DensitySpec:
    """Parse a --density string; every problem is one AgosError line."""
    spec = (text or "").strip()
    base, structure = split_structure(spec, spec)
    parsed = _parse_base(spec, base)
    if structure is None:
        return parsed
    if parsed.kind == "real":
        raise AgosError(
            f"--density {spec}: real masks have their own structure; structure= applies to uniform:S "
            "and profile:FILE"
        )
    return replace(parsed, structure=structure)


def _parse_base(spec: str, base: str) -> DensitySpec:
    kind, _, rest = base.partition(":")
    kind = kind.lower()
    if kind == "real" and not rest:
        return DensitySpec(spec, "real")
    if kind == "uniform":
        try:
            value = float(rest)
        except ValueError:
            raise AgosError(
                f"--density {spec}: '{rest}' is not a zero fraction (uniform:S, 0 ≤ S ≤ 1)"
            ) from None
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise AgosError(f"--density {spec}: zero fraction {rest} is outside [0, 1]")
        return DensitySpec(spec, "uniform", zero_fraction=value)
    if kind == "profile":
        if not rest:
            raise AgosError(
                f"--density {spec}: name a profile: profile:{PUBLISHED}[:CHECKPOINT] or profile:FILE"
            )
        file, checkpoint = rest, None
        head, sep, tail = rest.rpartition(":")
        if sep and head:
            known = head == PUBLISHED or head.startswith(PUBLISHED + "/") or Path(head).expanduser().is_file()
            if _CHECKPOINT.match(tail):
                file, checkpoint = head, tail.lower()
            elif known:
                raise AgosError(
                    f"--density {spec}: checkpoint '{tail}' is not a 1-based integer, first or last"
                )
        if checkpoint is not None and checkpoint.isdigit() and int(checkpoint) < 1:
            raise AgosError(f"--density {spec}: checkpoints are 1-based")
        return DensitySpec(spec, "profile", file=file, checkpoint=checkpoint)
    raise AgosError(f"--density '{spec}' is not {SYNTAX}")


@dataclass(frozen=True)
class StatisticalSource:
    spec: DensitySpec
    fractions: Fractions
    mapping: ProfileMapping | None  # profiles only


def statistical_source(trace: Trace, density: str | DensitySpec) -> StatisticalSource:
    """The per-activation zero fractions a uniform or profile spec gives this trace."""
    spec = density if isinstance(density, DensitySpec) else parse_density(density)
    if spec.kind == "real":
        raise AgosError("real masks have no statistical source")
    if not trace.manifest.activations:
        graph = trace.manifest.graph
        why = f"its model graph is {graph}" if graph != "torch.fx" else "it records no ReLU activations"
        raise AgosError(
            f"statistical masks need the ReLU activations of a traced graph; trace {trace.path}: {why}"
        )
    if spec.kind == "uniform":
        fractions = uniform_fractions(trace, spec.zero_fraction)
        if spec.structure is not None:
            label = f"{fractions.label}:structure={spec.structure.text}"
            fractions = replace(fractions, label=label, structure=spec.structure)
        return StatisticalSource(spec, fractions, None)
    model = trace.provenance.model
    profile = resolve_profile(spec.file, spec.checkpoint, model)
    mapping = map_profile(trace, profile)
    cp = profile.checkpoint
    head = f"profile:{spec.file}" + (f":{_checkpoint_word(spec.checkpoint, cp)}" if cp is not None else "")
    if spec.structure is not None:
        head += f":structure={spec.structure.text}"
    fractions = Fractions(
        label=f"{head} ({profile.description})",
        activations=mapping.activation_fractions,
        pooled=mapping.pooled_fractions,
        pooled_labels=mapping.pooled_labels,
        structure=spec.structure,
    )
    return StatisticalSource(spec, fractions, mapping)


def _checkpoint_word(given: str | None, chosen: int) -> str:
    return given if given in ("first", "last") else (str(chosen) if given else "last")


@dataclass(frozen=True)
class DensitySource:
    """A --density spec resolved against one trace, once: the parsed spec, the seed, the
    statistical fractions (and profile mapping) it gives this trace, and its provenance label.
    Every consumer in one process takes this object; only worker processes, which get the spec
    as text to stay picklable, resolve it again (`cost.network.MaskSource`)."""

    spec: DensitySpec
    seed: int
    label: str  # "real masks", "uniform:0.6 (seed 0)", "profile:sparsetrain:last (…) (seed 0)",
    # "uniform:0.6:structure=blobs:4 (seed 0)"
    statistical: StatisticalSource | None  # None for real masks

    @property
    def kind(self) -> Literal["real", "uniform", "profile"]:
        return self.spec.kind

    @property
    def text(self) -> str:
        return self.spec.text

    @property
    def notes(self) -> tuple[str, ...]:
        """What the source leaves real or assumes (a profile's activations without a row keep
        their real masks, a profile of another model): every command that uses it says so."""
        mapping = self.statistical.mapping if self.statistical is not None else None
        return mapping.notes if mapping is not None else ()

    def masks(self, trace: Trace) -> Iterator[LayerMasks]:
        """Every layer's masks from this source, in trace order."""
        if self.statistical is None:
            return iter_real_masks(trace)
        return statistical_masks(trace, self.statistical.fractions, self.seed)


def resolve_density(trace: Trace, density: str | DensitySpec = "real", seed: int = 0) -> DensitySource:
    """Parse (if text) and resolve a density spec for this trace; every problem is one AgosError."""
    spec = density if isinstance(density, DensitySpec) else parse_density(density)
    if spec.kind == "real":
        return DensitySource(spec, seed, REAL, None)
    stat = statistical_source(trace, spec)
    return DensitySource(spec, seed, f"{stat.fractions.label} (seed {seed})", stat)


def layer_masks(trace: Trace, density: str | DensitySpec = "real", seed: int = 0) -> Iterator[LayerMasks]:
    """Every layer's masks from the chosen source, in trace order (resolves the spec: a caller that
    also needs the label resolves once with `resolve_density` and takes both from it)."""
    return resolve_density(trace, density, seed).masks(trace)
