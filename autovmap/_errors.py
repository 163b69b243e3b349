"""Every exception and warning `autovmap` raises, and how messages name the function.

Every message names the decorated function and the parameter (with its pytree path), shows what
was seen and what was expected, and ends with how to fix it.
"""

from __future__ import annotations

import functools
from typing import Any

import jaxtyping


def hide_from_tracebacks(path: str) -> None:
    """Hide the frames of the module at `path` from JAX's filtered tracebacks, as JAX and equinox
    do for their own modules."""
    try:
        from jax._src import traceback_util  # private, but stable for years; optional anyway
    except ImportError:  # pragma: no cover
        return
    traceback_util.register_exclusion(path)


class AutoVmapError(Exception):
    """Base class of every error raised by `autovmap` itself."""


class RankSpecError(AutoVmapError, TypeError, ValueError):
    """A rank specification is invalid; raised when decorating.

    Subclasses both `TypeError` and `ValueError`, so code that catches either keeps working.
    """


class BatchShapeError(AutoVmapError, ValueError):
    """The arguments of a call do not fit the ranks; raised before `jax.vmap` runs."""


class RankTooLargeError(BatchShapeError):
    """An array argument has fewer dimensions than its per-example rank."""


class BroadcastError(BatchShapeError):
    """The batch shapes of the arguments do not broadcast against each other."""


class TreeStructureError(BatchShapeError):
    """An argument's pytree structure does not match the pytree of ranks given for it."""


class AnnotationCheckError(AutoVmapError, jaxtyping.TypeCheckError):
    """An example does not match the function's jaxtyping annotations (shape, dims or dtype)."""


class NothingToBatchWarning(UserWarning):
    """`@auto_vmap` read a function's annotations and found no parameter to batch."""


def fn_label(fn: Any) -> str:
    """`` `auto_vmap(name)` ``: how messages name the decorated function (a callable object by
    its class, a `functools.partial` by the function it wraps)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"`auto_vmap({str(name).rpartition('<locals>.')[2]})`"
