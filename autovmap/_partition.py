"""Chunks per shard where only XLA's partitioner knows the sharding (an `Auto` mesh under
`jax.jit`, or arrays placed by `jit(in_shardings=...)`): a `custom_partitioning` op whose
`partition` callback reads the shardings the partitioner chose and returns `_chunks`' loop
for the shard it was given. It covers the primal only (see `partitioned`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax.experimental.custom_partitioning import (
    ArrayMapping,
    SdyShardingRule,
    custom_partitioning,
)
from jax.sharding import NamedSharding, PartitionSpec as P

from ._chunks import chunk_loop
from ._compat import SDY_REPLICATION_FACTORS, ClosedJaxpr, Jaxpr
from ._errors import hide_from_tracebacks
from ._mesh import divisible, resolve_levels
from ._vmap import AxisNames, Example, Levels, example_ndim, level_sizes, mapped_levels

hide_from_tracebacks(__file__)

# jax leaves these untyped; `Any` keeps mypy --strict quiet about calling them.
_P: Any = P
_ShapeDtypeStruct: Any = jax.ShapeDtypeStruct
_custom_partitioning: Any = custom_partitioning
_ArrayMapping: Any = ArrayMapping


def run_partitioned(
    example: Example, mapped: Sequence[Any], levels: Levels, chunk_size: int
) -> Any:
    """The partitioned op over the batch; the loop over the whole batch when the function
    cannot run inside the op (see `hoist`)."""
    hoisted = hoist(example, mapped, levels)
    if hoisted is None:
        return chunk_loop(example, mapped, levels, chunk_size, (None,) * len(levels), None)
    # What the function closes over travels as operands, mapped at no level.
    example_fn, consts = hoisted
    all_levels = tuple((None,) * len(consts) + tuple(in_axes) for in_axes in levels)
    return partitioned(example_fn, consts + list(mapped), all_levels, chunk_size)


def hoist(
    example: Example, mapped: Sequence[Any], levels: Levels
) -> tuple[Callable[..., Any], list[Any]] | None:
    """the function traced once on one example, as a function of (closed-over values, example).

    The user's Python runs here only (run-time checks included); the op evaluates the
    jaxpr, so the closed-over values travel as ordinary operands. Only for `Auto` meshes:
    under `Explicit` ones a jaxpr traced outside a sharding context cannot be replayed
    inside another (its ops record the mesh they were traced under).

    None when the function places values on a mesh itself (a sharding constraint, a `shard_map`),
    which cannot run inside the op, whose body sees every mesh axis as manual; and None when
    it has effects (`jax.debug.print`, callbacks), with which XLA's partitioner crashes."""
    closed, out_shape = jax.make_jaxpr(lambda *xs: example(xs), return_shape=True)(
        *_example_avals(mapped, levels)
    )
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
            np.shape(x)[len(mapped_levels(levels, p)) :],
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
                if isinstance(item, ClosedJaxpr) and _uses_mesh(item.jaxpr):
                    return True
                if isinstance(item, Jaxpr) and _uses_mesh(item):
                    return True
    return False


def partitioned(
    example_fn: Callable[..., Any], operands: list[Any], levels: Levels, chunk_size: int
) -> Any:
    """Chunk per shard where the sharding is only known to XLA's partitioner (an `Auto` mesh
    under `jax.jit`): a `custom_partitioning` op whose `partition` callback reads the shardings
    the partitioner chose and returns the per-shard loop.

    `custom_partitioning` has no differentiation or batching rules, so `jax.vmap` of the op
    re-enters this function with one more level (still per shard), and differentiation
    falls back to the whole-batch loop, which is correct but lets XLA gather the batch.
    Fully transformable alternatives: an `Explicit` mesh, or `spmd_axis_name`.
    `example_fn` must close over no tracer (see `hoist`).
    """

    def whole(*ops: Any) -> Any:  # on the whole batch, or (as lowered) on one shard
        return chunk_loop(Example(example_fn), ops, levels, chunk_size, (None,) * len(levels), None)

    op = _custom_partitioning(whole)

    def level_axes(mesh: Any, arg_shapes: Any) -> tuple[AxisNames | None, ...]:
        specs = [_spec_of(shape.sharding) for shape in arg_shapes]
        sizes = level_sizes(arg_shapes, levels)  # np.shape reads `.shape`
        return divisible(resolve_levels(levels, specs), sizes, dict(mesh.shape))

    def partition(mesh: Any, arg_shapes: Any, result_shape: Any) -> Any:
        axes = level_axes(mesh, arg_shapes)
        arg_shardings = tuple(
            NamedSharding(mesh, _P(*(axes[level] for level in mapped_levels(levels, p))))
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

    # Transformations of the op: see the docstring of `partitioned`.
    batchable = jax.custom_batching.custom_vmap(lambda *ops: op(*ops))

    @batchable.def_vmap
    def _vmap_rule(axis_size: int, in_batched: Sequence[bool], *ops: Any) -> Any:
        del axis_size
        outer = tuple(0 if batched else None for batched in in_batched)
        out = partitioned(example_fn, list(ops), (outer, *levels), chunk_size)
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

    def mapping(level_factors: list[str], n_example_dims: int, tag: str) -> Any:
        example = [f"{tag}_{d}" for d in range(n_example_dims)]
        replicated.extend(example)
        return _ArrayMapping(*level_factors, *example)

    operand_mappings = tuple(
        mapping(
            [f"level{level}" for level in mapped_levels(levels, p)],
            example_ndim(x, levels, p),
            f"in{p}",
        )
        for p, x in enumerate(operands)
    )
    examples = jax.tree.leaves(jax.eval_shape(example_fn, *_example_avals(operands, levels)))
    level_factors = [f"level{level}" for level in range(len(levels))]
    result_mappings = tuple(
        mapping(level_factors, len(o.shape), f"out{k}") for k, o in enumerate(examples)
    )
    if not SDY_REPLICATION_FACTORS:
        return SdyShardingRule(operand_mappings, result_mappings)  # jax < 0.6: no such kind
    return SdyShardingRule(
        operand_mappings, result_mappings, need_replication_factors=tuple(replicated)
    )
