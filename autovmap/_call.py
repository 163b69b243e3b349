"""A call of an auto-vmapped function: find the batch dims, plan the vmaps, run them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ._apply import run_plan
from ._arguments import RankedArgument, bind_ranked
from ._errors import BroadcastError, RankTooLargeError, fn_label
from ._plan import IncompatibleBatchShapes, VmapPlan, make_plan, merge_levels
from ._report import LeafPlan, Plan, fmt_shape, leaf_table
from ._spec import CallSpec
from ._traceback import hide_from_tracebacks

hide_from_tracebacks(__file__)

PYTHON_SCALARS = (bool, int, float, complex)

# Calls the function on one example: `(args, kwargs, batch_shape) -> result`.
Invoke = Callable[[tuple[Any, ...], dict[str, Any], tuple[int, ...]], Any]


def shape_of(leaf: Any) -> tuple[int, ...] | None:
    """The shape of an array-like leaf; `None` for leaves that are not arrays (strings, ...)."""
    if isinstance(leaf, jax.Array):  # the common case first: this runs for every leaf
        return leaf.shape
    shape = getattr(leaf, "shape", None)
    if shape is not None and hasattr(leaf, "dtype"):
        return tuple(shape)
    if isinstance(leaf, PYTHON_SCALARS):
        return ()
    return None


@dataclasses.dataclass
class PreparedCall:
    """The ranked arguments of a call, flattened, with the batched leaves and their plan."""

    ranked: list[RankedArgument]
    leaves: list[Any]  # every leaf of every ranked argument, in order
    batched: list[int]  # indices into `leaves` of the leaves with batch dims
    plan: VmapPlan | None  # None when no leaf has batch dims


def _leaf_plans(spec: CallSpec, ranked: list[RankedArgument], plan: VmapPlan | None) -> tuple[LeafPlan, ...]:
    """Describe every ranked array leaf; `plan` supplies the in_axes when there is one."""
    participant = {} if plan is None else {j: p for p, j in enumerate(plan.participants)}
    result = []
    batched_count = 0  # leaves with batch dims seen so far: the plan's inputs are in this order
    for argument in ranked:
        source = argument.param.source
        for path, leaf, rank in zip(argument.leaf_paths(), argument.leaves, argument.leaf_ranks):
            shape = None if rank is None else shape_of(leaf)
            if shape is None or rank is None:
                continue
            batch = shape[: max(len(shape) - rank, 0)]
            axes: tuple[int | None, ...] | None = None
            if plan is not None:
                if batch:
                    p = participant.get(batched_count)
                    axes = tuple(None if p is None else lvl[p] for lvl in plan.levels)
                    batched_count += 1
                else:
                    axes = tuple(None for _ in plan.levels)
            result.append(LeafPlan(path, rank, source, shape, batch, axes))
    return tuple(result)


def _rank_too_large(
    spec: CallSpec, argument: RankedArgument, leaf_index: int, shape: tuple[int, ...], rank: int
) -> RankTooLargeError:
    path = argument.leaf_paths()[leaf_index]
    core = ", ".join(f"d{i}" for i in range(rank))
    return RankTooLargeError(
        f"{fn_label(spec.fn)}: argument `{path}` has shape {fmt_shape(shape)} "
        f"({_dims(len(shape))}), but its rank is {rank}: one example has {_dims(rank)}, so the "
        f"argument needs at least {rank}.\nPass `{path}` with shape (*batch, {core}), or give "
        "it a smaller rank."
    )


def _dims(n: int) -> str:
    return f"{n} dim" if n == 1 else f"{n} dims"


def _broadcast_error(
    spec: CallSpec, ranked: list[RankedArgument], error: IncompatibleBatchShapes, ndim: int
) -> BroadcastError:
    sizes = " and ".join(map(str, error.sizes))
    leaves = _leaf_plans(spec, ranked, None)
    example = next(leaf.argument for leaf in leaves if leaf.batch_shape)
    return BroadcastError(
        f"{fn_label(spec.fn)}: the batch shapes of the arguments do not broadcast: batch "
        f"dimension {error.axis - ndim} (counted from the right) has sizes {sizes}.\n"
        f"{leaf_table(leaves, with_levels=False)}\n"
        "Batch shapes are aligned on the right, and in each position the sizes must be equal "
        "or 1 (a size-1 or missing dimension stretches). Make the sizes agree, or insert a "
        f"size-1 axis (e.g. `{example}[:, None]`) to combine every example of one argument "
        "with every example of another."
    )


def prepare(spec: CallSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> PreparedCall:
    """Bind, flatten and plan a call; raises our shape errors before any JAX work."""
    ranked = bind_ranked(spec, args, kwargs)
    leaves: list[Any] = []
    batched: list[int] = []
    batch_shapes: list[tuple[int, ...]] = []
    for argument in ranked:
        for i, (leaf, rank) in enumerate(zip(argument.leaves, argument.leaf_ranks)):
            if rank is None:
                shape = None
            else:
                shape = shape_of(leaf)
            if shape is not None and rank is not None:
                if len(shape) < rank:
                    raise _rank_too_large(spec, argument, i, shape, rank)
                if len(shape) > rank:
                    batched.append(len(leaves))
                    batch_shapes.append(shape[: len(shape) - rank])
            leaves.append(leaf)
    if not batched:
        return PreparedCall(ranked, leaves, batched, None)
    try:
        plan = make_plan(tuple(batch_shapes))
    except IncompatibleBatchShapes as e:
        raise _broadcast_error(spec, ranked, e, max(map(len, batch_shapes))) from None
    return PreparedCall(ranked, leaves, batched, plan)


def describe(spec: CallSpec, prepared: PreparedCall, chunk_size: int | None) -> Plan:
    plan = prepared.plan
    return Plan(
        function=fn_label(spec.fn).strip("`"),
        batch_shape=() if plan is None else plan.batch_shape,
        leaves=_leaf_plans(spec, prepared.ranked, plan),
        levels=0 if plan is None else len(plan.levels),
        eager_levels=0 if plan is None else len(merge_levels(plan).levels),
        chunk_size=chunk_size,
    )


def _has_batch_dims(spec: CallSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """False only for calls that certainly need no batching: every positional argument given,
    nothing else, each an array (or Python scalar) of exactly its rank. The cheap check that
    keeps the decorator's cost small on unbatched calls; anything else takes `prepare`."""
    ranks = spec.exact_call_ranks
    if kwargs or ranks is None or len(args) != len(ranks):
        return True
    for value, rank in zip(args, ranks):
        if rank is None or value is None:
            continue
        if isinstance(value, (jax.Array, np.ndarray)):
            if value.ndim != rank:
                return True
        elif not (rank == 0 and isinstance(value, PYTHON_SCALARS)):
            return True
    return False


def call(
    spec: CallSpec,
    invoke: Invoke,
    chunk_size: int | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    if not _has_batch_dims(spec, args, kwargs):
        return invoke(args, kwargs, ())
    prepared = prepare(spec, args, kwargs)
    plan = prepared.plan
    if plan is None:  # nothing to map: the function sees exactly what it was given
        return invoke(args, kwargs, ())

    def call_on_leaves(example_leaves: list[Any]) -> Any:
        new_args = list(args)
        new_kwargs = dict(kwargs)
        start = 0
        for argument in prepared.ranked:
            stop = start + len(argument.leaves)
            value = argument.rebuild(example_leaves[start:stop])
            start = stop
            if isinstance(argument.key, int):
                new_args[argument.key] = value
            else:
                new_kwargs[argument.key] = value
        return invoke(tuple(new_args), new_kwargs, plan.batch_shape)

    return run_plan(plan, call_on_leaves, prepared.leaves, prepared.batched, chunk_size)
