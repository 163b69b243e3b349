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


# jax's private names are used where jax has no public way, each guarded (here, and
# `fix_vmap_debug_info`; `_remember` reads two settings faster). Here: marking an array
# weakly typed. A release that moves it leaves chunked results strongly typed, nothing worse.
_convert_element_type: Any = getattr(
    importlib.import_module("jax._src.lax.lax"), "_convert_element_type", None
)


def fix_vmap_debug_info(fn: Any) -> bool:
    """Spare `jax.vmap` of `fn` its per-call debug info, where this jax allows it; whether it did.

    On every call, `jax.vmap` binds the arguments to the signature of the function it maps and
    names each of their leaves, for its messages: about a sixth of an eager call of a one-op
    function, at every level. `fn` here is the package's vmapped trampoline (`_vmap`) or a
    level of its nested vmap, whose argument names mean nothing to a user. jax takes the debug
    info a function carries (`__fun_debug_info__`, set by jax on its own wrappers) instead of
    making one: the one given is jax's own for `fn`, with the argument names unknown (`None`,
    which jax documents and handles). A private hook: a release without it ignores the
    attribute (checked here once per function), and then nothing changes."""
    try:
        api_util: Any = importlib.import_module("jax._src.api_util")
        fixed = api_util.debug_info("vmap", fn, (), {})._replace(arg_names=None)
        fn.__fun_debug_info__ = fixed
        if api_util.debug_info("vmap", fn, (None, ()), {}) is fixed:
            return True
    except (ImportError, AttributeError, TypeError, ValueError):  # pragma: no cover
        pass
    fn.__dict__.pop("__fun_debug_info__", None)  # pragma: no cover - another jax
    return False  # pragma: no cover


def weakly_typed(x: Any) -> Any:
    """`x` as a weakly typed array of the same dtype, as a Python scalar would make it.

    A loop carry loses weak types (`fori_loop` promotes them); outputs that were weak per
    example get it back here, so chunked results promote like unchunked ones."""
    if _convert_element_type is None:  # pragma: no cover
        return x
    return _convert_element_type(x, weak_type=True)
