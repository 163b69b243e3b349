"""Run a `Plan`: squeeze broadcast dimensions, nest `jax.vmap`, restore size-1 output dims."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._plan import Plan


def _squeeze(x: Any, axes: tuple[int, ...]) -> Any:
    if isinstance(x, np.ndarray):  # a NumPy view: free, and stays on the host
        return x.squeeze(axes)
    return jax.lax.squeeze(x, axes)


def run_plan(
    plan: Plan,
    call_on_leaves: Callable[[list[Any]], Any],
    leaves: Sequence[Any],
    batched: Sequence[int],
) -> Any:
    """Evaluate `call_on_leaves` per example.

    `leaves` are all leaves of the ranked arguments; `batched[j]` is the index in `leaves` of
    the leaf whose batch shape was `make_plan`'s `j`-th input.
    """
    leaves = list(leaves)
    for j, axes in enumerate(plan.squeeze_axes):
        if axes:
            leaves[batched[j]] = _squeeze(leaves[batched[j]], axes)
    mapped = [batched[j] for j in plan.participants]

    def per_example(*mapped_leaves: Any) -> Any:
        example = list(leaves)  # leaves not mapped are closed over, never copied
        for i, leaf in zip(mapped, mapped_leaves):
            example[i] = leaf
        return call_on_leaves(example)

    fn = per_example
    for in_axes in reversed(plan.levels):
        fn = jax.vmap(fn, in_axes=in_axes)
    out = fn(*(leaves[i] for i in mapped))
    if plan.mapped_shape != plan.batch_shape:
        n_mapped = len(plan.mapped_shape)
        out = jax.tree_util.tree_map(
            lambda o: jnp.reshape(o, plan.batch_shape + jnp.shape(o)[n_mapped:]), out
        )
    return out
