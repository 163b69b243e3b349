"""The chunk loop: evaluate a batch `chunk_size` examples at a time, on each device over its
own shard of the batch only.

A sharded level of size `n` is viewed as `(shards, n // shards)`, and the loop runs over the
local examples with the shards vmapped inside the loop: only reshapes, `vmap` and a loop, so
every transformation works. With no sharded level it is the plain loop over the whole batch.
The route (`_route`) decides which levels are sharded; `_partition` runs this same loop on
the shard XLA's partitioner hands it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._compat import weakly_typed
from ._errors import hide_from_tracebacks
from ._mesh import place, trailing_spec, varying_like
from ._vmap import AxisNames, Example, Levels, level_sizes, mapped_levels, nested_vmap

hide_from_tracebacks(__file__)


def _split_shape(
    shape: tuple[int, ...],
    levels: Levels,
    p: int,
    axes: Sequence[AxisNames | None],
    shards: Sequence[int],
) -> tuple[int, ...]:
    """Leaf `p`'s shape with each sharded level's dim `n` split into `(shards, n // shards)`:
    a free reshape, since a device holds a contiguous block of each sharded dim."""
    mine = mapped_levels(levels, p)
    out: list[int] = []
    for dim, level in enumerate(mine):
        if axes[level] is None:
            out.append(shape[dim])
        else:
            out += [shards[level], shape[dim] // shards[level]]
    return tuple(out) + tuple(shape[len(mine) :])


def _split_spec(levels: Levels, p: int, axes: Sequence[AxisNames | None]) -> list[Any]:
    spec: list[Any] = []
    for level in mapped_levels(levels, p):
        spec += [None] if axes[level] is None else [axes[level], None]
    return spec


def _dim_positions(levels: Levels, axes: Sequence[AxisNames | None], p: int) -> dict[int, int]:
    """Where leaf `p`'s local dim of each level it is mapped at lies, once split."""
    positions: dict[int, int] = {}
    at = 0
    for level in mapped_levels(levels, p):
        at += axes[level] is not None  # the shards dim comes first
        positions[level] = at
        at += 1
    return positions


def chunk_loop(
    example: Example,
    leaves: Sequence[Any],
    levels: Levels,
    chunk_size: int,
    axes: Sequence[AxisNames | None],
    mesh: Any,
) -> Any:
    """Evaluate the batch `chunk_size` examples per device at a time; outputs get the level
    sizes prepended.

    A level sharded over `axes[level]` is seen split, as a `(shards, local)` pair of dims
    (see `_split_shape`); with no mesh every level is one dim, and this is the plain loop
    over the whole batch. The loop runs over the flattened *local* index and never along a
    shards dim, so each device walks its own examples. In the loop body a chunk is taken
    from every leaf with all shards at once (a slice, or a gather of just the chunk for
    leaves not mapped at every level: nothing is broadcast), then vmapped over the chunk
    and the shards. The shards vmap is inside the loop, not around it: `vmap` of a loop
    moves the shards dim of every operand behind the loop dim, which copies whole shards.
    Leaves enter the loop unsplit: a split view, with its size-1 local shards dims in the
    middle, gets a layout of its own, and XLA copies loop operands to the default one.
    Outputs go to buffers laid out (shards..., local index, ...), so each chunk is one
    in-place `dynamic_update_slice`."""
    n_levels = len(levels)
    split = [level for level in range(n_levels) if axes[level] is not None]
    shards = [1 if a is None else math.prod(mesh.shape[name] for name in a) for a in axes]
    local = tuple(size // d for size, d in zip(level_sizes(leaves, levels), shards))
    n = math.prod(local)
    if n <= chunk_size:  # one chunk per device: the nested vmap it would be anyway
        return nested_vmap(tuple(map(tuple, levels)))(example, tuple(leaves))
    full_chunks, tail = divmod(n, chunk_size)
    anywhere = tuple(0 if mapped_levels(levels, p) else None for p in range(len(leaves)))

    def view(p: int, x: Any) -> tuple[bool, Any]:
        """(sliceable, array) for leaf p. A leaf mapped at every level whose only sharded
        level is the outermost has its local examples contiguous: flattened to
        (shards?, n, ...), its chunks are slices. Any other leaf is gathered from."""
        mine = mapped_levels(levels, p)
        if len(mine) == n_levels and not any(axes[level] for level in mine[1:]):
            lead = [axes[0]] if axes[0] is not None else []
            spec = lead + [None] + trailing_spec(x, len(mine), mesh)
            flat = tuple(shards[:1] if lead else ()) + (n,) + np.shape(x)[len(mine) :]
            return True, place(x, flat, mesh, spec)
        return False, jnp.asarray(x)

    views = [view(p, x) if anywhere[p] == 0 else (False, x) for p, x in enumerate(leaves)]

    def take(p: int, start: Any, size: int) -> Any:
        """Examples start..start+size of leaf p: (its shards dims..., size, example dims)."""
        sliceable, x = views[p]
        mine = mapped_levels(levels, p)
        n_shards = sum(axes[level] is not None for level in mine)
        if sliceable:
            return jax.lax.dynamic_slice_in_dim(x, start, size, axis=n_shards)
        x = place(  # split inside the loop body (see the docstring)
            x,
            _split_shape(np.shape(x), levels, p, axes, shards),
            mesh,
            _split_spec(levels, p, axes) + trailing_spec(x, len(mine), mesh),
        )
        positions = _dim_positions(levels, axes, p)
        index = jnp.unravel_index(start + jnp.arange(size), local)

        def one(*at: Any) -> Any:
            where: list[Any] = [slice(None)] * (len(mine) + n_shards)
            for level, i in zip(mine, at):
                where[positions[level]] = i
            return x[tuple(where)]

        return jax.vmap(one, out_axes=n_shards)(*(index[level] for level in mine))

    kinds = dict(zip(mesh.axis_names, mesh.axis_types)) if mesh is not None else {}
    # Over the shards (outer levels) and over the chunk (the innermost level); Explicit axes
    # are in the types already, and jax < 0.7 refuses both at once.
    body = nested_vmap(
        tuple(tuple(0 if in_axes == 0 else None for in_axes in levels[level]) for level in split)
        + (anywhere,),
        tuple(
            axes[level]
            if all(kinds[name] == jax.sharding.AxisType.Auto for name in axes[level] or ())
            else None
            for level in split
        )
        + (None,),
    )
    keys: dict[int, Any] = {}  # output leaf -> its PRNG key implementation

    def run(start: Any, size: int) -> Any:
        """The outputs of examples start..start+size, PRNG keys as their key data (a buffer
        of keys cannot be made from a dtype)."""
        out = body(
            example,
            tuple(
                take(p, start, size) if anywhere[p] == 0 else x for p, (_, x) in enumerate(views)
            ),
        )
        outputs, treedef = jax.tree.flatten(out)
        for k, o in enumerate(outputs):
            if jnp.issubdtype(o.dtype, jax.dtypes.prng_key):
                keys[k] = jax.random.key_impl(o)
                outputs[k] = jax.random.key_data(o)
        return jax.tree.unflatten(treedef, outputs)

    n_split = len(split)
    shapes = jax.eval_shape(lambda: run(0, chunk_size))
    buffers = jax.tree.map(
        lambda o: varying_like(
            o,
            place(
                np.dtype(o.dtype),
                o.shape[:n_split] + (n,) + o.shape[n_split + 1 :],
                mesh,
                [axes[level] for level in split] + [None] + trailing_spec(o, n_split + 1, mesh),
            ),
        ),
        shapes,
    )

    def write(buffers: Any, start: Any, size: int) -> Any:
        return jax.tree.map(
            lambda b, o: jax.lax.dynamic_update_slice_in_dim(b, o.astype(b.dtype), start, n_split),
            buffers,
            run(start, size),
        )

    buffers = jax.lax.fori_loop(
        0, full_chunks, lambda j, bufs: write(bufs, j * chunk_size, chunk_size), buffers
    )
    if tail:
        buffers = write(buffers, full_chunks * chunk_size, tail)
    outputs, treedef = jax.tree.flatten(buffers)
    weak = [o.weak_type for o in jax.tree.leaves(shapes)]
    for k, b in enumerate(outputs):
        b = _unsplit(b, levels, axes, local, mesh)
        if k in keys:
            b = jax.random.wrap_key_data(b, impl=keys[k])
        elif weak[k]:  # the loop carry lost it; unchunked results keep it
            b = weakly_typed(b)
        outputs[k] = b
    return jax.tree.unflatten(treedef, outputs)


def _unsplit(
    buffer: Any,
    levels: Levels,
    axes: Sequence[AxisNames | None],
    local: tuple[int, ...],
    mesh: Any,
) -> Any:
    """(shards..., local index, example) -> (level sizes..., example)."""
    split = [level for level in range(len(levels)) if axes[level] is not None]
    n_split = len(split)
    example = buffer.shape[n_split + 1 :]
    if n_split == 0:
        return jnp.reshape(buffer, local + example)
    shards = buffer.shape[:n_split]
    rest = trailing_spec(buffer, n_split + 1, mesh)
    x = place(
        buffer,
        shards + local + example,
        mesh,
        [axes[level] for level in split] + [None] * len(levels) + rest,
    )
    # Each shards dim goes before its level's local dim. Moving one behind an inner level's
    # local dim is a real transpose (of the outputs): only with two or more sharded levels.
    order: list[int] = []
    for level in range(len(levels)):
        if level in split:
            order.append(split.index(level))
        order.append(n_split + level)
    order += list(range(n_split + len(levels), x.ndim))
    if order != list(range(x.ndim)):
        x = jnp.transpose(x, order)
    sizes = tuple(
        size * (shards[split.index(level)] if level in split else 1)
        for level, size in enumerate(local)
    )
    return place(x, sizes + example, mesh, list(axes) + rest)
