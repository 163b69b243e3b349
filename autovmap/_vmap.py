"""The one nested-`jax.vmap` builder, and the one test of whether a value is concrete.

Every route maps its examples through `nested_vmap`: the plain and merged routes, the named
axis, each chunk of a loop and each shard of a partitioned op. The vmaps depend only on the
levels' `in_axes`, the mesh axes and the axis name, so they are built once per such key and
reused: what a call needs besides its mapped leaves (the user's function, the leaves that are
not mapped) travels through them as an `Example`, a pytree with no leaves, which `jax.vmap`
passes through untouched with `in_axes=None`. The traced program is exactly the one
hand-written nested `jax.vmap` gives.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import numpy as np
from jax.core import Tracer

from ._compat import fix_vmap_debug_info
from ._errors import hide_from_tracebacks
from ._plan import BoundedCache

hide_from_tracebacks(__file__)

AxisNames = tuple[str, ...]  # the mesh axes one batch dim is sharded over (outermost first)
Levels = Sequence[Sequence[int | None]]  # per vmap level, the in_axes (0 or None) of each leaf


def is_concrete(x: Any) -> bool:
    """Whether `x` holds data (a concrete array, NumPy array or scalar) rather than being traced:
    a route may then look at where it lives, and reshape it without changing any program."""
    return not isinstance(x, Tracer)


def on_one_device(x: Any) -> bool:
    """A concrete value whose data sits on one device (or on the host, to be put on one)."""
    sharding = getattr(x, "sharding", None)
    return is_concrete(x) and (sharding is None or len(sharding.device_set) == 1)


class Example:
    """One example's evaluation: called with the mapped leaves of one example. A pytree with no
    leaves, so `jax.vmap` closes over it (the per-call state never enters a cache key)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn  # called with the mapped leaves as positional arguments

    def __call__(self, mapped_leaves: Sequence[Any]) -> Any:
        return self.fn(*mapped_leaves)


class LeavesExample(Example):
    """An example of a planned call: the mapped leaves go back among the leaves that are not
    mapped (closed over, never copied), and `call` gets them all."""

    __slots__ = ("leaves", "mapped")

    def __init__(
        self, call: Callable[[list[Any]], Any], leaves: Sequence[Any], mapped: tuple[int, ...]
    ):
        self.fn = call  # not `super().__init__`: this is made on every call
        self.leaves = leaves
        self.mapped = mapped

    def __call__(self, mapped_leaves: Sequence[Any]) -> Any:
        leaves = list(self.leaves)
        for i, leaf in zip(self.mapped, mapped_leaves):
            leaves[i] = leaf
        return self.fn(leaves)


for _cls in (Example, LeavesExample):
    jax.tree_util.register_pytree_node(_cls, lambda e: ((), e), lambda e, _: e)


def _call_example(example: Example, mapped_leaves: tuple[Any, ...]) -> Any:
    return example(mapped_leaves)


# `jax.vmap` makes a debug info for the function it maps on every call. Made once here where
# jax takes one (`_compat`); else its signature is read once, sparing `inspect.signature`.
if not fix_vmap_debug_info(_call_example):  # pragma: no cover - older jax
    _call_example.__signature__ = inspect.signature(_call_example)  # type: ignore[attr-defined]


def mapped_levels(levels: Levels, p: int) -> list[int]:
    """The levels at which leaf `p` is mapped: its leading batch dims, in order."""
    return [level for level, in_axes in enumerate(levels) if in_axes[p] == 0]


def level_sizes(leaves: Sequence[Any], levels: Levels) -> tuple[int, ...]:
    """Each level's size, read off the leaves (every level maps at least one of them)."""
    sizes = []
    for level, in_axes in enumerate(levels):
        p = in_axes.index(0)
        sizes.append(np.shape(leaves[p])[mapped_levels(levels, p).index(level)])
    return tuple(sizes)


def example_ndim(leaf: Any, levels: Levels, p: int) -> int:
    return np.ndim(leaf) - len(mapped_levels(levels, p))


def vmap_name(axes: AxisNames | None) -> str | tuple[str, ...] | None:
    """Mesh axes as `jax.vmap(spmd_axis_name=...)` takes them."""
    return None if axes is None else axes[0] if len(axes) == 1 else axes


_VMAPPED = BoundedCache(1024)


def nested_vmap(
    levels: tuple[tuple[int | None, ...], ...],
    spmd: tuple[AxisNames | None, ...] | None = None,
    axis_name: Hashable | None = None,
    axis_size: int | None = None,
) -> Callable[..., Any]:
    """`(example, mapped_leaves) -> outputs`, `mapped_leaves` a tuple: `jax.vmap` nested once
    per level, outermost first, as a person would write it; level `l` is sharded over the mesh
    axes `spmd[l]`. An `axis_name` names the only level (JAX binds one name to one level);
    `axis_size` sizes it where no leaf is mapped (a batch of one, to bind the name). Cached by
    all four."""
    if spmd is not None and not any(spmd):
        spmd = None
    key = (levels, spmd, axis_name, axis_size)  # tuples: a route's fields, or as made in `_chunks`
    fn: Callable[..., Any] | None = _VMAPPED.get(key)
    if fn is None:
        fn = _call_example
        for level in reversed(range(len(levels))):
            if fn is not _call_example:  # a level the next one maps: its debug info made once
                fix_vmap_debug_info(fn)
            in_axes = levels[level]
            fn = jax.vmap(
                fn,
                # A level mapping every leaf says so with one `0`: jax then matches it to the
                # leaves in one step, where a tuple of in_axes costs a step per leaf.
                in_axes=(None, 0 if all(a == 0 for a in in_axes) else tuple(in_axes)),
                axis_name=axis_name,
                spmd_axis_name=None if spmd is None else vmap_name(spmd[level]),
                axis_size=axis_size,
            )
        _VMAPPED.put(key, fn)
    return fn
