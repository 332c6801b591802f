"""Zero-fraction profiles: the published SparseTrain profile that ships in `density/data/`, and
profile files of the user's own; and how a profile's rows map onto a trace's ReLU activations.

**The published profile** (`sparsetrain`) holds per-layer activation zero fractions of VGG16,
ResNet-34 and ResNet-50 over ImageNet training (see `data/README.md` for its provenance). Its rows
are matched to `manifest.activations` (every ReLU-like op of the traced forward pass, in graph
order) one to one, in order:

- VGG16 (20 rows, 15 ReLUs): conv0..conv12 are the 13 ReLUs of `features`, fc1 and fc2 the two
  ReLUs of `classifier`; pool0..pool4 are the outputs of the five max-pools, each following the
  ReLU of the row before it (pool0 follows conv1, …), i.e. the X of the layer after each pool
  (features.5, .10, .17, .24 and classifier.0). classifier.6 has no ReLU (and no row): its X is
  fc2's ReLU after dropout.
- ResNet-34 (33 rows, 33 ReLUs) and ResNet-50 (49 rows, 49 ReLUs): the stem ReLU, then each block's
  ReLUs in order (2 per basic block, 3 per bottleneck, the last one after the residual add). The
  rows are only numbered; the data agree with graph order: at checkpoint 1 a post-add ReLU whose
  shortcut is a BN output (downsampling blocks) sits near 0.5 like the intra-block ReLUs, while one
  whose shortcut is a ReLU output (identity blocks) has fewer zeros. In ResNet-50 all 12
  identity-block post-add rows (0.21–0.36) lie below all 4 downsampling ones (0.50) and all 32
  intra-block ones (0.49–0.56); in ResNet-34, 11 of 13 identity-block rows (0.22–0.41, all but the
  two of layer4) lie below every other row (≥ 0.47). A shift by one row would break both.
- Any other model is refused, unless the user names a published model explicitly
  (`sparsetrain/resnet50`) and the trace has exactly as many ReLUs as that model has activation
  rows; the mapping report then says the profile comes from another network.

**User profiles** are CSV files (`#` comments allowed) with a header and one of these layouts:

- `index,zero_fraction` — `index` is 1-based in the trace's ReLU activation order (the order
  `agos density TRACE --density uniform:0` lists them in);
- `activation,zero_fraction` — `activation` is the fx name of the ReLU op (`layer1_0_relu_1`);
- either with an optional `checkpoint` column (1-based integers) to hold several profiles;
- the published long layout `model,row_index,row_label,checkpoint,zero_fraction`, whose rows are
  mapped like the shipped ones (the model is taken from the trace).

Activations a user profile leaves out keep their real masks; rows that name no activation of the
trace are refused.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from agos.capture.trace import Trace
from agos.errors import AgosError

PUBLISHED = "sparsetrain"
DATA_FILE = "sparsetrain_profiled_activation_sparsity.csv"
LONG_COLUMNS = ("model", "row_index", "checkpoint", "zero_fraction")


@dataclass(frozen=True)
class ProfileRow:
    order: int  # 1-based position (published: row_index; user files: index, or line order)
    label: str  # published: conv3, pool1 or the row number; user files: the index or activation name
    zero_fraction: float
    pooled: bool = False  # the max-pool output of the previous row's activation (VGG16's pool rows)


@dataclass(frozen=True)
class Profile:
    source: str  # "sparsetrain", "sparsetrain/MODEL" or the file as the user gave it
    by: Literal["order", "index", "name"]
    rows: tuple[ProfileRow, ...]
    model: str | None = None  # the network the profile was measured on, where the file says
    checkpoint: int | None = None
    checkpoints: tuple[int, ...] = ()
    explicit_model: bool = False  # the user named the model (sparsetrain/MODEL)

    @property
    def description(self) -> str:
        """E.g. "resnet50 checkpoint 90 of 90", or "2 rows by activation name"."""
        parts = []
        if self.model:
            parts.append(self.model)
        if self.checkpoint is not None:
            parts.append(f"checkpoint {self.checkpoint} of {len(self.checkpoints)}")
        if not parts:
            parts.append(f"{len(self.rows)} rows by {'activation name' if self.by == 'name' else 'index'}")
        return " ".join(parts)


# -- the long layout (published) ----------------------------------------------------------------


@dataclass(frozen=True)
class LongTable:
    where: str
    # model -> row_index -> (label, {checkpoint: zero fraction})
    models: dict[str, dict[int, tuple[str, dict[int, float]]]]


def _number(text: str, where: str, what: str, integer: bool = False) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise AgosError(
            f"{where}: {what} '{text}' is not {'an integer' if integer else 'a number'}"
        ) from None
    if not integer and not math.isfinite(value):
        raise AgosError(f"{where}: {what} '{text}' is not a finite number")
    return value


def _fraction(text: str, where: str) -> float:
    value = _number(text, where, "zero_fraction")
    if not 0.0 <= value <= 1.0:
        raise AgosError(f"{where}: zero_fraction {value:g} is outside [0, 1]")
    return value


def _label(text: str) -> str:
    """The ResNet sheets number their rows as floats ("12.0"): show them as "12"."""
    text = text.strip()
    return str(int(float(text))) if re.fullmatch(r"\d+(\.0+)?", text) else text


def _rows_of(text: str, where: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (lower-cased) and data rows with their 1-based line numbers; `#` lines are skipped."""
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    lines = [(i, line) for i, line in lines if not line.lstrip().startswith("#")]
    if not lines:
        raise AgosError(f"{where} is empty")
    parsed = list(csv.reader(io.StringIO("\n".join(line for _, line in lines))))
    header = [h.strip().lower() for h in parsed[0]]
    body = []
    for (number, _), cells in zip(lines[1:], parsed[1:], strict=True):
        if len(cells) != len(header):
            raise AgosError(f"{where}:{number}: {len(cells)} fields, the header has {len(header)}")
        body.append((number, [c.strip() for c in cells]))
    return header, body


def _read_long(text: str, where: str) -> LongTable:
    header, body = _rows_of(text, where)
    missing = [c for c in LONG_COLUMNS if c not in header]
    if missing:
        raise AgosError(f"{where}: missing column(s) {', '.join(missing)}")
    col = {name: header.index(name) for name in header}
    models: dict[str, dict[int, tuple[str, dict[int, float]]]] = {}
    for number, cells in body:
        at = f"{where}:{number}"
        model = cells[col["model"]].lower()
        index = int(_number(cells[col["row_index"]], at, "row_index", integer=True))
        checkpoint = int(_number(cells[col["checkpoint"]], at, "checkpoint", integer=True))
        if index < 1 or checkpoint < 1:
            raise AgosError(f"{at}: row_index and checkpoint are 1-based")
        label = _label(cells[col["row_label"]]) if "row_label" in col else str(index)
        rows = models.setdefault(model, {})
        known_label, values = rows.setdefault(index, (label, {}))
        if known_label != label:
            raise AgosError(f"{at}: row {index} of {model} is labelled both {known_label} and {label}")
        if checkpoint in values:
            raise AgosError(f"{at}: {model} row {index} checkpoint {checkpoint} appears twice")
        values[checkpoint] = _fraction(cells[col["zero_fraction"]], at)
    for model, rows in models.items():
        sets = {tuple(sorted(values)) for _, values in rows.values()}
        if len(sets) != 1:
            raise AgosError(f"{where}: the rows of {model} do not all have the same checkpoints")
    return LongTable(where=where, models=models)


@lru_cache(maxsize=1)
def published_table() -> LongTable:
    """The shipped copy of the SparseTrain profile (read once)."""
    text = resources.files("agos.density").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    return _read_long(text, f"agos/density/data/{DATA_FILE}")


def published_models() -> list[str]:
    """Models with a published profile, in the file's order: ['vgg16', 'resnet34', 'resnet50']."""
    return list(published_table().models)


def _model_rows(table: LongTable, model: str, source: str) -> dict[int, tuple[str, dict[int, float]]]:
    rows = table.models.get(model.lower())
    if rows is None:
        has = ", ".join(table.models)
        raise AgosError(
            f"{source} has no activation profile for '{model}' (it has {has}): use uniform:S or a "
            f"profile file of your own, or name one as profile:{PUBLISHED}/MODEL if your network has "
            "the same ReLUs"
        )
    return rows


def checkpoints(model: str) -> list[int]:
    """The published checkpoints of `model` (1..N); an AgosError if it has no published profile."""
    rows = _model_rows(published_table(), model, PUBLISHED)
    return sorted(next(iter(rows.values()))[1])


@dataclass(frozen=True)
class PublishedInfo:
    """What the report needs to simulate "early" and "converged" published sparsity."""

    model: str
    first: int
    last: int
    activation_rows: int
    pooled_rows: int

    def spec(self, checkpoint: str | int = "last") -> str:
        """The --density string for a checkpoint: spec("first") == "profile:sparsetrain:first"."""
        return f"profile:{PUBLISHED}:{checkpoint}"


def published_info(model: str) -> PublishedInfo | None:
    """The published profile of `model`, or None where ../shared/sparsity has none."""
    rows = published_table().models.get(model.lower())
    if rows is None:
        return None
    cps = sorted(next(iter(rows.values()))[1])
    pooled = sum(1 for label, _ in rows.values() if label.lower().startswith("pool"))
    return PublishedInfo(model.lower(), cps[0], cps[-1], len(rows) - pooled, pooled)


def pick_checkpoint(available: list[int], checkpoint: str | None, what: str) -> int:
    """`checkpoint`: None or "last" (the default: converged), "first", or a 1-based integer."""
    word = (checkpoint or "last").strip().lower()
    if word == "last":
        return available[-1]
    if word == "first":
        return available[0]
    if not word.isdigit():
        raise AgosError(f"checkpoint '{checkpoint}' is not a 1-based integer, first or last")
    value = int(word)
    if value not in available:
        raise AgosError(
            f"{what} has checkpoints {available[0]}..{available[-1]}; checkpoint {value} does not exist"
        )
    return value


def _long_profile(
    table: LongTable, model: str, checkpoint: str | None, source: str, explicit: bool
) -> Profile:
    rows = _model_rows(table, model, source)
    available = sorted(next(iter(rows.values()))[1])
    chosen = pick_checkpoint(available, checkpoint, f"the {model} profile of {source}")
    profile_rows = tuple(
        ProfileRow(index, label, values[chosen], pooled=label.lower().startswith("pool"))
        for index, (label, values) in sorted(rows.items())
    )
    return Profile(
        source=source,
        by="order",
        rows=profile_rows,
        model=model.lower(),
        checkpoint=chosen,
        checkpoints=tuple(available),
        explicit_model=explicit,
    )


# -- user files ---------------------------------------------------------------------------------


def _user_profile(text: str, where: str, checkpoint: str | None) -> Profile:
    header, body = _rows_of(text, where)
    keys = [k for k in ("index", "activation") if k in header]
    if "zero_fraction" not in header or len(keys) != 1:
        raise AgosError(
            f"{where}: expected a header 'index,zero_fraction' or 'activation,zero_fraction' "
            "(optionally with a checkpoint column), or the published long layout "
            "'model,row_index,row_label,checkpoint,zero_fraction'"
        )
    key = keys[0]
    col = {name: header.index(name) for name in header}
    has_cp = "checkpoint" in col
    by_cp: dict[int, dict[str, tuple[int, float]]] = {}
    for number, cells in body:
        at = f"{where}:{number}"
        cp = int(_number(cells[col["checkpoint"]], at, "checkpoint", integer=True)) if has_cp else 0
        name = cells[col[key]]
        if key == "index":
            index = int(_number(name, at, "index", integer=True))
            if index < 1:
                raise AgosError(f"{at}: index {index} is not 1-based")
            name = str(index)
        elif not name:
            raise AgosError(f"{at}: empty activation name")
        rows = by_cp.setdefault(cp, {})
        if name in rows:
            raise AgosError(f"{at}: {key} {name} appears twice" + (f" at checkpoint {cp}" if has_cp else ""))
        rows[name] = (number, _fraction(cells[col["zero_fraction"]], at))
    if not by_cp:
        raise AgosError(f"{where} has a header but no rows")
    available = sorted(by_cp)
    if has_cp:
        chosen: int | None = pick_checkpoint(available, checkpoint, where)
    elif checkpoint is not None:
        raise AgosError(f"{where} has no checkpoint column, so ':{checkpoint}' cannot select one")
    else:
        chosen = None
    picked = by_cp[chosen if chosen is not None else 0]
    rows = []
    for name, (number, value) in picked.items():
        order = int(name) if key == "index" else number
        rows.append(ProfileRow(order, name, value))
    rows.sort(key=lambda r: r.order)
    return Profile(
        source=where,
        by="index" if key == "index" else "name",
        rows=tuple(rows),
        checkpoint=chosen,
        checkpoints=tuple(available) if has_cp else (),
    )


def resolve_profile(file: str, checkpoint: str | None, trace_model: str) -> Profile:
    """The profile `profile:FILE[:CHECKPOINT]` names, for a trace of `trace_model`."""
    if file == PUBLISHED or file.startswith(PUBLISHED + "/"):
        named = file[len(PUBLISHED) + 1 :]
        model = named or trace_model
        if not named and published_info(trace_model) is None:
            raise AgosError(
                f"no published activation profile for '{trace_model}' (agos ships "
                f"{', '.join(published_models())} from ../shared/sparsity): use uniform:S, a profile "
                f"file of your own, or profile:{PUBLISHED}/MODEL if your network has the same ReLUs"
            )
        return _long_profile(published_table(), model, checkpoint, file, explicit=bool(named))
    path = Path(file).expanduser()
    if not path.is_file():
        raise AgosError(f"profile file '{file}' does not exist (or is not a file)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AgosError(f"profile file '{file}' cannot be read: {exc}") from None
    header, _ = _rows_of(text, file)
    if all(c in header for c in LONG_COLUMNS):
        return _long_profile(_read_long(text, file), trace_model, checkpoint, file, explicit=False)
    return _user_profile(text, file, checkpoint)


# -- mapping rows onto a trace ------------------------------------------------------------------


def has_max_pool(producer: str) -> bool:
    return re.search(r"max_?pool", producer, flags=re.IGNORECASE) is not None


@dataclass(frozen=True)
class RowMatch:
    row: ProfileRow
    activation: str | None  # the ReLU op the row describes (a pooled row: the one it pools)
    x_layers: tuple[str, ...]  # layers whose X the row sets
    y_layers: tuple[str, ...] = ()  # layers whose Y reaches the activation (dY; real behind BN)
    note: str = ""


@dataclass(frozen=True)
class ProfileMapping:
    profile: Profile
    trace_model: str
    matches: tuple[RowMatch, ...]
    unmapped_activations: tuple[str, ...]  # ReLU activations without a row: their masks stay real
    notes: tuple[str, ...]

    @property
    def unmatched_rows(self) -> tuple[RowMatch, ...]:
        return tuple(m for m in self.matches if m.activation is None or not (m.x_layers or m.y_layers))

    @property
    def activation_fractions(self) -> dict[str, float]:
        return {m.activation: m.row.zero_fraction for m in self.matches if m.activation and not m.row.pooled}

    @property
    def pooled_fractions(self) -> dict[str, float]:
        return {m.activation: m.row.zero_fraction for m in self.matches if m.activation and m.row.pooled}

    @property
    def pooled_labels(self) -> dict[str, str]:
        return {m.activation: m.row.label for m in self.matches if m.activation and m.row.pooled}


def _close(name: str, names: list[str]) -> str:
    near = difflib.get_close_matches(name, names, n=3)
    return f" (did you mean {', '.join(near)}?)" if near else ""


def map_profile(trace: Trace, profile: Profile) -> ProfileMapping:
    """Match every row of `profile` to the trace's activations, or refuse with one line."""
    acts = [a.name for a in trace.manifest.activations]
    trace_model = trace.provenance.model
    if not acts:
        raise AgosError(f"trace {trace.path} records no ReLU activations: capture it again with this agos")
    notes: list[str] = []
    pairs: list[tuple[ProfileRow, str | None]] = []
    if profile.by == "order":
        act_rows = [r for r in profile.rows if not r.pooled]
        if len(act_rows) != len(acts):
            raise AgosError(
                f"the {profile.model} profile of {profile.source} has {len(act_rows)} activation rows, the "
                f"{trace_model} trace has {len(acts)} ReLU-like activations: its rows cannot be matched "
                "to this network's layers"
            )
        if profile.model != trace_model.lower():
            notes.append(
                f"profile measured on {profile.model}, applied by request to a {trace_model} trace: "
                "rows matched to its ReLUs in graph order"
            )
        it = iter(acts)
        previous: str | None = None
        for row in profile.rows:
            if row.pooled:
                pairs.append((row, previous))
            else:
                previous = next(it)
                pairs.append((row, previous))
    elif profile.by == "index":
        for row in profile.rows:
            if row.order > len(acts):
                raise AgosError(
                    f"{profile.source}: index {row.order} is beyond the trace's {len(acts)} ReLU activations"
                )
            pairs.append((row, acts[row.order - 1]))
    else:
        known = set(acts)
        for row in profile.rows:
            if row.label not in known:
                raise AgosError(
                    f"{profile.source}: the trace has no activation '{row.label}'{_close(row.label, acts)}"
                )
            pairs.append((row, row.label))

    matches = []
    for row, act in pairs:
        if act is None:
            matches.append(RowMatch(row, None, (), note="no activation precedes this pooled row"))
            continue
        if row.pooled:
            x_layers = tuple(
                layer.name
                for layer in trace.layers
                if layer.x_acts == [act] and has_max_pool(layer.x_producer)
            )
            note = f"max-pool output of {act}" if x_layers else f"no layer reads a max-pool of {act}"
            matches.append(RowMatch(row, act, x_layers, note=note))
            continue
        x_layers = tuple(layer.name for layer in trace.layers if act in layer.x_acts)
        y_layers = tuple(layer.name for layer in trace.layers if layer.y_act == act)
        matches.append(RowMatch(row, act, x_layers, y_layers))

    mapped = {m.activation for m in matches if m.activation and not m.row.pooled}
    unmapped = tuple(a for a in acts if a not in mapped)
    if unmapped:
        notes.append(f"{len(unmapped)} activation(s) without a row keep their real masks")
    return ProfileMapping(profile, trace_model, tuple(matches), unmapped, tuple(notes))
