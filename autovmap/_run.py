"""Run a `VmapPlan`: squeeze broadcast dims, nest (or merge) `jax.vmap`, reshape; chunks and
named batches go to `_shard.map_batch`.

The nested `jax.vmap`s depend only on the plan's `in_axes`, so they are built once per plan and
reused: the per-call state (the user's function and the leaves that are not mapped) travels
through them as `_Example`, a pytree with no leaves, which `jax.vmap` passes through untouched
with `in_axes=None`. Leaves that are not mapped are closed over, never copied.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from ._errors import hide_from_tracebacks
from ._plan import BoundedCache, InAxes, Shape, VmapPlan
from ._shard import map_batch, spmd_levels

hide_from_tracebacks(__file__)

# Past this many arrays, reshaping them eagerly one dispatch each costs more than one jitted
# call that reshapes them all (whose dispatch costs about as much as a few eager reshapes).
_RESHAPE_ONE_BY_ONE = 4


def _reshape_all_impl(arrays: tuple[Any, ...], shapes: tuple[Shape, ...]) -> tuple[Any, ...]:
    return tuple(jnp.reshape(x, shape) for x, shape in zip(arrays, shapes))


_reshape_all_jitted = jax.jit(_reshape_all_impl, static_argnums=1)


def _reshape_all(arrays: Sequence[Any], shapes: Sequence[Shape]) -> list[Any]:
    """Concrete `arrays` reshaped to `shapes`, in as few dispatches as pays."""
    if len(arrays) <= _RESHAPE_ONE_BY_ONE:
        return [jnp.reshape(x, shape) for x, shape in zip(arrays, shapes)]
    return list(_reshape_all_jitted(tuple(arrays), tuple(shapes)))


class _Example:
    """What one example needs besides its mapped leaves: the callback and the other leaves."""

    __slots__ = ("call", "leaves", "mapped")

    def __init__(
        self, call: Callable[[list[Any]], Any], leaves: list[Any], mapped: tuple[int, ...]
    ):
        self.call = call
        self.leaves = leaves
        self.mapped = mapped

    def __call__(self, mapped_leaves: Sequence[Any]) -> Any:
        leaves = list(self.leaves)
        for i, leaf in zip(self.mapped, mapped_leaves):
            leaves[i] = leaf
        return self.call(leaves)


jax.tree_util.register_pytree_node(_Example, lambda e: ((), e), lambda e, _: e)


def _call_example(example: _Example, *mapped_leaves: Any) -> Any:
    return example(mapped_leaves)


# `jax.vmap` reads the signature of the function it maps on every call, for its debug info;
# reading it once here spares every level of every call `inspect.signature`'s work.
_call_example.__signature__ = inspect.signature(_call_example)  # type: ignore[attr-defined]


_VMAPPED = BoundedCache(1024)


def _nested_vmap(levels: tuple[InAxes, ...]) -> Callable[..., Any]:
    """`jax.vmap` nested once per level, outermost first, as a person would write it."""
    fn: Callable[..., Any] | None = _VMAPPED.get(levels)
    if fn is None:
        fn = _call_example
        for in_axes in reversed(levels):
            fn = jax.vmap(fn, in_axes=(None, *in_axes))
        _VMAPPED.put(levels, fn)
    return fn


def _as_array(x: Any, squeeze: Shape) -> Any:
    """A ranked leaf as the function sees it: a JAX array, its size-1 batch dims squeezed."""
    if isinstance(x, jax.Array):
        return jax.lax.squeeze(x, squeeze) if squeeze else x
    if squeeze:  # a NumPy view: free, then converted once
        x = np.squeeze(np.asarray(x), squeeze)
    return jnp.asarray(x)


def _concrete(x: Any) -> bool:
    """Reshaping `x` changes no program and moves no data between devices: a concrete array on
    one device. Tracers are never merged: the traced program must be hand-written nested vmap."""
    return not isinstance(x, Tracer) and len(x.sharding.device_set) == 1


def run_plan(
    plan: VmapPlan,
    leaves: Sequence[Any],
    call: Callable[[list[Any]], Any],
    *,
    chunk_size: int | None = None,
    axis_name: Hashable | None = None,
    spmd_axis_name: Any = None,
) -> Any:
    """Evaluate `call` (ranked leaves of one example -> outputs) on every example of `plan`.

    With no option, the plan's nested `jax.vmap` (levels merged for concrete arrays); with
    `chunk_size`, `axis_name` or `spmd_axis_name`, `_shard.map_batch`, which keeps chunks on
    each device's shard and binds one name to the whole batch."""
    leaves = [_as_array(x, axes) for x, axes in zip(leaves, plan.squeeze_axes)]
    mapped = [leaves[i] for i in plan.mapped]
    levels, lead = plan.levels, plan.mapped_shape
    example = _Example(call, leaves, plan.mapped)
    if chunk_size is not None or axis_name is not None or spmd_axis_name is not None:
        out = map_batch(
            lambda *mapped_leaves: example(mapped_leaves),
            mapped,
            levels,
            lead,
            chunk_size=chunk_size,
            axis_name=axis_name,
            spmd_axis_name=spmd_levels(spmd_axis_name, plan.batch_shape),
        )
    else:
        merged = plan.merged
        if merged is not None and all(map(_concrete, mapped)):
            assert merged.merged_batch_shapes is not None
            shapes = [
                batch + x.shape[sum(a[p] == 0 for a in levels) :]
                for p, (x, batch) in enumerate(zip(mapped, merged.merged_batch_shapes))
            ]
            mapped = _reshape_all(mapped, shapes)
            levels, lead = merged.levels, merged.mapped_shape
        out = _nested_vmap(levels)(example, *mapped)
    if lead == plan.batch_shape:
        return out
    # unmapped size-1 dims, merged levels: the outputs get the batch shape back
    outputs, treedef = jax.tree_util.tree_flatten(out)
    shapes = [plan.batch_shape + jnp.shape(o)[len(lead) :] for o in outputs]
    if all(map(_concrete, outputs)):
        outputs = _reshape_all(outputs, shapes)
    else:
        outputs = [jnp.reshape(o, shape) for o, shape in zip(outputs, shapes)]
    return jax.tree_util.tree_unflatten(treedef, outputs)


def run_named_unbatched(call: Callable[[], Any], axis_name: Hashable) -> Any:
    """A call with no batch dims, with `axis_name` still bound (to a batch of one), so that the
    function's collectives work unchanged."""
    return map_batch(lambda: call(), [], (), (), axis_name=axis_name)
