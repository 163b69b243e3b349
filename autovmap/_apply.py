"""Run a `VmapPlan`: squeeze broadcast dims, merge or chunk, nest `jax.vmap`, reshape outputs."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from ._plan import VmapPlan, merge_levels
from ._traceback import hide_from_tracebacks

hide_from_tracebacks(__file__)


def _squeeze(x: Any, axes: tuple[int, ...]) -> Any:
    if isinstance(x, np.ndarray):  # a NumPy view: free, and stays on the host
        return x.squeeze(axes)
    return jax.lax.squeeze(x, axes)


def _mergeable(x: Any) -> bool:
    """Reshaping `x` is free and changes no program: a concrete array on one device.

    Tracers are never merged (the traced program must equal hand-written nested `jax.vmap`),
    nor arrays spread over several devices (a reshape could reshard them)."""
    if isinstance(x, np.ndarray):
        return True
    return isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) and (
        len(x.sharding.device_set) == 1
    )


def _merge(plan: VmapPlan, mapped: list[Any]) -> tuple[VmapPlan, list[Any]]:
    merged = merge_levels(plan)
    if merged.merged_batch_shapes is None:
        return plan, mapped
    reshaped = []
    for p, (x, batch) in enumerate(zip(mapped, merged.merged_batch_shapes)):
        n_batch = sum(1 for in_axes in plan.levels if in_axes[p] == 0)
        reshaped.append(x.reshape(batch + x.shape[n_batch:]))
    return merged, reshaped


def _nested_vmap(plan: VmapPlan, per_example: Callable[..., Any], mapped: list[Any]) -> Any:
    fn = per_example
    for in_axes in reversed(plan.levels):
        fn = jax.vmap(fn, in_axes=in_axes)
    return fn(*mapped)


def _chunked(plan: VmapPlan, per_example: Callable[..., Any], mapped: list[Any], chunk_size: int) -> Any:
    """Evaluate the flattened batch `chunk_size` examples at a time (`jax.lax.map`).

    Leaves mapped at every level are reshaped to one batch dim and sliced by `lax.map`;
    the others are indexed per example, so nothing is broadcast by copying."""
    n = math.prod(plan.mapped_shape)
    everywhere = [all(in_axes[p] == 0 for in_axes in plan.levels) for p in range(len(mapped))]
    sliced = [
        x.reshape((n,) + x.shape[len(plan.levels) :]) for x, full in zip(mapped, everywhere) if full
    ]

    def one_example(flat_index_and_sliced: tuple[Any, list[Any]]) -> Any:
        flat_index, examples = flat_index_and_sliced
        index = jnp.unravel_index(flat_index, plan.mapped_shape)
        next_sliced = iter(examples)
        args = []
        for p, x in enumerate(mapped):
            if everywhere[p]:
                args.append(next(next_sliced))
            else:
                own = tuple(i for i, in_axes in zip(index, plan.levels) if in_axes[p] == 0)
                args.append(jnp.asarray(x)[own])
        return per_example(*args)

    return jax.lax.map(one_example, (jnp.arange(n), sliced), batch_size=chunk_size)


def run_plan(
    plan: VmapPlan,
    call_on_leaves: Callable[[list[Any]], Any],
    leaves: Sequence[Any],
    batched: Sequence[int],
    chunk_size: int | None = None,
) -> Any:
    """Evaluate `call_on_leaves` per example.

    `leaves` are all leaves of the ranked arguments; `batched[j]` is the index in `leaves` of
    the leaf whose batch shape was `make_plan`'s `j`-th input.
    """
    leaves = list(leaves)
    for j, axes in enumerate(plan.squeeze_axes):
        if axes:
            leaves[batched[j]] = _squeeze(leaves[batched[j]], axes)
    positions = [batched[j] for j in plan.participants]
    mapped = [leaves[i] for i in positions]
    if all(map(_mergeable, mapped)):
        plan, mapped = _merge(plan, mapped)

    def per_example(*mapped_leaves: Any) -> Any:
        example = list(leaves)  # leaves not mapped are closed over, never copied
        for i, leaf in zip(positions, mapped_leaves):
            example[i] = leaf
        return call_on_leaves(example)

    n_examples = math.prod(plan.mapped_shape)
    lead: tuple[int, ...]
    if chunk_size is not None and n_examples > chunk_size:
        out, lead = _chunked(plan, per_example, mapped, chunk_size), (n_examples,)
    else:
        out, lead = _nested_vmap(plan, per_example, mapped), plan.mapped_shape
    if lead != plan.batch_shape:  # unmapped size-1 dims, merged or chunked levels
        out = jax.tree_util.tree_map(
            lambda o: jnp.reshape(o, plan.batch_shape + jnp.shape(o)[len(lead) :]), out
        )
    return out
