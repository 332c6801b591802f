"""One line that says where a figure came from."""

from __future__ import annotations


def provenance_label(prov: dict, density: str | None = None) -> str:
    weights = prov.get("weights", {})
    source = weights.get("source", "?")
    sha = (weights.get("sha256") or "")[:8]
    data = prov.get("data", {}).get("source", "?")
    steps = prov.get("warm_up", {}).get("steps", 0)
    parts = [
        str(prov.get("model", "?")),
        f"weights {source}" + (f" ({sha})" if sha else "") + (f" + {steps} SGD steps" if steps else ""),
        f"data {data}",
        f"batch {prov.get('batch_size', '?')}",
        f"{prov.get('image_size', '?')} px",
        f"seed {prov.get('seed', '?')}",
        density or prov.get("density_source", "real masks"),
    ]
    return " · ".join(parts)
