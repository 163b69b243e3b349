"""Map a per-example function over the batch: nested `jax.vmap`, or a loop over chunks that
stays on each device's own shard of the batch.

The one entry point is `map_batch`. It knows nothing of arguments or plans: it takes the mapped
leaves, the `in_axes` (0 or None) of each leaf at each vmap level, and the options, and returns
the outputs with one leading dim per level.

With `chunk_size`, a sharded batch is chunked *per shard*: each device loops over its own
examples, `chunk_size` at a time, and the output keeps the batch's sharding. How the sharding
is found decides the mechanism:

| the batch's sharding is...                                       | mechanism                |
| ---------------------------------------------------------------- | ------------------------ |
| visible: concrete arrays, or traced on `Explicit` mesh axes      | split each sharded level |
| declared by `spmd_axis_name` (traced, `Auto` mesh)               | split each sharded level |
| hidden: traced, on an `Auto` mesh or none in sight, many devices | `custom_partitioning`    |
| absent: concrete on one device; traced on a one-device machine   | the loop over the batch  |

"Split" views a sharded level of size `n` as `(shards, n // shards)` and loops over the
local examples with the shards vmapped inside the loop: only reshapes, `vmap` and a loop, so
every transformation works. `custom_partitioning` hands XLA's partitioner a callback that
returns the loop for the shard it was given; it covers the primal only (see `_partitioned`).

Every route runs the same loop (`_chunk_loop`) on a block of examples: the whole batch, or one
device's shard of it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import jax.core
import jax.extend.core
import jax.numpy as jnp
import numpy as np
from jax.experimental.custom_partitioning import (
    ArrayMapping,
    SdyShardingRule,
    custom_partitioning,
)
from jax.sharding import NamedSharding, PartitionSpec as P

from ._errors import hide_from_tracebacks

hide_from_tracebacks(__file__)

AxisNames = tuple[str, ...]  # the mesh axes one batch dim is sharded over (outermost first)
Levels = Sequence[Sequence[int | None]]  # per vmap level, the in_axes (0 or None) of each leaf

# jax leaves these untyped; `Any` keeps mypy --strict quiet about calling them.
_P: Any = P
_ShapeDtypeStruct: Any = jax.ShapeDtypeStruct
_with_sharding_constraint: Any = jax.lax.with_sharding_constraint
_custom_partitioning: Any = custom_partitioning
_ArrayMapping: Any = ArrayMapping
_full: Any = jax.lax.full
_lax_reshape: Any = jax.lax.reshape
# jax 0.12 merged `ClosedJaxpr` into `Jaxpr` (kept as an alias its stubs do not export)
_Jaxpr: Any = jax.extend.core.Jaxpr
_ClosedJaxpr: Any = getattr(jax.extend.core, "ClosedJaxpr", _Jaxpr)

# The split route keeps batch dims on `Explicit` axes through reshapes, gathers and vmaps;
# jax 0.5 types lose the sharding along the way (its `jnp.reshape` has no `out_sharding` yet,
# the mark of the release that fixed this), so there Explicit batches take the plain loop.
_EXPLICIT_SPLIT = "out_sharding" in inspect.signature(jnp.reshape).parameters


def _any_explicit(mesh: Any, axes: Sequence[AxisNames | None]) -> bool:
    kinds = dict(zip(mesh.axis_names, mesh.axis_types))
    return any(kinds[name] == jax.sharding.AxisType.Explicit for a in axes for name in a or ())


def map_batch(
    per_example: Callable[..., Any],
    mapped: Sequence[Any],
    levels: Levels,
    mapped_shape: Sequence[int],
    *,
    chunk_size: int | None = None,
    axis_name: Hashable | None = None,
    spmd_axis_name: Sequence[str | tuple[str, ...] | None] | None = None,
) -> Any:
    """Evaluate `per_example` on every example of the batch.

    Args:
        per_example: called with one example of each mapped leaf (the leaf without its batch
            dims); leaves that are not mapped are its business (closed over).
        mapped: the mapped leaves. Leaf `p` has one leading batch dim per level at which it is
            mapped (`levels[l][p] == 0`), in level order, and no other batch dims.
        levels: per `jax.vmap` level, outermost first, the `in_axes` (0 or None) of each leaf.
        mapped_shape: the size of each level.
        chunk_size: evaluate at most this many examples at a time *per device*: the batch is
            looped over in chunks, on each device over its own shard only (`_chunked`).
        axis_name: bind this name to the whole batch, so that collectives such as
            `jax.lax.pmean(x, axis_name)` inside `per_example` reduce over every example.
            Several levels are merged into one vmap level for this, because JAX binds one
            name to one vmap level (see `_merged_vmap`). Cannot be combined with `chunk_size`.
        spmd_axis_name: per level, the mesh axis (or axes) that level's batch dim is sharded
            over, passed to `jax.vmap(spmd_axis_name=...)`. Under `jax.jit` on an `Auto` mesh
            it also tells `chunk_size` where the shards are.

    Returns:
        The outputs of `per_example`, each leaf with `mapped_shape` prepended.
    """
    if len(levels) != len(mapped_shape):
        raise ValueError(f"{len(levels)} levels but mapped_shape {tuple(mapped_shape)}")
    spmd = _level_names(spmd_axis_name, len(levels))
    if axis_name is not None and chunk_size is not None:
        # A collective needs every example of the batch in one vmap; a chunked loop only
        # ever holds one chunk, so the collective would silently reduce over that chunk.
        raise ValueError(
            "`axis_name` and `chunk_size` cannot be combined: a collective over the batch "
            "needs every example at once, and chunking evaluates a chunk at a time."
        )
    if not levels:  # one example: still bind the name, so the function runs unchanged
        if axis_name is None:
            return per_example(*mapped)
        one = jax.vmap(per_example, in_axes=None, axis_size=1, axis_name=axis_name)(*mapped)
        return jax.tree.map(lambda o: o[0], one)
    if axis_name is not None:
        return _named(per_example, mapped, levels, mapped_shape, axis_name, spmd)
    if chunk_size is None or math.prod(mapped_shape) <= chunk_size:
        return _nested_vmap(per_example, mapped, levels, spmd)
    return _chunked(per_example, mapped, levels, mapped_shape, chunk_size, spmd)


def spmd_levels(
    spmd_axis_name: str | tuple[str, ...] | Any | None, batch_shape: tuple[int, ...]
) -> tuple[str | tuple[str, ...] | None, ...] | None:
    """The user's `spmd_axis_name` as `map_batch` takes it: one entry per vmap level.

    A mesh axis name, or a tuple of them, means what it means to `jax.vmap`: the mesh axes
    the batch is sharded over, here the *leading* batch dim (the one `P(name)` shards). A
    `PartitionSpec` gives one entry per leading batch dim, as for an array's sharding.
    Levels are the batch dims of size other than 1 (a plan whose levels were not merged);
    a size-1 dim is never sharded, so its entry is dropped.
    """
    if spmd_axis_name is None:
        return None
    if isinstance(spmd_axis_name, P):
        entries = tuple(spmd_axis_name)
    else:
        entries = (spmd_axis_name,)
    if len(entries) > len(batch_shape):
        raise ValueError(
            f"spmd_axis_name {spmd_axis_name!r} names {len(entries)} batch dims, "
            f"but the batch shape is {batch_shape}"
        )
    entries += (None,) * (len(batch_shape) - len(entries))
    return tuple(entry for entry, size in zip(entries, batch_shape) if size != 1)


# --- helpers on levels ---------------------------------------------------------------------


def _level_names(
    spmd_axis_name: Sequence[str | tuple[str, ...] | None] | None, n_levels: int
) -> tuple[AxisNames | None, ...]:
    if spmd_axis_name is None:
        return (None,) * n_levels
    if len(spmd_axis_name) != n_levels:
        raise ValueError(f"spmd_axis_name has {len(spmd_axis_name)} entries, {n_levels} levels")
    return tuple(_axes(entry) for entry in spmd_axis_name)


def _axes(entry: Any) -> AxisNames | None:
    """A PartitionSpec entry as a tuple of mesh axis names, or None when not sharded."""
    if entry is None or entry is _P.UNCONSTRAINED:
        return None
    names = (entry,) if isinstance(entry, str) else tuple(entry)
    return names or None


def _vmap_name(axes: AxisNames | None) -> str | tuple[str, ...] | None:
    return None if axes is None else axes[0] if len(axes) == 1 else axes


def _mapped_levels(levels: Levels, p: int) -> list[int]:
    """The levels at which leaf `p` is mapped: its leading batch dims, in order."""
    return [level for level, in_axes in enumerate(levels) if in_axes[p] == 0]


def _level_sizes(leaves: Sequence[Any], levels: Levels) -> tuple[int, ...]:
    """Each level's size, read off the leaves (every level maps at least one of them)."""
    sizes = []
    for level, in_axes in enumerate(levels):
        p = in_axes.index(0)
        sizes.append(np.shape(leaves[p])[_mapped_levels(levels, p).index(level)])
    return tuple(sizes)


def _example_ndim(leaf: Any, levels: Levels, p: int) -> int:
    return np.ndim(leaf) - len(_mapped_levels(levels, p))


# --- plain vmap ----------------------------------------------------------------------------


def _nested_vmap(
    fn: Callable[..., Any],
    mapped: Sequence[Any],
    levels: Levels,
    spmd: Sequence[AxisNames | None],
    axis_name: Hashable | None = None,
) -> Any:
    """One `jax.vmap` per level, exactly as written by hand."""
    for level in reversed(range(len(levels))):
        fn = jax.vmap(
            fn,
            in_axes=tuple(levels[level]),
            axis_name=axis_name,  # only ever given with a single level
            spmd_axis_name=_vmap_name(spmd[level]),
        )
    return fn(*mapped)


def _named(
    fn: Callable[..., Any],
    mapped: Sequence[Any],
    levels: Levels,
    mapped_shape: Sequence[int],
    axis_name: Hashable,
    spmd: Sequence[AxisNames | None],
) -> Any:
    """The batch as one vmap level named `axis_name` (see `_merged_vmap`)."""
    layouts = [_leaf_layout(x) for x in mapped]
    axes = _resolve_levels(levels, [None if layout is None else layout[1] for layout in layouts])
    mesh = next((layout[0] for layout in layouts if layout is not None), None)
    types: dict[str, Any] = {} if mesh is None else dict(zip(mesh.axis_names, mesh.axis_types))
    if any(types.get(name) == jax.sharding.AxisType.Explicit for a in axes for name in a or ()):
        # JAX 0.10's vmap cannot batch a collective over a dim sharded on an Explicit axis
        # (an internal assertion fails); turning the axes Auto here would clash with the
        # Explicit arrays `fn` closes over, so the user must do it around the whole call.
        raise NotImplementedError(
            "`axis_name` on a batch sharded over Explicit mesh axes: JAX cannot yet batch a "
            "collective over such a dim. Call the function inside "
            "`jax.sharding.auto_axes(...)`, or use a mesh with `AxisType.Auto` axes."
        )
    if len(levels) == 1:
        return _nested_vmap(fn, mapped, levels, spmd, axis_name)
    return _merged_vmap(fn, mapped, levels, mapped_shape, axis_name, spmd)


def _merged_vmap(
    fn: Callable[..., Any],
    mapped: Sequence[Any],
    levels: Levels,
    mapped_shape: Sequence[int],
    axis_name: Hashable,
    spmd: Sequence[AxisNames | None],
) -> Any:
    """All levels as one vmap level named `axis_name`, outputs reshaped back to the levels.

    JAX binds an axis name to exactly one vmap level: the same name at two nested levels is
    shadowed by the inner one (a `pmean` then reduces over the inner level only), and a vmap
    level named by a tuple is one name, not several. So the only way for one name to cover
    several batch dims is one level over their product. A leaf mapped at every level is
    reshaped (free); a leaf broadcast along some levels must be expanded along them, which
    copies it: the one case where this library copies to broadcast, and only with
    `axis_name`.
    """
    n = math.prod(mapped_shape)
    flat = []
    for p, leaf in enumerate(mapped):
        mine = _mapped_levels(levels, p)
        example = tuple(np.shape(leaf)[len(mine) :])
        if len(mine) < len(levels):
            with_ones = tuple(
                mapped_shape[level] if level in mine else 1 for level in range(len(levels))
            )
            leaf = jnp.broadcast_to(
                jnp.reshape(leaf, with_ones + example), tuple(mapped_shape) + example
            )
        flat.append(jnp.reshape(leaf, (n,) + example))
    names = tuple(name for axes in spmd if axes is not None for name in axes)
    out = jax.vmap(fn, axis_name=axis_name, spmd_axis_name=_vmap_name(names or None))(*flat)
    return jax.tree.map(lambda o: jnp.reshape(o, tuple(mapped_shape) + o.shape[1:]), out)


# --- chunks --------------------------------------------------------------------------------


def _chunked(
    fn: Callable[..., Any],
    mapped: Sequence[Any],
    levels: Levels,
    mapped_shape: Sequence[int],
    chunk_size: int,
    spmd: Sequence[AxisNames | None],
) -> Any:
    """Pick the route for a chunked batch (see the module docstring)."""
    layout = _visible_layout(mapped, levels, mapped_shape)
    mesh = _traced_mesh(mapped)
    declared = {name for axes in spmd if axes is not None for name in axes}
    if layout is None and mesh is not None and declared and declared <= set(mesh.axis_names):
        axes = _divisible(tuple(spmd), mapped_shape, dict(mesh.shape))
        layout = (mesh, axes) if any(axes) else None
    if layout is not None and not _EXPLICIT_SPLIT and _any_explicit(*layout):
        layout = None  # jax < 0.6: explicit sharding too young for the split (see below)
    if layout is not None:
        mesh, axes = layout
        shards = [1 if a is None else math.prod(mesh.shape[name] for name in a) for a in axes]
        if math.prod(mapped_shape) <= chunk_size * math.prod(shards):
            # Each device holds at most one chunk: hand-written vmap is that program.
            return _nested_vmap(fn, mapped, levels, spmd)
        return _chunk_loop(fn, mapped, levels, chunk_size, axes, mesh)
    traced = any(isinstance(x, jax.core.Tracer) for x in mapped)
    if traced and (_hides_sharding(mesh) if mesh is not None else jax.device_count() > 1):
        # The batch may be sharded where tracing cannot see it: let the partitioner say.
        # (An `Auto` mesh; or no mesh in sight, as with `jit(in_shardings=...)`, on a
        # machine with several devices. On one device the op lowers to the plain loop.)
        hoisted = _hoist(fn, mapped, levels)
        if hoisted is not None:
            # What `fn` closes over travels as operands, mapped at no level.
            example_fn, consts = hoisted
            all_levels = tuple((None,) * len(consts) + tuple(in_axes) for in_axes in levels)
            return _partitioned(example_fn, consts + list(mapped), all_levels, chunk_size)
    return _chunk_loop(fn, mapped, levels, chunk_size, (None,) * len(levels), None)


def _split_shape(
    shape: tuple[int, ...],
    levels: Levels,
    p: int,
    axes: Sequence[AxisNames | None],
    shards: Sequence[int],
) -> tuple[int, ...]:
    """Leaf `p`'s shape with each sharded level's dim `n` split into `(shards, n // shards)`:
    a free reshape, since a device holds a contiguous block of each sharded dim."""
    mine = _mapped_levels(levels, p)
    out: list[int] = []
    for dim, level in enumerate(mine):
        if axes[level] is None:
            out.append(shape[dim])
        else:
            out += [shards[level], shape[dim] // shards[level]]
    return tuple(out) + tuple(shape[len(mine) :])


def _split_spec(levels: Levels, p: int, axes: Sequence[AxisNames | None]) -> list[Any]:
    spec: list[Any] = []
    for level in _mapped_levels(levels, p):
        spec += [None] if axes[level] is None else [axes[level], None]
    return spec


def _dim_positions(levels: Levels, axes: Sequence[AxisNames | None], p: int) -> dict[int, int]:
    """Where leaf `p`'s local dim of each level it is mapped at lies, once split."""
    positions: dict[int, int] = {}
    at = 0
    for level in _mapped_levels(levels, p):
        at += axes[level] is not None  # the shards dim comes first
        positions[level] = at
        at += 1
    return positions


def _chunk_loop(
    fn: Callable[..., Any],
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
    local = tuple(size // d for size, d in zip(_level_sizes(leaves, levels), shards))
    n = math.prod(local)
    if n <= chunk_size:  # one chunk per device: the nested vmap it would be anyway
        return _nested_vmap(fn, leaves, levels, (None,) * n_levels)
    full_chunks, tail = divmod(n, chunk_size)
    anywhere = tuple(0 if _mapped_levels(levels, p) else None for p in range(len(leaves)))

    def view(p: int, x: Any) -> tuple[bool, Any]:
        """(sliceable, array) for leaf p. A leaf mapped at every level whose only sharded
        level is the outermost has its local examples contiguous: flattened to
        (shards?, n, ...), its chunks are slices. Any other leaf is gathered from."""
        mine = _mapped_levels(levels, p)
        if len(mine) == n_levels and not any(axes[level] for level in mine[1:]):
            lead = [axes[0]] if axes[0] is not None else []
            spec = lead + [None] + _trailing_spec(x, len(mine), mesh)
            flat = tuple(shards[:1] if lead else ()) + (n,) + np.shape(x)[len(mine) :]
            return True, _place(x, flat, mesh, spec)
        return False, jnp.asarray(x)

    views = [view(p, x) if anywhere[p] == 0 else (False, x) for p, x in enumerate(leaves)]

    def take(p: int, start: Any, size: int) -> Any:
        """Examples start..start+size of leaf p: (its shards dims..., size, example dims)."""
        sliceable, x = views[p]
        mine = _mapped_levels(levels, p)
        n_shards = sum(axes[level] is not None for level in mine)
        if sliceable:
            return jax.lax.dynamic_slice_in_dim(x, start, size, axis=n_shards)
        x = _place(  # split inside the loop body (see the docstring)
            x,
            _split_shape(np.shape(x), levels, p, axes, shards),
            mesh,
            _split_spec(levels, p, axes) + _trailing_spec(x, len(mine), mesh),
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

    def run(start: Any, size: int) -> Any:
        body = jax.vmap(fn, in_axes=anywhere)  # over the chunk
        for level in reversed(split):  # over the shards, inside the loop
            auto = all(kinds[name] == jax.sharding.AxisType.Auto for name in axes[level] or ())
            body = jax.vmap(
                body,
                in_axes=tuple(0 if in_axes == 0 else None for in_axes in levels[level]),
                # Explicit axes are in the types already, and jax < 0.7 refuses both at once
                spmd_axis_name=_vmap_name(axes[level]) if auto else None,
            )
        return body(
            *(take(p, start, size) if anywhere[p] == 0 else x for p, (_, x) in enumerate(views))
        )

    n_split = len(split)
    buffers = jax.tree.map(
        lambda o: _varying_like(
            o,
            _place(
                np.dtype(o.dtype),
                o.shape[:n_split] + (n,) + o.shape[n_split + 1 :],
                mesh,
                [axes[level] for level in split] + [None] + _trailing_spec(o, n_split + 1, mesh),
            ),
        ),
        jax.eval_shape(lambda: run(0, chunk_size)),
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
    return jax.tree.map(lambda b: _unsplit(b, levels, axes, local, mesh), buffers)


def _varying_like(like: Any, buffer: Any) -> Any:
    """`buffer` made to vary over the manual mesh axes `like` varies over. Inside `shard_map`
    the loop's outputs vary per device while fresh zeros do not, and a loop carry must keep
    its type."""
    manual = getattr(like, "manual_axis_type", None)
    varying = getattr(manual, "varying", None) or getattr(like, "vma", None)
    if not varying:
        return buffer
    pcast: Any = getattr(jax.lax, "pcast", None)
    if pcast is not None:
        return pcast(buffer, tuple(varying), to="varying")
    pvary: Any = getattr(jax.lax, "pvary")  # noqa: B009 - what older jax calls it
    return pvary(buffer, tuple(varying))


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
    rest = _trailing_spec(buffer, n_split + 1, mesh)
    x = _place(
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
    return _place(x, sizes + example, mesh, list(axes) + rest)


def _trailing_spec(x: Any, start: int, mesh: Any) -> list[Any]:
    """How `x`'s dims from `start` on are sharded, for `_place` to keep them so: as its
    type says on an `Explicit` mesh; left to propagation on an `Auto` one."""
    ndim = len(np.shape(x))
    if mesh is None:
        return [None] * (ndim - start)
    if all(t == jax.sharding.AxisType.Explicit for t in mesh.axis_types):
        if isinstance(x, jax.core.Tracer):
            sharding = getattr(jax.typeof(x), "sharding", None)
        else:  # a concrete array, or the `ShapeDtypeStruct` of an output
            sharding = getattr(x, "sharding", None)
        spec = tuple(getattr(sharding, "spec", ()))
        return list((spec + (None,) * ndim)[start:ndim])
    return [_P.UNCONSTRAINED] * (ndim - start)


def _place(x: Any, shape: tuple[int, ...], mesh: Any, spec: Sequence[Any]) -> Any:
    """Reshape `x` to `shape` (given a dtype: zeros of that shape), laid out on the mesh as
    `spec` says: the out sharding for `Explicit` axes (the type must say it), a sharding
    constraint for `Auto` ones (it pins what propagation would guess). Without a mesh, or
    with nothing sharded, just reshape. (Meshes mixing both kinds get neither.) `jax.lax`
    spells the out sharding the same way from jax 0.5.3 on; `jax.numpy` does not."""
    zeros = isinstance(x, np.dtype)
    names = [name for entry in spec for name in _axes(entry) or ()]
    if mesh is None or not names:
        return jnp.zeros(shape, x) if zeros else jnp.reshape(x, shape)
    sharding = NamedSharding(mesh, _P(*spec))
    kinds = {dict(zip(mesh.axis_names, mesh.axis_types))[name] for name in names}
    explicit = sharding if kinds == {jax.sharding.AxisType.Explicit} else None
    if zeros:
        out = None
        if not isinstance(mesh, jax.sharding.AbstractMesh):
            # eagerly, on a concrete mesh, made where it belongs rather than on one device first
            out = _full(shape, 0, x, sharding=sharding)
        if out is None or isinstance(out, jax.core.Tracer):
            out = _traced_zeros(shape, x, explicit)
    else:
        out = _lax_reshape(x, shape, out_sharding=explicit)
    if kinds == {jax.sharding.AxisType.Auto}:
        out = _with_sharding_constraint(out, sharding)
    return out


def _traced_zeros(shape: tuple[int, ...], dtype: np.dtype, sharding: Any) -> Any:
    """Zeros under tracing, with `sharding` (on `Explicit` axes, or None) in their type.

    Newer jax (0.12) ignores a concrete mesh's sharding in `jax.lax.full` under tracing, and
    types an op whose operands carry no mesh (a constant fill value) by the context mesh
    alone, dropping its `out_sharding`: so the fill runs under the sharding's abstract mesh,
    where no context mesh is set."""
    if sharding is None:
        return _full(shape, 0, dtype)
    abstract = sharding.mesh.abstract_mesh
    sharding = NamedSharding(abstract, sharding.spec)
    use_abstract_mesh: Any = getattr(jax.sharding, "use_abstract_mesh", None)
    if use_abstract_mesh is None or not jax.sharding.get_abstract_mesh().empty:
        return _full(shape, 0, dtype, sharding=sharding)
    with use_abstract_mesh(abstract):
        return _full(shape, 0, dtype, sharding=sharding)


def _hoist(
    fn: Callable[..., Any], mapped: Sequence[Any], levels: Levels
) -> tuple[Callable[..., Any], list[Any]] | None:
    """`fn` traced once on one example, as a function of (closed-over values, example).

    The user's Python runs here only (run-time checks included); the op evaluates the
    jaxpr, so the closed-over values travel as ordinary operands. Only for `Auto` meshes:
    under `Explicit` ones a jaxpr traced outside a sharding context cannot be replayed
    inside another (its ops record the mesh they were traced under).

    None when `fn` places values on a mesh itself (a sharding constraint, a `shard_map`),
    which cannot run inside the op, whose body sees every mesh axis as manual; and None when
    it has effects (`jax.debug.print`, callbacks), with which XLA's partitioner crashes."""
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*_example_avals(mapped, levels))
    if closed.jaxpr.effects or _uses_mesh(closed.jaxpr):
        return None
    out_tree = jax.tree.structure(out_shape)
    n_consts = len(closed.consts)

    def example_fn(*operands: Any) -> Any:
        flat = jax.core.eval_jaxpr(closed.jaxpr, operands[:n_consts], *operands[n_consts:])
        return jax.tree.unflatten(out_tree, flat)

    return example_fn, list(closed.consts)


def _example_avals(leaves: Sequence[Any], levels: Levels) -> list[Any]:
    """One example of each leaf, as a shape and dtype."""
    return [
        _ShapeDtypeStruct(
            np.shape(x)[len(_mapped_levels(levels, p)) :],
            jnp.result_type(x),
            weak_type=getattr(jax.typeof(x), "weak_type", False),
        )
        for p, x in enumerate(leaves)
    ]


def _uses_mesh(jaxpr: Any) -> bool:
    """Whether an equation of `jaxpr` (or of a jaxpr inside one) names a sharding or mesh."""
    meshy = (jax.sharding.Sharding, jax.sharding.AbstractMesh, jax.sharding.Mesh)
    for eqn in jaxpr.eqns:
        for value in eqn.params.values():
            for item in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(item, meshy):
                    return True
                if isinstance(item, _ClosedJaxpr) and _uses_mesh(item.jaxpr):
                    return True
                if isinstance(item, _Jaxpr) and _uses_mesh(item):
                    return True
    return False


# --- where the batch lives -----------------------------------------------------------------


def _is_concrete(x: Any) -> bool:
    return isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer)


def _leaf_layout(x: Any) -> tuple[Any, tuple[Any, ...]] | None:
    """(mesh, spec entries) of a leaf whose sharding can be seen, else None.

    Concrete arrays carry their sharding. Traced arrays carry it in their type only for
    `Explicit` mesh axes: `Auto` axes never appear in a traced spec."""
    if _is_concrete(x):
        sharding = x.sharding
        if isinstance(sharding, NamedSharding) and sharding.num_devices > 1:
            return sharding.mesh, tuple(sharding.spec)
        return None
    if isinstance(x, jax.core.Tracer):
        sharding = getattr(jax.typeof(x), "sharding", None)
        if isinstance(sharding, NamedSharding) and not sharding.mesh.empty:
            return sharding.mesh, tuple(sharding.spec)
    return None


def _resolve_levels(
    levels: Levels, specs: Sequence[tuple[Any, ...] | None]
) -> tuple[AxisNames | None, ...]:
    """The mesh axes of each level: those of the first leaf sharded along it.

    A leaf replicated along a level where another is sharded is sliced to its shard, which
    needs no communication. Two leaves sharded differently along one level cannot both
    stay put: the first wins and the other is resharded (as XLA would do for hand-written
    vmap). A mesh axis already taken by an outer level is not used twice."""
    used: set[str] = set()
    result: list[AxisNames | None] = []
    for level, in_axes in enumerate(levels):
        chosen = None
        for p, axis in enumerate(in_axes):
            if axis != 0 or specs[p] is None:
                continue
            dim = _mapped_levels(levels, p).index(level)
            spec = specs[p] or ()
            entry = _axes(spec[dim]) if dim < len(spec) else None
            if entry is not None and not used.intersection(entry):
                chosen = entry
                break
        if chosen is not None:
            used.update(chosen)
        result.append(chosen)
    return tuple(result)


def _divisible(
    axes: tuple[AxisNames | None, ...], sizes: Sequence[int], mesh_shape: dict[str, int]
) -> tuple[AxisNames | None, ...]:
    """Drop the axes of levels they do not divide evenly (those levels are replicated)."""
    return tuple(
        a if a is not None and size % math.prod(mesh_shape[n] for n in a) == 0 else None
        for a, size in zip(axes, sizes)
    )


def _visible_layout(
    mapped: Sequence[Any], levels: Levels, mapped_shape: Sequence[int]
) -> tuple[Any, tuple[AxisNames | None, ...]] | None:
    """(mesh, per-level mesh axes) when the leaves show a sharded batch, else None."""
    layouts = [_leaf_layout(x) for x in mapped]
    meshes = {id(layout[0]): layout[0] for layout in layouts if layout is not None}
    if not meshes:
        return None
    mesh = next(iter(meshes.values()))
    if any(layout is not None and layout[0] != mesh for layout in layouts):
        return None  # leaves on different meshes: let JAX say what it thinks of that
    axes = _divisible(
        _resolve_levels(levels, [None if layout is None else layout[1] for layout in layouts]),
        mapped_shape,
        dict(mesh.shape),
    )
    return (mesh, axes) if any(axes) else None


def _traced_mesh(mapped: Sequence[Any]) -> Any:
    """The mesh of the first traced leaf that has one (an abstract mesh: axis names, sizes,
    types), else the mesh set by `jax.set_mesh`, else None. Under `jax.jit`, arguments
    committed to a mesh keep it in their type even when the mesh is `Auto` and the spec
    says nothing; arguments placed by `jit(in_shardings=...)` do not."""
    if not any(isinstance(x, jax.core.Tracer) for x in mapped):
        return None
    for x in mapped:
        if isinstance(x, jax.core.Tracer):
            sharding = getattr(jax.typeof(x), "sharding", None)
            if isinstance(sharding, NamedSharding) and not sharding.mesh.empty:
                return sharding.mesh
    context = jax.sharding.get_abstract_mesh()
    return None if context.empty else context


def _hides_sharding(mesh: Any) -> bool:
    """Some `Auto` axis of size > 1: a traced spec may not show the batch's sharding."""
    types = dict(zip(mesh.axis_names, mesh.axis_types))
    return any(
        size > 1 and types[name] == jax.sharding.AxisType.Auto for name, size in mesh.shape.items()
    )


# --- the per-shard routes ------------------------------------------------------------------


def _partitioned(
    example_fn: Callable[..., Any], operands: list[Any], levels: Levels, chunk_size: int
) -> Any:
    """Chunk per shard where the sharding is only known to XLA's partitioner (an `Auto` mesh
    under `jax.jit`): a `custom_partitioning` op whose `partition` callback reads the shardings
    the partitioner chose and returns the per-shard loop.

    `custom_partitioning` has no differentiation or batching rules, so `jax.vmap` of the op
    re-enters this function with one more level (still per shard), and differentiation
    falls back to the whole-batch loop, which is correct but lets XLA gather the batch.
    Fully transformable alternatives: an `Explicit` mesh, or `spmd_axis_name`.
    `example_fn` must close over no tracer (see `_hoist`).
    """

    def whole(*ops: Any) -> Any:  # on the whole batch, or (as lowered) on one shard
        return _chunk_loop(example_fn, ops, levels, chunk_size, (None,) * len(levels), None)

    op = _custom_partitioning(whole)

    def level_axes(mesh: Any, arg_shapes: Any) -> tuple[AxisNames | None, ...]:
        specs = [_spec_of(shape.sharding) for shape in arg_shapes]
        sizes = _level_sizes(arg_shapes, levels)  # np.shape reads `.shape`
        return _divisible(_resolve_levels(levels, specs), sizes, dict(mesh.shape))

    def partition(mesh: Any, arg_shapes: Any, result_shape: Any) -> Any:
        axes = level_axes(mesh, arg_shapes)
        arg_shardings = tuple(
            NamedSharding(mesh, _P(*(axes[level] for level in _mapped_levels(levels, p))))
            for p in range(len(arg_shapes))
        )
        out_sharding = NamedSharding(mesh, _P(*axes))
        return mesh, whole, jax.tree.map(lambda _: out_sharding, result_shape), arg_shardings

    def infer(mesh: Any, arg_shapes: Any, result_shape: Any) -> Any:
        """The outputs' sharding from the operands', for the GSPMD partitioner (jax < 0.7
        by default); Shardy reads the sharding rule instead."""
        out_sharding = NamedSharding(mesh, _P(*level_axes(mesh, arg_shapes)))
        return jax.tree.map(lambda _: out_sharding, result_shape)

    op.def_partition(
        partition,
        infer_sharding_from_operands=infer,
        sharding_rule=_sharding_rule(operands, levels, example_fn),
    )

    # Transformations of the op: see the docstring of `_partitioned`.
    batchable = jax.custom_batching.custom_vmap(lambda *ops: op(*ops))

    @batchable.def_vmap
    def _vmap_rule(axis_size: int, in_batched: Sequence[bool], *ops: Any) -> Any:
        del axis_size
        outer = tuple(0 if batched else None for batched in in_batched)
        out = _partitioned(example_fn, list(ops), (outer, *levels), chunk_size)
        return out, jax.tree.map(lambda _: True, out)

    differentiable = jax.custom_jvp(lambda *ops: batchable(*ops))

    @differentiable.defjvp
    def _jvp_rule(primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
        return jax.jvp(whole, tuple(primals), tuple(tangents))

    return differentiable(*operands)


def _spec_of(sharding: Any) -> tuple[Any, ...] | None:
    return tuple(sharding.spec) if isinstance(sharding, NamedSharding) else None


def _sharding_rule(
    operands: Sequence[Any], levels: Levels, example_fn: Callable[..., Any]
) -> SdyShardingRule:
    """Shardy's view of the op: one factor per level, shared by every operand mapped there
    and by every output; every example dim its own factor that must stay replicated."""
    replicated: list[str] = []

    def mapping(level_factors: list[str], example_ndim: int, tag: str) -> Any:
        example = [f"{tag}_{d}" for d in range(example_ndim)]
        replicated.extend(example)
        return _ArrayMapping(*level_factors, *example)

    operand_mappings = tuple(
        mapping(
            [f"level{level}" for level in _mapped_levels(levels, p)],
            _example_ndim(x, levels, p),
            f"in{p}",
        )
        for p, x in enumerate(operands)
    )
    examples = jax.tree.leaves(jax.eval_shape(example_fn, *_example_avals(operands, levels)))
    level_factors = [f"level{level}" for level in range(len(levels))]
    result_mappings = tuple(
        mapping(level_factors, len(o.shape), f"out{k}") for k, o in enumerate(examples)
    )
    if "need_replication_factors" not in inspect.signature(SdyShardingRule).parameters:
        return SdyShardingRule(operand_mappings, result_mappings)  # jax < 0.6: no such kind
    return SdyShardingRule(
        operand_mappings, result_mappings, need_replication_factors=tuple(replicated)
    )
