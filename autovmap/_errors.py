"""Every exception and warning `autovmap` raises, and how messages name the function.

Every message names the decorated function and the parameter (with its pytree path), shows what
was seen and what was expected, and ends with how to fix it.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jaxtyping
import numpy as np


def hide_from_tracebacks(path: str) -> None:
    """Hide the frames of the module at `path` from JAX's filtered tracebacks, as JAX and equinox
    do for their own modules."""
    try:
        from jax._src import traceback_util  # private, but stable for years; optional anyway
    except ImportError:  # pragma: no cover
        return
    traceback_util.register_exclusion(path)


_JAX_NOTE = "--------------------\nFor simplicity, JAX"  # how JAX's note on removed frames starts


def tidy_traceback(error: BaseException) -> None:
    """Make `error`, on its way out of a decorated function, read as raised at the user's call:
    the frames of this package and of JAX leave its traceback (the user's own frames stay, the
    user's function included), and JAX's note on removed frames moves after the notes added
    here, so that the message and its notes read together. `JAX_TRACEBACK_FILTERING=off` (or
    IPython's own hiding) leaves the traceback whole."""
    notes = getattr(error, "__notes__", None)
    if notes:
        notes.sort(key=lambda note: note.startswith(_JAX_NOTE))  # stable: JAX's note last
    try:
        from jax._src import traceback_util

        mode = traceback_util._filtering_mode()
        filter_traceback = traceback_util.filter_traceback
    except (ImportError, AttributeError):  # pragma: no cover - private, checked by the tests
        return
    if mode in ("quiet_remove_frames", "remove_frames") and error.__traceback__ is not None:
        error.__traceback__ = filter_traceback(error.__traceback__)


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


class CoreDimError(BatchShapeError):
    """Like-named core dims of the arguments have different sizes, or a core dim of fixed size
    has another; from a `signature=`, dim strings such as `v="n"`, or annotations."""


class OutputSignatureError(AutoVmapError, TypeError, ValueError):
    """One example's return value does not fit the outputs of the signature: not a tuple of
    the declared length, an output of another rank, or a named dim of another size.

    Subclasses both `TypeError` and `ValueError`, as `jnp.vectorize` raises either for these.
    """


class AnnotationCheckError(AutoVmapError, jaxtyping.TypeCheckError):
    """An example does not match the function's jaxtyping annotations (shape, dims or dtype)."""


class NothingToBatchWarning(UserWarning):
    """`@auto_vmap` read a function's annotations and found no parameter to batch.

    Issued when decorating, with no explicit ranks, when no annotation gives a rank (`x:
    jax.Array` says nothing about one example's dims). The function is then returned as it is:
    without the warning, such a no-op would look like success and give unbatched results. Give
    ranks explicitly (`@auto_vmap(x=1)`) or annotate with jaxtyping array types.
    """


def value_label(value: Any) -> str:
    """One short line naming what `value` is, for messages: an array by its type, shape and
    dtype (never its repr, which runs to many lines), anything else by its type and, when that
    is short, its repr."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    kind = type(value).__qualname__
    if isinstance(value, jax.Array):
        kind = "jax.Array"
    elif isinstance(value, np.ndarray):
        kind = "numpy.ndarray"
    if isinstance(shape, tuple) and dtype is not None:
        return f"{_a(kind)} of shape {shape} and dtype {dtype}"
    text = repr(value)
    if len(text) <= 60 and "\n" not in text:
        return f"`{text}`, {_a(kind)}"
    return _a(kind)


def _a(kind: str) -> str:
    return f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} `{kind}`"


def fn_label(fn: Any) -> str:
    """`` `auto_vmap(name)` ``: how messages name the decorated function (a callable object by
    its class, a `functools.partial` by the function it wraps). A function that names itself
    with `__autovmap_label__` (what `vectorize` calls) is named so: `` `vectorize(name)` ``."""
    label = getattr(fn, "__autovmap_label__", None)
    if isinstance(label, str):
        return label
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"`auto_vmap({str(name).rpartition('<locals>.')[2]})`"
