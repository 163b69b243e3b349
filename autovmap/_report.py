"""`Plan`: what a call will do, as data and as a table a person can read.

The same table heads `BroadcastError` messages, so a failing call and a working one are
described the same way.
"""

from __future__ import annotations

import dataclasses

from ._errors import render_table

Shape = tuple[int, ...]


def fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


@dataclasses.dataclass(frozen=True)
class LeafPlan:
    """One ranked array leaf of a call.

    Attributes:
        argument: the parameter, with the pytree path of the leaf (`p['w']`, `*args[1]`).
        rank: the per-example rank of the leaf.
        source: where the rank came from: `"explicit"` or `"annotation"`.
        shape: the shape passed.
        batch_shape: `shape[:ndim - rank]`.
        in_axes: the leaf's `in_axes` at each `jax.vmap` level, outermost first: `0` where it
            is mapped, `None` where it is broadcast (a size-1 dim squeezed, or a missing one).
    """

    argument: str
    rank: int
    source: str
    shape: Shape
    batch_shape: Shape
    in_axes: tuple[int | None, ...] | None = None


def leaf_table(leaves: tuple[LeafPlan, ...], with_levels: bool) -> str:
    header = ["argument", "rank", "from", "shape", "batch shape"]
    rows = [[l.argument, str(l.rank), l.source, fmt_shape(l.shape), fmt_shape(l.batch_shape)]
            for l in leaves]
    if with_levels:
        header.append("in_axes per level")
        for row, leaf in zip(rows, leaves):
            row.append(" ".join("-" if a is None else str(a) for a in leaf.in_axes or ()) or "-")
    return render_table(header, rows)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What calling an auto-vmapped function with given arguments does, worked out without
    running it. Returned by `autovmap.plan`; `print(plan)` shows a table.

    Attributes:
        function: the name of the decorated function.
        batch_shape: the broadcast batch shape, prepended to every output leaf.
        leaves: one `LeafPlan` per ranked array leaf, in argument order.
        levels: the number of `jax.vmap` levels under tracing (`jax.jit`, `jax.grad`, ...):
            one per batch dim of size other than 1.
        eager_levels: the number of levels with concrete arrays, after adjacent levels that
            map the same leaves are merged by a free reshape.
        chunk_size: the `chunk_size` option, if set: the batch is then evaluated that many
            examples at a time.
    """

    function: str
    batch_shape: Shape
    leaves: tuple[LeafPlan, ...]
    levels: int
    eager_levels: int
    chunk_size: int | None = None

    def __str__(self) -> str:
        if not self.levels and self.batch_shape == ():
            summary = "no batch dims: the function is called once, with the arguments as given"
        else:
            summary = (
                f"batch shape {fmt_shape(self.batch_shape)}, {self.levels} vmap level(s) "
                f"under tracing, {self.eager_levels} eager"
            )
            if self.chunk_size is not None:
                summary += f", in chunks of at most {self.chunk_size} examples"
        legend = "in_axes: 0 = mapped, - = broadcast (in_axes=None, never copied)"
        return (
            f"{self.function}: {summary}\n{leaf_table(self.leaves, with_levels=True)}\n  {legend}"
        )
