"""autovmap: make a JAX function written for single examples accept any leading batch dims."""

from importlib.metadata import version as _installed_version

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
    OptionError as OptionError,
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
    "OptionError",
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

__version__ = _installed_version("autovmap")
del _installed_version  # the public namespace holds the API only
