"""What counts as an array, told fast: every call asks it of every ranked leaf."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from ._plan import Shape

PYTHON_SCALARS = (bool, int, float, complex)

ARRAY_TYPES: dict[type, bool] = {}  # per leaf type: `issubclass(t, jax.Array)`


def is_array_type(t: type) -> bool:
    """`issubclass(t, jax.Array)`, remembered: a dict lookup costs a quarter of `isinstance`
    against `jax.Array`, which runs for every ranked argument of every call. `False` for
    tracers, which `isinstance` counts as arrays by their aval: callers then take the path
    that tests the value itself."""
    known = ARRAY_TYPES.get(t)
    if known is None:
        known = ARRAY_TYPES.setdefault(t, issubclass(t, jax.Array))
    return known


def all_arrays(flat: Sequence[Any]) -> bool:
    """Whether every leaf is a JAX array (`isinstance(leaf, jax.Array)`), with one type test
    per distinct type where that tells: tracers are arrays by their value (their aval), not by
    their type, so they are tested one by one."""
    if len(flat) == 1:
        if ARRAY_TYPES.get(type(flat[0])) or is_array_type(type(flat[0])):
            return True
    elif all(map(is_array_type, set(map(type, flat)))):
        return True
    return all(isinstance(leaf, jax.Array) for leaf in flat)


def shape_of(leaf: Any) -> Shape | None:
    """The shape of an array-like leaf; `None` for leaves that are not arrays (strings, ...)."""
    if ARRAY_TYPES.get(type(leaf)):  # the common case first: this runs for every leaf
        known: Shape = leaf.shape
        return known
    if isinstance(leaf, jax.Array):
        return leaf.shape
    if isinstance(leaf, (np.ndarray, np.generic)):
        return leaf.shape
    if isinstance(leaf, PYTHON_SCALARS):
        return ()
    shape = getattr(leaf, "shape", None)  # other array types (`jax.ShapeDtypeStruct`, ...)
    if shape is not None and hasattr(leaf, "dtype"):
        return tuple(shape)
    return None
