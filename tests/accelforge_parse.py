"""Parse an `agos export --to timeloop` folder's AccelForge workloads with AccelForge itself.

Run with an interpreter that has `accelforge` (PyPI; it needs Python ≥ 3.12, agos runs on 3.11, so
it lives in its own environment): `python tests/accelforge_parse.py EXPORT_DIR` prints, per
workload file, AccelForge's operation count of its Einsum and the size of each tensor, as JSON.
tests/test_export.py runs it when AGOS_ACCELFORGE_PYTHON names such an interpreter.
"""

import json
import sys
from pathlib import Path

from accelforge.frontend.spec import Spec
from accelforge.mapper.FFM._make_pmappings.make_pmappings import get_n_computes, get_per_tensor_n_elements


def main(folder: Path) -> None:
    out = {}
    for entry in json.loads((folder / "index.json").read_text()):
        spec = Spec.from_yaml(str(folder / entry["accelforge"]))
        (einsum,) = spec.workload.einsums
        out[entry["file"]] = {
            "einsum": einsum.name,
            "n_instances": einsum.n_instances,
            "operations": int(get_n_computes(spec, einsum.name)),
            "tensors": {k: int(v) for k, v in get_per_tensor_n_elements(spec.workload).items()},
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
