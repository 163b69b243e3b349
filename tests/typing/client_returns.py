"""The return-type table of docs/typing.md, as the checkers see it: one function per row.

Each `returns_*` function's return annotation is a row's first column. tests/test_typing.py
type-checks this file with mypy (with and without the plugin) and pyright, reads each
`reveal_type` line, and compares the return type revealed with the table: `auto_vmap(f)` and
`auto_vmap(x=1)(f)` with its second column, `vectorize(f)` with its third, `jax.vmap(f)` with
its fourth. This file is
type-checked, never run.
"""

import dataclasses
from collections.abc import Iterator
from typing import Any, NamedTuple, TypeVar, overload, reveal_type

import jax
import numpy as np
from jax import Array
from jaxtyping import Float, PyTree  # pyright: ignore[reportUnknownVariableType]
from numpy.typing import NDArray

from autovmap import auto_vmap, vectorize

T = TypeVar("T")


class Pair(NamedTuple):
    first: Array
    second: Array


class Stats(NamedTuple):
    mean: Array
    size: int


@dataclasses.dataclass
class Params:
    weight: Array
    scale: float


def returns_array(x: Array) -> Array:
    raise NotImplementedError


def returns_jaxtyping(x: Array) -> Float[Array, " n"]:
    raise NotImplementedError


def returns_tuple_of_arrays(x: Array) -> tuple[Array, Array]:
    raise NotImplementedError


def returns_list_of_arrays(x: Array) -> list[Array]:
    raise NotImplementedError


def returns_dict_of_arrays(x: Array) -> dict[str, Array]:
    raise NotImplementedError


def returns_named_tuple(x: Array) -> Pair:
    raise NotImplementedError


def returns_named_tuple_with_int(x: Array) -> Stats:
    raise NotImplementedError


def returns_none(x: Array) -> None:
    raise NotImplementedError


def returns_optional_array(x: Array) -> Array | None:
    raise NotImplementedError


def returns_any(x: Array) -> Any:
    raise NotImplementedError


def returns_pytree(x: Array) -> PyTree[Array]:  # pyright: ignore[reportUnknownParameterType]
    raise NotImplementedError


def returns_type_variable(x: T) -> T:
    raise NotImplementedError


def returns_float(x: Array) -> float:
    raise NotImplementedError


def returns_bool(x: Array) -> bool:
    raise NotImplementedError


def returns_optional_float(x: Array) -> float | None:
    raise NotImplementedError


def returns_numpy_scalar(x: Array) -> np.float64:
    raise NotImplementedError


def returns_numpy_array(x: Array) -> NDArray[np.float64]:
    raise NotImplementedError


def returns_tuple_of_floats(x: Array) -> tuple[float, float]:
    raise NotImplementedError


def returns_tuple_of_array_and_float(x: Array) -> tuple[Array, float]:
    raise NotImplementedError


def returns_list_of_floats(x: Array) -> list[float]:
    raise NotImplementedError


def returns_dict_of_floats(x: Array) -> dict[str, float]:
    raise NotImplementedError


def returns_array_or_float(x: Array) -> Array | float:
    raise NotImplementedError


def returns_nested_floats(x: Array) -> tuple[float, dict[str, float]]:
    raise NotImplementedError


def returns_dataclass(x: Array) -> Params:
    raise NotImplementedError


@overload
def returns_overloads(x: Array) -> Array: ...
@overload
def returns_overloads(x: Array, axis: int) -> int: ...
def returns_overloads(x: Array, axis: int | None = None) -> Array | int:
    raise NotImplementedError


def returns_generator(x: Array) -> Iterator[Array]:
    yield x


# The rows through each entry point.
reveal_type(auto_vmap(returns_array))
reveal_type(auto_vmap(x=1)(returns_array))
reveal_type(vectorize(returns_array))
reveal_type(jax.vmap(returns_array))
reveal_type(auto_vmap(returns_jaxtyping))
reveal_type(auto_vmap(x=1)(returns_jaxtyping))
reveal_type(vectorize(returns_jaxtyping))
reveal_type(jax.vmap(returns_jaxtyping))
reveal_type(auto_vmap(returns_tuple_of_arrays))
reveal_type(auto_vmap(x=1)(returns_tuple_of_arrays))
reveal_type(vectorize(returns_tuple_of_arrays))
reveal_type(jax.vmap(returns_tuple_of_arrays))
reveal_type(auto_vmap(returns_list_of_arrays))
reveal_type(auto_vmap(x=1)(returns_list_of_arrays))
reveal_type(vectorize(returns_list_of_arrays))
reveal_type(jax.vmap(returns_list_of_arrays))
reveal_type(auto_vmap(returns_dict_of_arrays))
reveal_type(auto_vmap(x=1)(returns_dict_of_arrays))
reveal_type(vectorize(returns_dict_of_arrays))
reveal_type(jax.vmap(returns_dict_of_arrays))
reveal_type(auto_vmap(returns_named_tuple))
reveal_type(auto_vmap(x=1)(returns_named_tuple))
reveal_type(vectorize(returns_named_tuple))
reveal_type(jax.vmap(returns_named_tuple))
reveal_type(auto_vmap(returns_named_tuple_with_int))
reveal_type(auto_vmap(x=1)(returns_named_tuple_with_int))
reveal_type(vectorize(returns_named_tuple_with_int))
reveal_type(jax.vmap(returns_named_tuple_with_int))
reveal_type(auto_vmap(returns_none))
reveal_type(auto_vmap(x=1)(returns_none))
reveal_type(vectorize(returns_none))
reveal_type(jax.vmap(returns_none))
reveal_type(auto_vmap(returns_optional_array))
reveal_type(auto_vmap(x=1)(returns_optional_array))
reveal_type(vectorize(returns_optional_array))
reveal_type(jax.vmap(returns_optional_array))
reveal_type(auto_vmap(returns_any))
reveal_type(auto_vmap(x=1)(returns_any))
reveal_type(vectorize(returns_any))
reveal_type(jax.vmap(returns_any))
reveal_type(auto_vmap(returns_pytree))  # pyright: ignore[reportUnknownArgumentType]
reveal_type(auto_vmap(x=1)(returns_pytree))  # pyright: ignore[reportUnknownArgumentType]
reveal_type(vectorize(returns_pytree))  # pyright: ignore[reportUnknownArgumentType]
reveal_type(jax.vmap(returns_pytree))  # pyright: ignore[reportUnknownArgumentType]
reveal_type(auto_vmap(returns_type_variable))
reveal_type(auto_vmap(x=1)(returns_type_variable))
reveal_type(vectorize(returns_type_variable))
reveal_type(jax.vmap(returns_type_variable))
reveal_type(auto_vmap(returns_float))
reveal_type(auto_vmap(x=1)(returns_float))
reveal_type(vectorize(returns_float))
reveal_type(jax.vmap(returns_float))
reveal_type(auto_vmap(returns_bool))
reveal_type(auto_vmap(x=1)(returns_bool))
reveal_type(vectorize(returns_bool))
reveal_type(jax.vmap(returns_bool))
reveal_type(auto_vmap(returns_optional_float))
reveal_type(auto_vmap(x=1)(returns_optional_float))
reveal_type(vectorize(returns_optional_float))
reveal_type(jax.vmap(returns_optional_float))
reveal_type(auto_vmap(returns_numpy_scalar))
reveal_type(auto_vmap(x=1)(returns_numpy_scalar))
reveal_type(vectorize(returns_numpy_scalar))
reveal_type(jax.vmap(returns_numpy_scalar))
reveal_type(auto_vmap(returns_numpy_array))
reveal_type(auto_vmap(x=1)(returns_numpy_array))
reveal_type(vectorize(returns_numpy_array))
reveal_type(jax.vmap(returns_numpy_array))
reveal_type(auto_vmap(returns_tuple_of_floats))
reveal_type(auto_vmap(x=1)(returns_tuple_of_floats))
reveal_type(vectorize(returns_tuple_of_floats))
reveal_type(jax.vmap(returns_tuple_of_floats))
reveal_type(auto_vmap(returns_tuple_of_array_and_float))
reveal_type(auto_vmap(x=1)(returns_tuple_of_array_and_float))
reveal_type(vectorize(returns_tuple_of_array_and_float))
reveal_type(jax.vmap(returns_tuple_of_array_and_float))
reveal_type(auto_vmap(returns_list_of_floats))
reveal_type(auto_vmap(x=1)(returns_list_of_floats))
reveal_type(vectorize(returns_list_of_floats))
reveal_type(jax.vmap(returns_list_of_floats))
reveal_type(auto_vmap(returns_dict_of_floats))
reveal_type(auto_vmap(x=1)(returns_dict_of_floats))
reveal_type(vectorize(returns_dict_of_floats))
reveal_type(jax.vmap(returns_dict_of_floats))
reveal_type(auto_vmap(returns_array_or_float))
reveal_type(auto_vmap(x=1)(returns_array_or_float))
reveal_type(vectorize(returns_array_or_float))
reveal_type(jax.vmap(returns_array_or_float))
reveal_type(auto_vmap(returns_nested_floats))
reveal_type(auto_vmap(x=1)(returns_nested_floats))
reveal_type(vectorize(returns_nested_floats))
reveal_type(jax.vmap(returns_nested_floats))
reveal_type(auto_vmap(returns_dataclass))
reveal_type(auto_vmap(x=1)(returns_dataclass))
reveal_type(vectorize(returns_dataclass))
reveal_type(jax.vmap(returns_dataclass))
reveal_type(auto_vmap(returns_overloads))
reveal_type(auto_vmap(x=1)(returns_overloads))
reveal_type(vectorize(returns_overloads))
reveal_type(jax.vmap(returns_overloads))
# Refused: the deprecated overload is reported by pyright (strict) and the mypy plugin, which
# these lines silence; a `type: ignore` would also hide from pyright what `reveal_type` shows.
refused = auto_vmap(returns_generator)  # type: ignore[autovmap-function, unused-ignore]
refused_by_decorator = auto_vmap(x=1)(returns_generator)  # type: ignore[autovmap-function, unused-ignore]
reveal_type(refused)
reveal_type(refused_by_decorator)
reveal_type(vectorize(returns_generator))
reveal_type(jax.vmap(returns_generator))
