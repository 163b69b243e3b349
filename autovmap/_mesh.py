"""Where a batch lives: mesh discovery (which mesh axes each vmap level is sharded over, as
far as the leaves show it) and placement (reshapes and fresh buffers laid out on the mesh).

How the sharding is found:

| the batch's sharding is...                                       | seen by                  |
| ---------------------------------------------------------------- | ------------------------ |
| on concrete arrays                                               | `leaf_layout`            |
| traced, on `Explicit` mesh axes (in the types)                   | `leaf_layout`            |
| declared by `spmd_axis_name` (traced, `Auto` mesh)               | `traced_mesh` + the names |
| hidden: traced on an `Auto` mesh, or no mesh in sight            | nobody: `hides_sharding` |
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from ._compat import pcast_varying, use_abstract_mesh
from ._errors import hide_from_tracebacks
from ._vmap import AxisNames, Levels, is_concrete, mapped_levels

hide_from_tracebacks(__file__)

# jax leaves these untyped; `Any` keeps mypy --strict quiet about calling them.
_P: Any = P
_with_sharding_constraint: Any = jax.lax.with_sharding_constraint
_full: Any = jax.lax.full
_lax_reshape: Any = jax.lax.reshape


def any_explicit(mesh: Any, axes: Sequence[AxisNames | None]) -> bool:
    kinds = dict(zip(mesh.axis_names, mesh.axis_types))
    return any(kinds[name] == jax.sharding.AxisType.Explicit for a in axes for name in a or ())


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


def level_names(
    spmd_axis_name: Sequence[str | tuple[str, ...] | None] | None, n_levels: int
) -> tuple[AxisNames | None, ...]:
    if spmd_axis_name is None:
        return (None,) * n_levels
    if len(spmd_axis_name) != n_levels:
        raise ValueError(f"spmd_axis_name has {len(spmd_axis_name)} entries, {n_levels} levels")
    return tuple(mesh_axes(entry) for entry in spmd_axis_name)


def mesh_axes(entry: Any) -> AxisNames | None:
    """A PartitionSpec entry as a tuple of mesh axis names, or None when not sharded."""
    if entry is None or entry is _P.UNCONSTRAINED:
        return None
    names = (entry,) if isinstance(entry, str) else tuple(entry)
    return names or None


def varying_like(like: Any, buffer: Any) -> Any:
    """`buffer` made to vary over the manual mesh axes `like` varies over. Inside `shard_map`
    the loop's outputs vary per device while fresh zeros do not, and a loop carry must keep
    its type."""
    manual = getattr(like, "manual_axis_type", None)
    varying = getattr(manual, "varying", None) or getattr(like, "vma", None)
    if not varying:
        return buffer
    return pcast_varying(buffer, tuple(varying))


def trailing_spec(x: Any, start: int, mesh: Any) -> list[Any]:
    """How `x`'s dims from `start` on are sharded, for `place` to keep them so: as its
    type says on an `Explicit` mesh; left to propagation on an `Auto` one."""
    ndim = len(np.shape(x))
    if mesh is None:
        return [None] * (ndim - start)
    if all(t == jax.sharding.AxisType.Explicit for t in mesh.axis_types):
        if not is_concrete(x):
            sharding = getattr(jax.typeof(x), "sharding", None)
        else:  # a concrete array, or the `ShapeDtypeStruct` of an output
            sharding = getattr(x, "sharding", None)
        spec = tuple(getattr(sharding, "spec", ()))
        return list((spec + (None,) * ndim)[start:ndim])
    return [_P.UNCONSTRAINED] * (ndim - start)


def place(x: Any, shape: tuple[int, ...], mesh: Any, spec: Sequence[Any]) -> Any:
    """Reshape `x` to `shape` (given a dtype: zeros of that shape), laid out on the mesh as
    `spec` says: the out sharding for `Explicit` axes (the type must say it), a sharding
    constraint for `Auto` ones (it pins what propagation would guess). Without a mesh, or
    with nothing sharded, just reshape. (Meshes mixing both kinds get neither.) `jax.lax`
    spells the out sharding the same way from jax 0.5.3 on; `jax.numpy` does not."""
    zeros = isinstance(x, np.dtype)
    names = [name for entry in spec for name in mesh_axes(entry) or ()]
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
        if out is None or not is_concrete(out):
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
    if use_abstract_mesh is None or not jax.sharding.get_abstract_mesh().empty:
        return _full(shape, 0, dtype, sharding=sharding)
    with use_abstract_mesh(abstract):
        return _full(shape, 0, dtype, sharding=sharding)


# --- where the batch lives -----------------------------------------------------------------


def leaf_layout(x: Any, squeezed: Sequence[int] = ()) -> tuple[Any, tuple[Any, ...]] | None:
    """(mesh, spec entries) of a leaf whose sharding can be seen, else None; with `squeezed`,
    the entries of the leaf once those (size-1) dims are squeezed away.

    Concrete arrays carry their sharding. Traced arrays carry it in their type only for
    `Explicit` mesh axes: `Auto` axes never appear in a traced spec."""
    if is_concrete(x):
        sharding = getattr(x, "sharding", None)
        if not (isinstance(sharding, NamedSharding) and sharding.num_devices > 1):
            return None
    else:
        sharding = getattr(jax.typeof(x), "sharding", None)
        if not (isinstance(sharding, NamedSharding) and not sharding.mesh.empty):
            return None
    spec = tuple(sharding.spec)
    if squeezed:
        spec = tuple(entry for dim, entry in enumerate(spec) if dim not in squeezed)
    return sharding.mesh, spec


def resolve_levels(
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
            dim = mapped_levels(levels, p).index(level)
            spec = specs[p] or ()
            entry = mesh_axes(spec[dim]) if dim < len(spec) else None
            if entry is not None and not used.intersection(entry):
                chosen = entry
                break
        if chosen is not None:
            used.update(chosen)
        result.append(chosen)
    return tuple(result)


def divisible(
    axes: tuple[AxisNames | None, ...], sizes: Sequence[int], mesh_shape: dict[str, int]
) -> tuple[AxisNames | None, ...]:
    """Drop the axes of levels they do not divide evenly (those levels are replicated)."""
    return tuple(
        a if a is not None and size % math.prod(mesh_shape[n] for n in a) == 0 else None
        for a, size in zip(axes, sizes)
    )


def visible_layout(
    layouts: Sequence[tuple[Any, tuple[Any, ...]] | None],
    levels: Levels,
    mapped_shape: Sequence[int],
) -> tuple[Any, tuple[AxisNames | None, ...]] | None:
    """(mesh, per-level mesh axes) when the leaves' layouts (`leaf_layout`) show a sharded
    batch, else None."""
    meshes = {id(layout[0]): layout[0] for layout in layouts if layout is not None}
    if not meshes:
        return None
    mesh = next(iter(meshes.values()))
    if any(layout is not None and layout[0] != mesh for layout in layouts):
        return None  # leaves on different meshes: let JAX say what it thinks of that
    axes = divisible(
        resolve_levels(levels, [None if layout is None else layout[1] for layout in layouts]),
        mapped_shape,
        dict(mesh.shape),
    )
    return (mesh, axes) if any(axes) else None


def traced_mesh(mapped: Sequence[Any]) -> Any:
    """The mesh of the first traced leaf that has one (an abstract mesh: axis names, sizes,
    types), else the mesh set by `jax.set_mesh`, else None. Under `jax.jit`, arguments
    committed to a mesh keep it in their type even when the mesh is `Auto` and the spec
    says nothing; arguments placed by `jit(in_shardings=...)` do not."""
    if all(map(is_concrete, mapped)):
        return None
    for x in mapped:
        if not is_concrete(x):
            sharding = getattr(jax.typeof(x), "sharding", None)
            if isinstance(sharding, NamedSharding) and not sharding.mesh.empty:
                return sharding.mesh
    context = jax.sharding.get_abstract_mesh()
    return None if context.empty else context


def hides_sharding(mesh: Any) -> bool:
    """Some `Auto` axis of size > 1: a traced spec may not show the batch's sharding."""
    types = dict(zip(mesh.axis_names, mesh.axis_types))
    return any(
        size > 1 and types[name] == jax.sharding.AxisType.Auto for name, size in mesh.shape.items()
    )
