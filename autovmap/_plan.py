"""From batch shapes to a vmap plan. Pure Python on shape tuples, so plans can be cached.

The batch shapes of all batched leaves broadcast NumPy-style: aligned on the right, a size-1 or
missing dimension stretches. Each batch dimension of the result becomes one `jax.vmap` level;
at that level a leaf is mapped (`in_axes=0`) if it has that dimension with the full size, and
otherwise closed over (`in_axes=None`) after its size-1 dimension, if any, has been squeezed.
Nothing is ever broadcast by copying.
"""

from __future__ import annotations

import dataclasses
import functools
import math

Shape = tuple[int, ...]


class IncompatibleBatchShapes(Exception):
    """Internal: raised by `make_plan`; the caller turns it into a `BroadcastError`."""

    def __init__(self, axis: int, sizes: tuple[int, ...]):
        super().__init__(axis, sizes)
        self.axis = axis  # position in the broadcast batch shape, counted from the left
        self.sizes = sizes  # the different sizes (other than 1) seen there


@dataclasses.dataclass(frozen=True)
class VmapPlan:
    """How to evaluate one call, for the leaves that have batch dimensions.

    Attributes:
        batch_shape: the broadcast batch shape every output leaf gets prepended.
        squeeze_axes: per batched leaf, its size-1 batch axes, which are squeezed away (the
            leaf is then closed over at those levels rather than copied).
        participants: indices of the batched leaves that are mapped at one level or more; the
            others are squeezed to one example and closed over.
        levels: one entry per `jax.vmap` level, outermost first: the `in_axes` (0 or None) of
            each participant at that level.
        mapped_shape: the sizes of the mapped levels; differs from `batch_shape` only by the
            size-1 dimensions no leaf maps (and by merging), which the outputs get back by
            a reshape.
        merged_batch_shapes: `None`, or for a merged plan (see `merge_levels`) the batch shape
            each participant is reshaped to before mapping.
    """

    batch_shape: Shape
    squeeze_axes: tuple[tuple[int, ...], ...]
    participants: tuple[int, ...]
    levels: tuple[tuple[int | None, ...], ...]
    mapped_shape: Shape
    merged_batch_shapes: tuple[Shape, ...] | None = None


def broadcast_batch_shapes(batch_shapes: tuple[Shape, ...]) -> Shape:
    """NumPy broadcasting of `batch_shapes`; raises `IncompatibleBatchShapes`."""
    ndim = max((len(s) for s in batch_shapes), default=0)
    result = []
    for axis in range(ndim):
        sizes = {s[axis - ndim + len(s)] for s in batch_shapes if axis >= ndim - len(s)}
        sizes.discard(1)
        if len(sizes) > 1:
            raise IncompatibleBatchShapes(axis, tuple(sorted(sizes)))
        result.append(sizes.pop() if sizes else 1)
    return tuple(result)


@functools.lru_cache(maxsize=4096)  # thread-safe; keyed by shapes only, so bounded and shared
def make_plan(batch_shapes: tuple[Shape, ...]) -> VmapPlan:
    """VmapPlan a call whose batched leaves have these (non-empty) batch shapes."""
    batch_shape = broadcast_batch_shapes(batch_shapes)
    ndim = len(batch_shape)
    # kept[i][axis] is True where leaf i carries the full, non-1 batch dimension `axis`.
    kept = []
    squeeze_axes = []
    for shape in batch_shapes:
        offset = ndim - len(shape)
        keep = [False] * ndim
        squeeze = []
        for i, size in enumerate(shape):
            if size == 1:
                squeeze.append(i)
            else:
                keep[offset + i] = True
        kept.append(keep)
        squeeze_axes.append(tuple(squeeze))
    participants = tuple(i for i, keep in enumerate(kept) if any(keep))
    mapped_axes = [axis for axis in range(ndim) if batch_shape[axis] != 1]
    levels = tuple(
        tuple(0 if kept[i][axis] else None for i in participants) for axis in mapped_axes
    )
    return VmapPlan(
        batch_shape=batch_shape,
        squeeze_axes=tuple(squeeze_axes),
        participants=participants,
        levels=levels,
        mapped_shape=tuple(batch_shape[axis] for axis in mapped_axes),
    )


@functools.lru_cache(maxsize=4096)
def merge_levels(plan: VmapPlan) -> VmapPlan:
    """Merge runs of adjacent levels in which exactly the same leaves are mapped into one level.

    A participant mapped in a run has those batch dims next to each other, so merging them is
    a free reshape. Only for concrete arrays: under tracing the program must stay the one
    hand-written nested `jax.vmap` gives.
    """
    runs: list[list[int]] = []  # indices into plan.levels
    for i, in_axes in enumerate(plan.levels):
        if runs and plan.levels[runs[-1][0]] == in_axes:
            runs[-1].append(i)
        else:
            runs.append([i])
    if len(runs) == len(plan.levels):
        return plan
    sizes = [math.prod(plan.mapped_shape[i] for i in run) for run in runs]
    return dataclasses.replace(
        plan,
        levels=tuple(plan.levels[run[0]] for run in runs),
        mapped_shape=tuple(sizes),
        merged_batch_shapes=tuple(
            tuple(size for run, size in zip(runs, sizes) if plan.levels[run[0]][p] == 0)
            for p in range(len(plan.participants))
        ),
    )
