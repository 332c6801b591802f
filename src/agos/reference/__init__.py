"""The cycle-stepping reference simulator of the cost model (docs/cost-model.md).

Independent of the fast model (`agos.cost`): it imports only the arch schema, the masks and the
layer geometry, enumerates every tap from the geometry, reads the mask bits into per-PE work lists
and steps the array cycle by cycle. Plain Python, for tiny layers; the fast model must equal it.
"""

from agos.reference.mapping import ReferenceModelError
from agos.reference.simulate import ACTIONS, ReferencePass, reference_pass

__all__ = ["ACTIONS", "ReferenceModelError", "ReferencePass", "reference_pass"]
