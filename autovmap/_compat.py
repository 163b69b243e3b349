"""What differs between the jax releases we support, checked once, here.

Each name below is either a feature test (a bool, read once at import) or jax's object under
a name that holds on every supported release. Nothing else in the package looks at versions.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import jax
import jax.extend.core
import jax.numpy as jnp
from jax.experimental.custom_partitioning import SdyShardingRule

# jax 0.12 merged `ClosedJaxpr` into `Jaxpr` (kept as an alias its stubs do not export).
Jaxpr: Any = jax.extend.core.Jaxpr
ClosedJaxpr: Any = getattr(jax.extend.core, "ClosedJaxpr", Jaxpr)

# Sharded chunk loops keep batch dims on `Explicit` axes through reshapes, gathers and vmaps;
# jax 0.5 types lose the sharding along the way (its `jnp.reshape` has no `out_sharding` yet,
# the mark of the release that fixed this), so there Explicit batches take the plain loop.
EXPLICIT_SPLIT = "out_sharding" in inspect.signature(jnp.reshape).parameters

# Shardy sharding rules name factors that must stay replicated from jax 0.6 on.
SDY_REPLICATION_FACTORS = (
    "need_replication_factors" in inspect.signature(SdyShardingRule).parameters
)

# Set a mesh for the types only (no devices): jax >= 0.6.
use_abstract_mesh: Any = getattr(jax.sharding, "use_abstract_mesh", None)


def pcast_varying(x: Any, axes: tuple[Any, ...]) -> Any:
    """`x` made to vary over the manual mesh `axes` (`pcast`; older jax calls it `pvary`)."""
    pcast: Any = getattr(jax.lax, "pcast", None)
    if pcast is not None:
        return pcast(x, axes, to="varying")
    pvary: Any = getattr(jax.lax, "pvary")  # noqa: B009 - not in every release's stubs
    return pvary(x, axes)


# The one private name we use: jax has no public way to mark an array weakly typed. A release
# that moves it leaves chunked results strongly typed, nothing worse.
_convert_element_type: Any = getattr(
    importlib.import_module("jax._src.lax.lax"), "_convert_element_type", None
)


def weakly_typed(x: Any) -> Any:
    """`x` as a weakly typed array of the same dtype, as a Python scalar would make it.

    A loop carry loses weak types (`fori_loop` promotes them); outputs that were weak per
    example get it back here, so chunked results promote like unchunked ones."""
    if _convert_element_type is None:  # pragma: no cover
        return x
    return _convert_element_type(x, weak_type=True)
