"""How a call runs, as a value: `choose_route` picks one `Route` per call; `_run.execute` runs
it and `plan()` prints it, so what `plan()` says is what a call does.

The choice depends on the plan, the options, and facts about the mapped leaves: whether they
are concrete and on one device (eager levels merge), and how they are sharded (chunks stay
on each device's shard). `plan()` and a call pass the same leaves, so they get the same route.

| kind           | when                                                    | runs                  |
| -------------- | ------------------------------------------------------- | --------------------- |
| `call`         | no batch dims                                           | the function once     |
| `nested`       | traced, or no two adjacent levels map the same leaves   | one vmap per level    |
| `merged`       | concrete on one device, adjacent levels map the same    | fewer levels, reshape |
| `named`        | `axis_name` (a no-batch call: a batch of one)           | one level, named      |
| `named merged` | `axis_name` over 2+ batch dims                          | one level, named      |
| `chunks`       | `chunk_size` below the batch, sharding absent           | a loop over chunks    |
| `shard chunks` | `chunk_size`, a sharding the leaves show (or declared)  | a loop per shard      |
| `partitioned`  | `chunk_size`, traced, sharding only XLA knows           | `custom_partitioning` |
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax

from ._compat import EXPLICIT_SPLIT
from ._errors import hide_from_tracebacks
from ._mesh import (
    any_explicit,
    divisible,
    hides_sharding,
    leaf_layout,
    level_names,
    resolve_levels,
    spmd_levels,
    traced_mesh,
    visible_layout,
)
from ._plan import InAxes, Shape, VmapPlan
from ._vmap import AxisNames, Levels, is_concrete, nested_vmap, on_one_device

hide_from_tracebacks(__file__)


@dataclasses.dataclass(frozen=True)
class Route:
    """How one call runs. Chosen by `choose_route`, run by `_run.execute`, printed by `plan()`.

    Attributes:
        kind: the mechanism (see the module docstring).
        levels: the vmap levels as run, outermost first: per level the `in_axes` (0 or None)
            of each mapped leaf. Merged levels for `merged`.
        mapped_shape: the size of each of `levels`.
        traced_levels: the number of levels the plan has (what tracing runs, unmerged).
        spmd: per level, the mesh axes passed as `jax.vmap(spmd_axis_name=...)`, or None.
        chunk_size: the `chunk_size` option, where it applies.
        axis_name: the name bound to the whole batch, for `named` routes.
        shard_axes: for `shard chunks`, per level the mesh axes its examples are split over.
        mesh: for `shard chunks`, the mesh of `shard_axes`.
        merged_batch_shapes: for `merged`, the batch shape each mapped leaf is reshaped to.
        batch_ndims: for `merged`, the number of batch dims each mapped leaf has before.
    """

    kind: Literal[
        "call", "nested", "merged", "named", "named merged", "chunks", "shard chunks", "partitioned"
    ]
    levels: tuple[InAxes, ...] = ()
    mapped_shape: Shape = ()
    traced_levels: int = 0
    spmd: tuple[AxisNames | None, ...] | None = None
    chunk_size: int | None = None
    axis_name: str | None = None
    shard_axes: tuple[AxisNames | None, ...] | None = None
    mesh: Any = dataclasses.field(default=None, repr=False)
    merged_batch_shapes: tuple[Shape, ...] | None = None
    batch_ndims: tuple[int, ...] | None = None

    @functools.cached_property
    def vmapped(self) -> Callable[..., Any]:
        """`nested_vmap` of the levels as run, with their mesh axes and name: kept here, as the
        plain routes are kept on their plan, so that a call does not look it up again."""
        return nested_vmap(self.levels, self.spmd, self.axis_name)

    def __str__(self) -> str:
        n = self.traced_levels
        levels = "1 jax.vmap level" if n == 1 else f"{n} jax.vmap levels"
        examples = math.prod(self.mapped_shape)
        if self.kind == "call":
            return "no batch dims: the function is called once, with the arguments as given"
        if self.kind == "named" and not self.levels:
            return (
                "no batch dims: the function is called once, with axis name "
                f"{self.axis_name!r} bound to a batch of one"
            )
        text = levels
        if self.kind == "merged":
            text += (
                f" under tracing, merged into {len(self.levels)} when called eagerly "
                "(adjacent levels that map the same arguments)"
            )
        if self.spmd is not None and any(self.spmd):
            text += f", sharded over mesh axes {_fmt_axes(self.spmd)}"
        if self.kind == "named":
            text += f" named {self.axis_name!r}"
        elif self.kind == "named merged":
            text += (
                f" merged into 1 named {self.axis_name!r} over all {examples} examples (JAX binds "
                "a name to one level; an argument broadcast along some batch dims is copied "
                "along them)"
            )
        elif self.kind == "nested" and self.chunk_size is not None:
            text += f", in one chunk (chunk_size {self.chunk_size} covers every example)"
        elif self.kind == "chunks":
            text += f", in chunks of at most {self.chunk_size} examples: a loop over all {examples}"
        elif self.kind == "shard chunks":
            assert self.shard_axes is not None
            text += (
                f", in chunks of at most {self.chunk_size} examples per device: each device "
                f"loops over its own shard (levels split over mesh axes "
                f"{_fmt_axes(self.shard_axes)})"
            )
        elif self.kind == "partitioned":
            text += (
                f", in chunks of at most {self.chunk_size} examples per device, in a "
                "`custom_partitioning` op: each device loops over the shard XLA gives it (a "
                "loop over the whole batch if the function places values on a mesh or has "
                "effects)"
            )
        return text


def _fmt_axes(axes: Sequence[AxisNames | None]) -> str:
    return "(" + ", ".join("-" if a is None else "+".join(a) for a in axes) + ")"


def _plain(plan: VmapPlan, merged: bool) -> Route:
    """The route of a call with no option, cached on its plan (it depends on nothing else)."""
    route: Route | None = plan.routes.get(merged)
    if route is None:  # (`choose_route` looks first, sparing a call)
        if merged:
            assert plan.merged is not None
            route = Route(
                "merged",
                plan.merged.levels,
                plan.merged.mapped_shape,
                len(plan.levels),
                merged_batch_shapes=plan.merged.merged_batch_shapes,
                batch_ndims=tuple(
                    sum(in_axes[p] == 0 for in_axes in plan.levels) for p in range(len(plan.mapped))
                ),
            )
        else:
            route = Route("nested", plan.levels, plan.mapped_shape, len(plan.levels))
        plan.routes[merged] = route
    return route


def choose_route(
    plan: VmapPlan | None,
    leaves: Sequence[Any],
    *,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    spmd_axis_name: Any = None,
) -> Route:
    """The route of a call with this plan (`None`: no batch dims), these ranked leaves (as
    given, before squeezing) and these options."""
    if plan is None:
        return Route("call") if axis_name is None else Route("named", axis_name=axis_name)
    if chunk_size is None and axis_name is None and spmd_axis_name is None:
        merged = plan.merged is not None and all(on_one_device(leaves[i]) for i in plan.mapped)
        route: Route | None = plan.routes.get(merged)
        return route if route is not None else _plain(plan, merged)
    mapped = [leaves[i] for i in plan.mapped]
    layouts = [leaf_layout(leaves[i], plan.squeeze_axes[i]) for i in plan.mapped]
    spmd = level_names(spmd_levels(spmd_axis_name, plan.batch_shape), len(plan.levels))
    return route_for_levels(
        plan.levels,
        plan.mapped_shape,
        mapped,
        layouts,
        chunk_size=chunk_size,
        axis_name=axis_name,
        spmd=spmd,
    )


def route_for_levels(
    levels: Levels,
    mapped_shape: Sequence[int],
    mapped: Sequence[Any],
    layouts: Sequence[tuple[Any, tuple[Any, ...]] | None],
    *,
    chunk_size: int | None,
    axis_name: str | None,
    spmd: tuple[AxisNames | None, ...],
) -> Route:
    """The route over these levels of the mapped leaves (`layouts`: their `leaf_layout`s)."""
    as_run: tuple[InAxes, ...] = tuple(tuple(in_axes) for in_axes in levels)
    shape = tuple(mapped_shape)
    if not levels:
        if axis_name is None:
            return Route("call")
        return Route("named", axis_name=axis_name)
    nested = Route("nested", as_run, shape, len(levels), spmd if any(spmd) else None)
    if axis_name is not None:
        if chunk_size is not None:
            # A collective needs every example of the batch in one vmap; a chunked loop only
            # ever holds one chunk, so the collective would silently reduce over that chunk.
            raise ValueError(
                "`axis_name` and `chunk_size` cannot be combined: a collective over the batch "
                "needs every example at once, and chunking evaluates a chunk at a time."
            )
        _refuse_explicit_named(levels, layouts)
        if len(levels) == 1:
            return dataclasses.replace(nested, kind="named", axis_name=axis_name)
        return dataclasses.replace(nested, kind="named merged", axis_name=axis_name)
    chunked = dataclasses.replace(nested, chunk_size=chunk_size)
    if chunk_size is None or math.prod(shape) <= chunk_size:
        return chunked  # nested: one chunk is the whole batch
    layout = visible_layout(layouts, levels, shape)
    mesh = traced_mesh(mapped)
    declared = {name for axes in spmd if axes is not None for name in axes}
    if layout is None and mesh is not None and declared and declared <= set(mesh.axis_names):
        axes = divisible(spmd, shape, dict(mesh.shape))
        layout = (mesh, axes) if any(axes) else None
    if layout is not None and not EXPLICIT_SPLIT and any_explicit(*layout):
        layout = None  # jax < 0.6: explicit sharding too young for the split (see `_compat`)
    if layout is not None:
        mesh, axes = layout
        shards = [1 if a is None else math.prod(mesh.shape[name] for name in a) for a in axes]
        if math.prod(shape) <= chunk_size * math.prod(shards):
            # Each device holds at most one chunk: hand-written vmap is that program.
            return chunked
        return dataclasses.replace(chunked, kind="shard chunks", shard_axes=axes, mesh=mesh)
    traced = not all(map(is_concrete, mapped))
    if traced and (hides_sharding(mesh) if mesh is not None else jax.device_count() > 1):
        # The batch may be sharded where tracing cannot see it: let the partitioner say.
        # (An `Auto` mesh; or no mesh in sight, as with `jit(in_shardings=...)`, on a
        # machine with several devices. On one device the op lowers to the plain loop.)
        return dataclasses.replace(chunked, kind="partitioned")
    return dataclasses.replace(chunked, kind="chunks")


def _refuse_explicit_named(
    levels: Levels, layouts: Sequence[tuple[Any, tuple[Any, ...]] | None]
) -> None:
    axes = resolve_levels(levels, [None if layout is None else layout[1] for layout in layouts])
    mesh = next((layout[0] for layout in layouts if layout is not None), None)
    types: dict[str, Any] = {} if mesh is None else dict(zip(mesh.axis_names, mesh.axis_types))
    if any(types.get(name) == jax.sharding.AxisType.Explicit for a in axes for name in a or ()):
        # JAX 0.10's vmap cannot batch a collective over a dim sharded on an Explicit axis
        # (an internal assertion fails); turning the axes Auto here would clash with the
        # Explicit arrays the function closes over, so the user must do it around the call.
        raise NotImplementedError(
            "`axis_name` on a batch sharded over Explicit mesh axes: JAX cannot yet batch a "
            "collective over such a dim. Call the function inside "
            "`jax.sharding.auto_axes(...)`, or use a mesh with `AxisType.Auto` axes."
        )
