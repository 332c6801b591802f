"""Resolve `--model` to a constructor: a torchvision classifier by name or a user factory."""

from __future__ import annotations

import copy
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.models as tvm
from torch import nn

from agos.errors import AgosError


@dataclass(frozen=True)
class ModelSpec:
    """What `--model` named (or the model given in memory), and how to build it again."""

    name: str
    origin: str  # "torchvision", "timm", "user", "memory" or the package of a known extra model
    build: Callable[[], nn.Module]
    ref: str = ""  # the --model text ("" for a model given in memory)


def memory_model(model: nn.Module) -> ModelSpec:
    """A model object given in memory (agos.api): named by its class; every build is a copy, so
    the caller's model is never trained or hooked."""
    if not isinstance(model, nn.Module):
        raise AgosError(f"a model is an nn.Module or a name, not {type(model).__name__}")
    return ModelSpec(name=type(model).__name__, origin="memory", build=lambda: copy.deepcopy(model))


def class_name(model: nn.Module) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"


def _source_of(cls: type) -> bytes:
    """A class's source (its file's bytes when it has one, so an edited helper counts too); a class
    defined where no source is kept (an interactive session) by its qualified name only."""
    try:
        path = inspect.getsourcefile(cls)
        if path is not None and Path(path).is_file():
            return Path(path).read_bytes()
        return inspect.getsource(cls).encode()
    except (OSError, TypeError):
        return f"{cls.__module__}.{cls.__qualname__} (no source)".encode()


def memory_fingerprint(model: nn.Module) -> str:
    """What identifies an in-memory model's code: the SHA-256 of the source of every module class
    in it that is not torch's own, and of its printed structure (which names every layer)."""
    digest = hashlib.sha256(repr(model).encode())
    classes = {type(m) for m in model.modules()}
    own = sorted((c for c in classes if not c.__module__.startswith("torch.")), key=lambda c: c.__qualname__)
    for cls in own:
        digest.update(f"{cls.__module__}.{cls.__qualname__}\0".encode())
        digest.update(_source_of(cls))
    names = ",".join(c.__qualname__ for c in own) or type(model).__qualname__
    return f"memory {names} sha256:{digest.hexdigest()}"


def torchvision_names() -> list[str]:
    return sorted(tvm.list_models(module=tvm))


def _build_torchvision(name: str) -> nn.Module:
    with warnings.catch_warnings():
        # inception_v3 / googlenet warn that init_weights will change default; irrelevant here.
        warnings.simplefilter("ignore")
        return tvm.get_model(name, weights=None)


def _is_file_ref(module_ref: str) -> bool:
    """`path/to/file.py` or `./file.py` (a file), not `pkg.module` (an importable module)."""
    return module_ref.endswith(".py") or "/" in module_ref or "\\" in module_ref


def _import_file(module_ref: str):
    path = Path(module_ref).expanduser()
    if not path.is_file():
        raise AgosError(f"model file {module_ref} does not exist")
    path = path.resolve()
    name = f"agos_user_model_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AgosError(f"cannot import model file {module_ref}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:  # its own imports of files beside it work, as when run as a script
        sys.path.append(folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_user_module(module_ref: str):
    """Import the module of a `pkg.module:factory` or `path/to/file.py:factory` reference; a module
    is looked for in the current folder too (as `python -c` would); its failures are the user's."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:  # `agos` as a console script lacks it
        sys.path.append(cwd)
    try:
        return _import_file(module_ref) if _is_file_ref(module_ref) else importlib.import_module(module_ref)
    except AgosError:
        raise
    except SystemExit as exc:  # a script-like module: exiting on import must not end agos with 0
        raise AgosError(f"importing model module '{module_ref}' called sys.exit({exc.code})") from None
    except Exception as exc:  # any import-time failure is the user's module's problem
        raise AgosError(f"cannot import model module '{module_ref}': {exc}") from None


def model_fingerprint(ref: str | ModelSpec) -> str:
    """What identifies a model's code for caching: torchvision's version, or the SHA-256 of the
    user's module file (an edited model is computed again, never served from the cache)."""
    if isinstance(ref, ModelSpec):
        if ref.origin == "memory":
            return memory_fingerprint(ref.build())
        ref = ref.ref
    if ref.startswith("timm:"):
        return f"timm {_timm().__version__}:{ref}"
    if ref in EXTRA_MODELS:
        return f"{EXTRA_MODELS[ref][0]}:{ref}"
    if ":" not in ref:
        return f"torchvision {_torchvision_version()}:{ref}"
    module = import_user_module(ref.partition(":")[0])
    source = getattr(module, "__file__", None)
    if source is None or not Path(source).is_file():
        return f"{ref} (no source file)"
    return f"{ref} sha256:{hashlib.sha256(Path(source).read_bytes()).hexdigest()}"


def _torchvision_version() -> str:
    import torchvision

    return torchvision.__version__


def _build_user(ref: str) -> nn.Module:
    module_name, _, attr = ref.partition(":")
    module = import_user_module(module_name)
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise AgosError(f"module '{module_name}' has no attribute '{attr}'")
        target = getattr(target, part)
    if isinstance(target, nn.Module):
        return target
    if not callable(target):
        raise AgosError(f"'{ref}' is neither an nn.Module nor a callable returning one")
    try:
        model = target()
    except SystemExit as exc:
        raise AgosError(f"calling '{ref}()' called sys.exit({exc.code})") from None
    except Exception as exc:
        raise AgosError(f"calling '{ref}()' failed: {exc}") from None
    if not isinstance(model, nn.Module):
        raise AgosError(f"'{ref}()' returned {type(model).__name__}, not an nn.Module")
    return model


def _timm():
    try:
        import timm
    except ImportError:
        raise AgosError("timm models need timm: pip install -e '.[timm]'") from None
    return timm


def _build_timm(name: str) -> nn.Module:
    return _timm().create_model(name, pretrained=False)


def _build_efficientnet_lite0() -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise AgosError(
            "efficientnet_lite0 needs efficientnet-lite-pytorch: "
            "pip install --no-deps efficientnet-lite-pytorch==0.1.0"
        ) from None
    return EfficientNet.from_name("efficientnet-lite0")


# models outside torchvision that agos knows by name (their trained weights: agos.inputs.offline_weights)
EXTRA_MODELS = {"efficientnet_lite0": ("efficientnet-lite-pytorch", _build_efficientnet_lite0)}


def resolve_model(ref: str) -> ModelSpec:
    """`resnet50` → torchvision; `timm:NAME` → a timm model (random init); `pkg.mod:factory` → the
    user's factory, called with no args."""
    if ref.startswith("timm:"):
        name = ref.removeprefix("timm:")
        names = _timm().list_models()
        if name not in names:
            close = difflib.get_close_matches(name, names, n=4, cutoff=0.6)
            hint = f"; did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
            raise AgosError(f"unknown timm model '{name}'{hint} (timm.list_models() has them all)")
        return ModelSpec(name=ref, origin="timm", build=lambda: _build_timm(name), ref=ref)
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        if not module_name or not attr:
            raise AgosError(
                f"model reference '{ref}' must look like 'package.module:factory' or "
                "'path/to/file.py:factory'"
            )
        return ModelSpec(name=ref, origin="user", build=lambda: _build_user(ref), ref=ref)
    if ref in EXTRA_MODELS:
        origin, build = EXTRA_MODELS[ref]
        return ModelSpec(name=ref, origin=origin, build=build, ref=ref)
    names = torchvision_names()
    if ref not in names:
        close = difflib.get_close_matches(ref, names, n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise AgosError(
            f"unknown model '{ref}'{hint} (any torchvision classification model, "
            f"or 'package.module:factory' / 'path/to/file.py:factory' for your own)"
        )
    return ModelSpec(name=ref, origin="torchvision", build=lambda: _build_torchvision(ref), ref=ref)


def build_model(spec: ModelSpec, seed: int) -> nn.Module:
    """Build with a seeded default initialisation, without touching the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build()
