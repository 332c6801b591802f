"""Resolve `--weights`: seeded init, a state_dict file, or torchvision's ImageNet weights offline."""

from __future__ import annotations

import hashlib
import os
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision.models as tvm
from torch import nn

from agos.errors import AgosError, first_line
from agos.inputs.models import ModelSpec, build_model
from agos.inputs.offline_weights import INSTALL, OFFLINE, offline_file
from agos.inputs.provenance import WeightsInfo
from agos.inputs.training import all_finite

IN_MEMORY = "in-memory"  # the weights a model given in memory carries


def state_dict_sha256(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        t = tensor.detach().cpu().contiguous()
        digest.update(str(t.dtype).encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def imagenet_weights_file(name: str) -> tuple[object, Path]:
    """The torchvision default weights enum entry and where the hub cache keeps its file."""
    try:
        weights = tvm.get_model_weights(name).DEFAULT
    except Exception:
        raise AgosError(f"torchvision has no ImageNet weights for '{name}'") from None
    filename = os.path.basename(urlparse(weights.url).path)
    return weights, Path(torch.hub.get_dir()) / "checkpoints" / filename


def _load_imagenet(spec: ModelSpec, seed: int) -> tuple[nn.Module, Path]:
    """Trained weights from the torch hub cache, else from an installed offline package."""
    offline = offline_file(spec.name) if spec.name in OFFLINE else None
    if spec.origin == "torchvision":
        weights, path = imagenet_weights_file(spec.name)
        if path.is_file():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return tvm.get_model(spec.name, weights=weights), path
            except Exception as exc:
                raise AgosError(f"cannot load ImageNet weights from {path}: {first_line(exc)}") from None
        if offline is None:
            extra = f", or install them offline: {INSTALL}" if spec.name in OFFLINE else ""
            raise AgosError(
                f"ImageNet weights for {spec.name} are not in the local torch hub cache: "
                f"put {path.name} (from {weights.url}) at {path}{extra}; agos never downloads"
            )
    elif offline is None:
        if spec.name in OFFLINE:
            raise AgosError(f"trained weights for {spec.name} are not installed: {INSTALL}")
        raise AgosError(
            f"--weights imagenet needs a torchvision model name ({spec.name} is not one): agos never "
            "downloads; give the weights as a file (a state_dict)"
        )
    model = build_model(spec, seed)
    state = _read_state_dict(offline)
    _check_compatible(offline, spec.name, model, state)
    model.load_state_dict(state, strict=False)
    return model, offline


HOW_TO_SAVE = "save one with torch.save(model.state_dict(), 'weights.pt')"


def _pickled_class(path: Path) -> str | None:
    """The first class a torch.save file's pickle names (`torch.nn.modules.container.Sequential`),
    read from its opcodes without running them; None when that cannot be told."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/data.pkl")), None)
            if name is None:
                return None
            data = archive.read(name)
        strings: list[str] = []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST"):
                return ".".join(str(arg).split(" ", 1))
            if opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                return f"{strings[-2]}.{strings[-1]}"
            if isinstance(arg, str):
                strings.append(arg)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return None
    return None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise AgosError(f"weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        held = _pickled_class(path)
        pickled = held is not None or path.read_bytes()[:1] == b"\x80"  # a pickle's PROTO opcode
        if "weights only load failed" not in str(exc).lower() or not pickled:
            why = first_line(exc) if pickled else "neither a torch.save archive nor a pickle"
            raise AgosError(f"weights file {path} is not a readable PyTorch file: {why}") from None
        what = f"a pickled {held}" if held else "pickled Python objects"
        hint = " (a whole model?)" if held and ".nn.modules." in held else ""
        raise AgosError(
            f"weights file {path} holds {what}{hint}, not a state_dict: --weights takes a state_dict "
            f"(agos never unpickles code); {HOW_TO_SAVE}"
        ) from None
    except Exception as exc:  # arbitrary bytes fail anywhere in the unpickler (KeyError, IndexError, …)
        what = "not a torch.save file" if isinstance(exc, KeyError | IndexError) else first_line(exc)
        raise AgosError(f"weights file {path} is not a readable PyTorch file: {what}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise AgosError(
            f"weights file {path} does not hold a state_dict (a mapping of parameter names to tensors); "
            + HOW_TO_SAVE
        )
    if obj and all(k.startswith("module.") for k in obj):  # saved from DataParallel
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def _check_compatible(path: Path, model_name: str, model: nn.Module, state: dict) -> None:
    own = model.state_dict()
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = [k for k in own if k not in state and k not in optional]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k}: file {list(state[k].shape)} vs model {list(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]

    def listed(items: list[str], sep: str = ", ") -> str:
        return sep.join(items[:3]) + (f"{sep}…" if len(items) > 3 else "")

    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) ({listed(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) ({listed(unexpected)})")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es) ({listed(wrong, '; ')})")
    if problems:
        raise AgosError(f"weights file {path} does not match {model_name}: {'; '.join(problems)}")


def check_state(path: Path, model_name: str, model: nn.Module, state: dict) -> None:
    """A state dict that can go into `model`: the same keys and shapes, and no NaN or inf."""
    _check_compatible(path, model_name, model, state)
    bad = [k for k, v in state.items() if v.is_floating_point() and not all_finite(v)]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise AgosError(f"weights file {path} holds NaN or inf values ({', '.join(bad[:3])}{more})")


def check_weights_files(paths: list[Path], spec: ModelSpec, seed: int) -> None:
    """Every file checked before any work (readable, matching the model, finite): a bad checkpoint
    is refused at the start, not after the points before it have run."""
    model = build_model(spec, seed)
    for path in paths:
        check_state(path, spec.name, model, _read_state_dict(path))


def load_model_with_weights(spec: ModelSpec, weights: str, seed: int) -> tuple[nn.Module, WeightsInfo]:
    """Build the model and put the requested weights in it. A model given in memory keeps its own
    weights ("in-memory") unless a file is named."""
    if (spec.origin == "memory") != (weights == IN_MEMORY) and weights in ("init", "imagenet", IN_MEMORY):
        raise AgosError(
            f"a model given in memory carries its own weights (weights='{IN_MEMORY}') or a file's"
            if spec.origin == "memory"
            else f"--weights {IN_MEMORY} is for a model given in memory (agos.api), not {spec.name}"
        )
    if weights == IN_MEMORY:
        model = spec.build()
        return model, WeightsInfo(source=IN_MEMORY, sha256=state_dict_sha256(model))
    if weights == "init":
        model = build_model(spec, seed)
        return model, WeightsInfo(source="init", sha256=state_dict_sha256(model))
    if weights == "imagenet":
        model, path = _load_imagenet(spec, seed)
        return model, WeightsInfo(source="imagenet", sha256=state_dict_sha256(model), file=str(path))
    path = Path(weights).expanduser()
    state = _read_state_dict(path)
    model = build_model(spec, seed)
    check_state(path, spec.name, model, state)
    model.load_state_dict(state, strict=False)
    return model, WeightsInfo(source=str(path), sha256=state_dict_sha256(model), file=str(path.resolve()))
