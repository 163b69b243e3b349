"""autovmap: make a JAX function written for single examples accept any leading batch dims."""

import importlib.metadata

from ._decorator import AutoVmap as AutoVmap
from ._decorator import auto_vmap as auto_vmap
from ._decorator import autovmap as autovmap
from ._decorator import plan as plan
from ._describe import LeafPlan as LeafPlan
from ._describe import Plan as Plan
from ._errors import AnnotationCheckError as AnnotationCheckError
from ._errors import AutoVmapError as AutoVmapError
from ._errors import BatchShapeError as BatchShapeError
from ._errors import BroadcastError as BroadcastError
from ._errors import NothingToBatchWarning as NothingToBatchWarning
from ._errors import RankSpecError as RankSpecError
from ._errors import RankTooLargeError as RankTooLargeError
from ._errors import TreeStructureError as TreeStructureError

__version__ = importlib.metadata.version("autovmap")
