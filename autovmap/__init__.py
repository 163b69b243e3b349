"""autovmap: make a JAX function written for single examples accept any leading batch dims."""

import importlib.metadata

from ._batched import Batched as Batched
from ._decorator import (
    AutoVmap as AutoVmap,
    auto_vmap as auto_vmap,
    autovmap as autovmap,
    plan as plan,
)
from ._describe import LeafPlan as LeafPlan, Plan as Plan
from ._errors import (
    AnnotationCheckError as AnnotationCheckError,
    AutoVmapError as AutoVmapError,
    BatchShapeError as BatchShapeError,
    BroadcastError as BroadcastError,
    CoreDimError as CoreDimError,
    NothingToBatchWarning as NothingToBatchWarning,
    OutputSignatureError as OutputSignatureError,
    RankSpecError as RankSpecError,
    RankTooLargeError as RankTooLargeError,
    TreeStructureError as TreeStructureError,
)
from ._vectorize import vectorize as vectorize

# Every public name, as the stub lists them (it needs the list to export `Batched`).
__all__ = [
    "AnnotationCheckError",
    "AutoVmap",
    "AutoVmapError",
    "BatchShapeError",
    "Batched",
    "BroadcastError",
    "CoreDimError",
    "LeafPlan",
    "NothingToBatchWarning",
    "OutputSignatureError",
    "Plan",
    "RankSpecError",
    "RankTooLargeError",
    "TreeStructureError",
    "auto_vmap",
    "autovmap",
    "plan",
    "vectorize",
]

__version__ = importlib.metadata.version("autovmap")
