"""Run a call: the one executor of every `Route` (`execute`), and the squeezes and reshapes
between a call's ranked leaves and the route's levels (`run_plan`).

Leaves that are not mapped are closed over, never copied; every vmap comes from the one
builder, `_vmap.nested_vmap`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._arrays import all_arrays
from ._chunks import chunk_loop
from ._errors import hide_from_tracebacks
from ._mesh import leaf_layout, level_names
from ._partition import run_partitioned
from ._plan import RESHAPE_ONE_BY_ONE, Shape, VmapPlan
from ._route import Route, choose_route, route_for_levels
from ._vmap import Example, LeavesExample, Levels, mapped_levels, nested_vmap, on_one_device

hide_from_tracebacks(__file__)


def _reshape_all_impl(arrays: tuple[Any, ...], shapes: tuple[Shape, ...]) -> tuple[Any, ...]:
    return tuple(jnp.reshape(x, shape) for x, shape in zip(arrays, shapes))


_reshape_all_jitted = jax.jit(_reshape_all_impl, static_argnums=1)


def _reshape_all(arrays: Sequence[Any], shapes: Sequence[Shape]) -> list[Any]:
    """Concrete `arrays` reshaped to `shapes`, in as few dispatches as pays."""
    if len(arrays) <= RESHAPE_ONE_BY_ONE:
        return [jnp.reshape(x, shape) for x, shape in zip(arrays, shapes)]
    return list(_reshape_all_jitted(tuple(arrays), tuple(shapes)))


def _as_array(x: Any, squeeze: Shape) -> Any:
    """A ranked leaf as the function sees it: a JAX array, its size-1 batch dims squeezed."""
    if isinstance(x, jax.Array):
        return jax.lax.squeeze(x, squeeze) if squeeze else x
    if squeeze:  # a NumPy view: free, then converted once
        x = np.squeeze(np.asarray(x), squeeze)
    return jnp.asarray(x)


def execute(route: Route, example: Example, mapped: Sequence[Any]) -> Any:
    """Evaluate `example` on every example of the mapped leaves, as `route` says.

    Leaf `p` of `mapped` has one leading batch dim per level of `route.levels` at which it is
    mapped (for `merged`: per level before merging), in level order, and no other batch dims.
    Returns the outputs with `route.mapped_shape` prepended to each leaf."""
    kind, levels = route.kind, route.levels
    if kind == "call":
        return example(mapped)
    if kind == "named" and not levels:  # one example: still bind the name, as for a batch
        one = nested_vmap(((None,) * len(mapped),), None, route.axis_name, 1)(
            example, tuple(mapped)
        )
        return jax.tree.map(lambda o: o[0], one)
    if kind == "merged":
        assert route.merged_batch_shapes is not None and route.batch_ndims is not None
        shapes = [
            batch + x.shape[ndim:]
            for x, batch, ndim in zip(mapped, route.merged_batch_shapes, route.batch_ndims)
        ]
        return route.vmapped(example, tuple(_reshape_all(mapped, shapes)))
    if kind in ("nested", "named"):
        return route.vmapped(example, tuple(mapped))
    if kind == "named merged":
        return _named_merged(route, example, mapped)
    assert route.chunk_size is not None
    if kind == "chunks":
        return chunk_loop(example, mapped, levels, route.chunk_size, (None,) * len(levels), None)
    if kind == "shard chunks":
        assert route.shard_axes is not None
        return chunk_loop(example, mapped, levels, route.chunk_size, route.shard_axes, route.mesh)
    assert kind == "partitioned", kind
    return run_partitioned(example, mapped, levels, route.chunk_size)


def _named_merged(route: Route, example: Example, mapped: Sequence[Any]) -> Any:
    """All levels as one vmap level named `axis_name`, outputs reshaped back to the levels.

    JAX binds an axis name to exactly one vmap level: the same name at two nested levels is
    shadowed by the inner one (a `pmean` then reduces over the inner level only), and a vmap
    level named by a tuple is one name, not several. So the only way for one name to cover
    several batch dims is one level over their product. A leaf mapped at every level is
    reshaped (free); a leaf broadcast along some levels must be expanded along them, which
    copies it: the one case where this library copies to broadcast, and only with
    `axis_name`.
    """
    levels, mapped_shape = route.levels, route.mapped_shape
    n = math.prod(mapped_shape)
    flat = []
    for p, leaf in enumerate(mapped):
        mine = mapped_levels(levels, p)
        one = tuple(np.shape(leaf)[len(mine) :])
        if len(mine) < len(levels):
            with_ones = tuple(
                mapped_shape[level] if level in mine else 1 for level in range(len(levels))
            )
            leaf = jnp.broadcast_to(jnp.reshape(leaf, with_ones + one), mapped_shape + one)
        flat.append(jnp.reshape(leaf, (n,) + one))
    names = tuple(name for axes in route.spmd or () if axes is not None for name in axes)
    out = nested_vmap(((0,) * len(flat),), (names or None,), route.axis_name)(example, tuple(flat))
    return jax.tree.map(lambda o: jnp.reshape(o, mapped_shape + o.shape[1:]), out)


def run_plan(
    plan: VmapPlan,
    leaves: Sequence[Any],
    call: Callable[[list[Any]], Any],
    *,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    spmd_axis_name: Any = None,
) -> Any:
    """Evaluate `call` (ranked leaves of one example -> outputs) on every example of `plan`,
    by the route `choose_route` picks for these leaves and options (the one `plan()` shows)."""
    route = choose_route(
        plan, leaves, chunk_size=chunk_size, axis_name=axis_name, spmd_axis_name=spmd_axis_name
    )
    if any(plan.squeeze_axes) or not all_arrays(leaves):  # else each is as the function sees it
        leaves = [_as_array(x, axes) for x, axes in zip(leaves, plan.squeeze_axes)]
    mapped = leaves if len(plan.mapped) == len(leaves) else [leaves[i] for i in plan.mapped]
    out = execute(route, LeavesExample(call, leaves, plan.mapped), mapped)
    lead = route.mapped_shape
    if lead == plan.batch_shape:
        return out
    # unmapped size-1 dims, merged levels: the outputs get the batch shape back
    outputs, treedef = jax.tree_util.tree_flatten(out)
    shapes = [plan.batch_shape + jnp.shape(o)[len(lead) :] for o in outputs]
    if all(map(on_one_device, outputs)):
        outputs = _reshape_all(outputs, shapes)
    else:
        outputs = [jnp.reshape(o, shape) for o, shape in zip(outputs, shapes)]
    return jax.tree_util.tree_unflatten(treedef, outputs)


def run_named_unbatched(call: Callable[[], Any], axis_name: str | None) -> Any:
    """A call with no batch dims, with `axis_name` still bound (to a batch of one), so that the
    function's collectives work unchanged."""
    return execute(choose_route(None, (), axis_name=axis_name), Example(call), [])


def map_batch(
    per_example: Callable[..., Any],
    mapped: Sequence[Any],
    levels: Levels,
    mapped_shape: Sequence[int],
    *,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    spmd_axis_name: Sequence[str | tuple[str, ...] | None] | None = None,
) -> Any:
    """`per_example` (called with one example of each mapped leaf) over the batch of `mapped`,
    given the levels directly rather than a plan: the route and executor of a call, for tests.
    `spmd_axis_name` has one entry per level."""
    if len(levels) != len(mapped_shape):
        raise ValueError(f"{len(levels)} levels but mapped_shape {tuple(mapped_shape)}")
    route = route_for_levels(
        levels,
        mapped_shape,
        mapped,
        [leaf_layout(x) for x in mapped],
        chunk_size=chunk_size,
        axis_name=axis_name,
        spmd=level_names(spmd_axis_name, len(levels)),
    )
    return execute(route, Example(per_example), mapped)
