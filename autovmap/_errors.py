"""The errors `auto_vmap` raises, and the helpers that write their messages.

Every message names the decorated function and the parameter (with its pytree path), shows
what was seen and what was expected, and ends with how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AutoVmapError",
    "RankSpecError",
    "BatchShapeError",
    "RankTooLargeError",
    "BroadcastError",
    "TreeStructureError",
]


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


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Left-aligned columns, one line per row, for messages a person reads."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def fn_label(fn: object) -> str:
    """`auto_vmap(name)`: how messages name the decorated function."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"`auto_vmap({name.rpartition('<locals>.')[2]})`"
