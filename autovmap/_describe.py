"""What a call does, as data and as text: `Plan` tables and the shape-error messages.

A failing call and a working one are described by the same table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ._arrays import shape_of
from ._bind import BoundCall
from ._errors import BroadcastError, CoreDimError, RankTooLargeError, fn_label
from ._plan import IncompatibleBatchShapes, Shape, VmapPlan
from ._route import Route
from ._signature import ArgDims, CoreDims, fmt_dims, leaf_dims


def what_value(value: Any) -> str:
    r"""What a value is, for messages: `a float32 array of shape (3, 4)`, or `a \`Dense\``."""
    shape = getattr(value, "shape", None)
    if shape is None:
        return f"a `{type(value).__name__}`"
    return f"a {getattr(value, 'dtype', '')} array of shape {fmt_shape(tuple(shape))}"


def fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Left-aligned columns, one line per row, for messages a person reads."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in [header, *rows]
    )


@dataclasses.dataclass(frozen=True)
class LeafPlan:
    """One ranked array leaf of a call.

    Attributes:
        argument: the parameter, with the pytree path of the leaf (`p['w']`, `*args[1]`).
        rank: the per-example rank of the leaf.
        source: where the rank came from: `"explicit"`, `"signature"` or `"annotation"`.
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


def leaf_table(leaves: Sequence[LeafPlan], with_levels: bool) -> str:
    header = ["argument", "rank", "from", "shape", "batch shape"]
    rows = [
        [
            leaf.argument,
            str(leaf.rank),
            leaf.source,
            fmt_shape(leaf.shape),
            fmt_shape(leaf.batch_shape),
        ]
        for leaf in leaves
    ]
    if with_levels:
        header.append("in_axes, outer to inner level")
        for row, leaf in zip(rows, leaves):
            row.append(" ".join("-" if a is None else str(a) for a in leaf.in_axes or ()) or "-")
    return render_table(header, rows)


def leaf_plans(bound: BoundCall, plan: VmapPlan | None) -> tuple[LeafPlan, ...]:
    """Describe every ranked leaf of `bound`; `plan` supplies the in_axes when there is one."""
    sources = [a.param.source for a in bound.arguments for _ in a.slots]
    position = {} if plan is None else {leaf: p for p, leaf in enumerate(plan.mapped)}
    result = []
    for i, (label, leaf, rank, source) in enumerate(
        zip(bound.leaf_labels(), bound.leaves, bound.ranks, sources)
    ):
        shape = shape_of(leaf)
        assert shape is not None
        in_axes = None
        if plan is not None:
            p = position.get(i)
            in_axes = tuple(None if p is None else level[p] for level in plan.levels)
        batch = shape[: max(len(shape) - rank, 0)]
        result.append(LeafPlan(label, rank, source, shape, batch, in_axes))
    return tuple(result)


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
        eager_levels: the number of vmap levels this call runs with these arguments: for
            concrete arrays on one device with no option, adjacent levels that map the same
            leaves are merged by a reshape; otherwise `levels`.
        chunk_size: the `chunk_size` option, if set.
        route: how the call runs (nested or merged vmap, a chunk loop, per-shard chunks, a
            named axis): the very value the call itself runs by. `print(plan)` shows it.
    """

    function: str
    batch_shape: Shape
    leaves: tuple[LeafPlan, ...]
    levels: int
    eager_levels: int
    chunk_size: int | None = None
    route: Route | None = None

    def __str__(self) -> str:
        route = "" if self.route is None else str(self.route)
        summary = (
            route
            if not self.batch_shape and not self.levels
            else (f"batch shape {fmt_shape(self.batch_shape)}; {route}")
        )
        legend = "in_axes: 0 = mapped, - = broadcast (in_axes=None, never copied)"
        return (
            f"{self.function}: {summary}\n{leaf_table(self.leaves, with_levels=True)}\n  {legend}"
        )


def describe(
    fn: object, bound: BoundCall, plan: VmapPlan | None, route: Route, chunk_size: int | None
) -> Plan:
    """The `Plan` of a bound call: its plan and the route the call runs by."""
    return Plan(
        function=fn_label(fn).strip("`"),
        batch_shape=() if plan is None else plan.batch_shape,
        leaves=leaf_plans(bound, plan),
        levels=0 if plan is None else len(plan.levels),
        eager_levels=len(route.levels),
        chunk_size=chunk_size,
        route=route,
    )


def count_dims(n: int) -> str:
    """`1 dim`, `2 dims`: a number of dimensions in words."""
    return f"{n} dim" if n == 1 else f"{n} dims"


_SPELLED_OUT = 6  # core dims written out in a message; more are elided


def rank_too_large(fn: object, bound: BoundCall, i: int) -> RankTooLargeError:
    label = bound.leaf_labels()[i]
    shape = shape_of(bound.leaves[i])
    assert shape is not None
    rank = bound.ranks[i]
    # A rank is any int >= 0: spell out a few core dims only, so the message stays small.
    names = [f"d{k}" for k in range(min(rank, _SPELLED_OUT))]
    if rank > _SPELLED_OUT:
        names[-2:] = ["...", f"d{rank - 1}"]
    core = ", ".join(names)
    return RankTooLargeError(
        f"{fn_label(fn)}: argument `{label}` has shape {fmt_shape(shape)} "
        f"({count_dims(len(shape))}), but its rank is {rank}: one example has {count_dims(rank)}, "
        f"so the argument needs at least {rank}.\nPass `{label}` with shape (*batch, {core}), or "
        "give it a smaller rank."
    )


def broadcast_error(fn: object, bound: BoundCall, error: IncompatibleBatchShapes) -> BroadcastError:
    leaves = leaf_plans(bound, None)
    from_right = error.axis - error.ndim
    sizes = [
        str(leaf.batch_shape[from_right])
        for leaf in leaves
        if len(leaf.batch_shape) >= -from_right and leaf.batch_shape[from_right] != 1
    ]
    example = next(leaf.argument for leaf in leaves if leaf.batch_shape)
    return BroadcastError(
        f"{fn_label(fn)}: the batch shapes of the arguments do not broadcast: batch dimension "
        f"{from_right} (counted from the right) has sizes {' and '.join(dict.fromkeys(sizes))}.\n"
        f"{leaf_table(leaves, with_levels=False)}\n"
        "Batch shapes are aligned on the right, and in each position the sizes must be equal or "
        "1 (a size-1 or missing dimension stretches). Make the sizes agree, or insert a size-1 "
        f"axis (e.g. `{example}[:, None]`) to combine every example of one argument with every "
        "example of another."
    )


# A ranked leaf of a call: (index of its argument in `BoundCall.arguments`, index among the
# argument's ranked leaves).
LeafAt = tuple[int, int]


def _leaf(core: CoreDims, bound: BoundCall, at: LeafAt) -> tuple[str, Shape, ArgDims]:
    """The label, shape and core dims of one ranked leaf of a call."""
    argument = bound.arguments[at[0]]
    dims = leaf_dims(core.params[argument.param.name], argument)[at[1]]
    shape = shape_of(bound.leaves[argument.start + at[1]])
    assert dims is not None and shape is not None
    return argument.leaf_labels()[at[1]], shape, dims


def _core_dim_table(core: CoreDims, bound: BoundCall) -> str:
    """Every ranked leaf with named dims: its shape, its core dims, and their sizes."""
    rows = []
    for argument in bound.arguments:
        if argument.param.name not in core.params:
            continue
        per_leaf = leaf_dims(core.params[argument.param.name], argument)
        for j, (label, dims) in enumerate(zip(argument.leaf_labels(), per_leaf)):
            shape = shape_of(bound.leaves[argument.start + j])
            if dims is None or shape is None:
                continue
            core_shape = shape[len(shape) - len(dims) :]
            named = dict.fromkeys(f"{d}={s}" for d, s in zip(dims, core_shape) if d.name)
            sizes = " ".join(named)  # `n=2 n=3` shows a mismatch within one argument
            rows.append([label, fmt_shape(shape), fmt_dims(dims), sizes or "-"])
    return render_table(["argument", "shape", "core dims", "named sizes"], rows)


def _in_signature(core: CoreDims) -> str:
    return "" if core.signature is None else f" (signature {core.signature!r})"


def core_dim_mismatch(
    fn: object,
    core: CoreDims,
    bound: BoundCall,
    name: str,
    first: LeafAt,
    known: int,
    second: LeafAt,
    size: int,
) -> CoreDimError:
    first_label, _, _ = _leaf(core, bound, first)
    second_label, _, _ = _leaf(core, bound, second)
    stretch = (
        " A size-1 core dim does not stretch: only batch dims broadcast."
        if 1 in (known, size)
        else ""
    )
    where = (
        f"sizes {known} and {size} within argument `{first_label}`"
        if first_label == second_label
        else f"size {known} in argument `{first_label}` but size {size} in argument "
        f"`{second_label}`"
    )
    return CoreDimError(
        f"{fn_label(fn)}: core dim `{name}` has {where}{_in_signature(core)}.\n"
        f"{_core_dim_table(core, bound)}\n"
        f"Like-named core dims must have the same size in every argument.{stretch} Make the "
        f"`{name}` dims of `{first_label}` and `{second_label}` agree, or give them different "
        "names if they may differ."
    )


def core_dim_fixed(
    fn: object, core: CoreDims, bound: BoundCall, at: LeafAt, fixed: int, size: int
) -> CoreDimError:
    label, _, dims = _leaf(core, bound, at)
    return CoreDimError(
        f"{fn_label(fn)}: argument `{label}` has core dims {fmt_dims(dims)}, which fix a size "
        f"of {fixed}, but the size there is {size}{_in_signature(core)}.\n"
        f"{_core_dim_table(core, bound)}\nPass `{label}` with that dim of size {fixed}, or "
        "name the dim instead of fixing its size."
    )
