"""autovmap: make a JAX function written for single examples accept any leading batch dims."""

from ._core import AutoVmap as AutoVmap
from ._core import auto_vmap as auto_vmap
from ._core import autovmap as autovmap
from ._check import AnnotationCheckError as AnnotationCheckError
from ._errors import AutoVmapError as AutoVmapError
from ._errors import BatchShapeError as BatchShapeError
from ._errors import BroadcastError as BroadcastError
from ._errors import RankSpecError as RankSpecError
from ._errors import RankTooLargeError as RankTooLargeError
from ._errors import TreeStructureError as TreeStructureError
from ._explain import plan as plan
from ._report import LeafPlan as LeafPlan
from ._report import Plan as Plan

__version__ = "0.1.0"
