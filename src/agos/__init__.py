"""agos: activation-based gradient output sparsity, captured, proved and simulated.

The Python API (`agos.api`, docs/api.md) is re-exported here lazily: `import agos` stays light (the
command line starts without importing torch) and `agos.trace`, `agos.simulate`, … import it on
first use."""

__version__ = "0.1.0"

_API = ("trace", "check", "analyse", "simulate", "designs", "load_trace", "resolve", "AgosError")


def __getattr__(name: str):
    if name in _API:
        from agos import api

        return getattr(api, name)
    raise AttributeError(f"module 'agos' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
