"""The reference every batched result is checked against: a plain Python loop over examples."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np


def example(x: Any, batch_ndim: int, index: tuple[int, ...]) -> Any:
    """The example of `x` (with `batch_ndim` leading batch dims) at broadcast index `index`."""
    x = np.asarray(x)
    own = index[len(index) - batch_ndim :] if batch_ndim else ()
    return x[tuple(0 if size == 1 else i for size, i in zip(x.shape, own))]


def loop(
    fn: Callable[..., Any], args: Sequence[Any], ranks: Sequence[int], batch_shape: tuple[int, ...]
) -> Any:
    """Call `fn` once per index of `batch_shape` and stack the outputs (leaf by leaf)."""
    outs = []
    for index in np.ndindex(*batch_shape):
        examples = [example(a, np.ndim(a) - r, index) for a, r in zip(args, ranks)]
        outs.append(fn(*examples))
    if not outs:  # a size-0 batch: get the output structure and core shapes from one example
        probe = jax.eval_shape(
            fn, *[np.zeros(np.shape(a)[np.ndim(a) - r :]) for a, r in zip(args, ranks)]
        )
        return jax.tree_util.tree_map(lambda s: np.zeros(batch_shape + s.shape), probe)
    return jax.tree_util.tree_map(
        lambda *leaves: np.stack([np.asarray(leaf) for leaf in leaves]).reshape(
            batch_shape + np.shape(leaves[0])
        ),
        *outs,
    )


def assert_trees_close(actual: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    a_leaves, a_def = jax.tree_util.tree_flatten(actual)
    e_leaves, e_def = jax.tree_util.tree_flatten(expected)
    assert a_def == e_def, (a_def, e_def)
    for a, e in zip(a_leaves, e_leaves):
        assert np.shape(a) == np.shape(e), (np.shape(a), np.shape(e))
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)
