"""From batch shapes to a vmap plan: pure Python on shape tuples, cached per call signature.

The batch shapes of the ranked leaves broadcast NumPy-style: aligned on the right, a size-1 or
missing dimension stretches. Each batch dimension of size other than 1 becomes one `jax.vmap`
level; at that level a leaf is mapped (`in_axes=0`) if it has that dimension with the full size,
and otherwise broadcast (`in_axes=None`) after its size-1 dimension, if any, has been squeezed.
Nothing is ever broadcast by copying.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, TypeVar

Shape = tuple[int, ...]
InAxes = tuple[int | None, ...]
_V = TypeVar("_V")


class IncompatibleBatchShapes(Exception):
    """Internal: raised by `make_plan`; the caller turns it into a `BroadcastError`."""

    def __init__(self, axis: int, ndim: int):
        super().__init__(axis, ndim)
        self.axis = axis  # position in the broadcast batch shape, counted from the left
        self.ndim = ndim  # the number of dims of the broadcast batch shape


@dataclasses.dataclass(frozen=True)
class VmapPlan:
    """How to evaluate one call, in the index space of its ranked leaves.

    Attributes:
        batch_shape: the broadcast batch shape every output leaf gets prepended.
        squeeze_axes: per ranked leaf, its size-1 batch axes, squeezed away before mapping.
        mapped: the ranked leaves mapped at one level or more; the others are broadcast.
        levels: one entry per `jax.vmap` level, outermost first: the `in_axes` (0 or None) of
            each mapped leaf at that level.
        mapped_shape: the size of each level. It differs from `batch_shape` by the size-1
            dims that no leaf maps, and by merging; the outputs get those back by a reshape.
        merged: `levels` with each run of adjacent levels that map the same leaves joined into
            one (a free reshape of the leaves for concrete arrays), or `None` if no two merge.
        merged_batch_shapes: for a merged plan, the batch shape each mapped leaf is reshaped to.
    """

    batch_shape: Shape
    squeeze_axes: tuple[Shape, ...]
    mapped: tuple[int, ...]
    levels: tuple[InAxes, ...]
    mapped_shape: Shape
    merged: VmapPlan | None = None
    merged_batch_shapes: tuple[Shape, ...] | None = None
    # `_route`'s routes for calls with no option, by whether the levels merge: they depend on
    # the plan alone, so they are made once per plan.
    routes: dict[bool, Any] = dataclasses.field(
        default_factory=dict, init=False, compare=False, repr=False
    )


def broadcast_batch_shapes(batch_shapes: tuple[Shape, ...]) -> Shape:
    """NumPy broadcasting of `batch_shapes`; raises `IncompatibleBatchShapes`."""
    ndim = max(map(len, batch_shapes), default=0)
    result = []
    for axis in range(ndim):
        sizes = {s[axis - ndim + len(s)] for s in batch_shapes if axis >= ndim - len(s)} - {1}
        if len(sizes) > 1:
            raise IncompatibleBatchShapes(axis, ndim)
        result.append(sizes.pop() if sizes else 1)
    return tuple(result)


def make_plan(batch_shapes: tuple[Shape, ...]) -> VmapPlan:
    """Plan a call whose ranked leaves have these batch shapes (`()` for unbatched leaves)."""
    batch_shape = broadcast_batch_shapes(batch_shapes)
    ndim = len(batch_shape)
    kept = []  # kept[i][axis]: leaf i carries the full, non-1 batch dim `axis`
    squeeze_axes = []
    for shape in batch_shapes:
        offset = ndim - len(shape)
        kept.append([axis >= offset and shape[axis - offset] != 1 for axis in range(ndim)])
        squeeze_axes.append(tuple(i for i, size in enumerate(shape) if size == 1))
    mapped = tuple(i for i, keep in enumerate(kept) if any(keep))
    mapped_axes = [axis for axis in range(ndim) if batch_shape[axis] != 1]
    levels = tuple(tuple(0 if kept[i][axis] else None for i in mapped) for axis in mapped_axes)
    plan = VmapPlan(
        batch_shape=batch_shape,
        squeeze_axes=tuple(squeeze_axes),
        mapped=mapped,
        levels=levels,
        mapped_shape=tuple(batch_shape[axis] for axis in mapped_axes),
    )
    return dataclasses.replace(plan, merged=_merge_levels(plan))


# Past this many arrays, reshaping them eagerly one dispatch each costs more than one jitted
# call that reshapes them all (whose dispatch costs about as much as a few eager reshapes).
RESHAPE_ONE_BY_ONE = 4

# Merge eagerly when it saves this many vmap levels or more (see `_merge_levels`).
_MERGE_SAVING_AT_LEAST = 4


def _merge_levels(plan: VmapPlan) -> VmapPlan | None:
    """`plan` with runs of adjacent levels that map the same leaves joined into one level, or
    `None` where that does not pay.

    A leaf mapped in a run has those batch dims next to each other, so merging them is a
    reshape that moves no data. Only for concrete arrays: under tracing the program must stay
    the one hand-written nested `jax.vmap` gives. Merging pays per call (each level saved
    spares every op of the function, and every leaf, a vmap level's Python), but eagerly each
    reshape is a compiled executable per new shape, in and out: on shapes never seen before
    that costs more than three saved levels (a one-op function: 1.4x the time of hand-written
    nested vmap at 4 batch dims, three compilations instead of one). So merge when it saves
    `_MERGE_SAVING_AT_LEAST` levels or more (5 batch dims and up), or when the leaves are many
    (one jitted call then reshapes them all, against a per-leaf saving). Decided by the plan
    alone, so every call with these batch shapes runs the same way.
    """
    runs: list[list[int]] = []  # indices into plan.levels
    for i, in_axes in enumerate(plan.levels):
        if runs and plan.levels[runs[-1][0]] == in_axes:
            runs[-1].append(i)
        else:
            runs.append([i])
    saved = len(plan.levels) - len(runs)
    if saved == 0 or (saved < _MERGE_SAVING_AT_LEAST and len(plan.mapped) <= RESHAPE_ONE_BY_ONE):
        return None
    sizes = [math.prod(plan.mapped_shape[i] for i in run) for run in runs]
    return dataclasses.replace(
        plan,
        levels=tuple(plan.levels[run[0]] for run in runs),
        mapped_shape=tuple(sizes),
        merged_batch_shapes=tuple(
            tuple(size for run, size in zip(runs, sizes) if plan.levels[run[0]][p] == 0)
            for p in range(len(plan.mapped))
        ),
    )


class BoundedCache:
    """A dict that forgets everything once it holds `size` entries: cheap, thread-safe under
    the GIL, and bounded however many call signatures a long-running program sees."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[Any, Any] = {}
        # The dict's own `get`: a lookup costs no Python call (every call makes a few).
        self.get: Callable[[Any], Any] = self._entries.get

    def put(self, key: Any, value: _V) -> _V:
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = value
        return value


PLANS = BoundedCache(4096)  # by batch shapes, shared by every decorated function


def plan_for(batch_shapes: tuple[Shape, ...]) -> VmapPlan:
    """`make_plan`, cached by the batch shapes (`PLANS`)."""
    cached: VmapPlan | None = PLANS.get(batch_shapes)
    return cached if cached is not None else PLANS.put(batch_shapes, make_plan(batch_shapes))
