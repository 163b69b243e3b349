"""Misuses of `autovmap` that mypy (with and without the plugin) and pyright must report.

Every line that ends in an `E:` comment must be reported by every checker, a line that ends in
an `E[pyright, plugin]:` comment by pyright (strict) and mypy with the plugin alone, and no
other line (`mypy` is mypy without the plugin, `basic` pyright in its basic mode):
tests/test_typing.py compares the line numbers. (The mypy plugin's own checks are pinned in
client_plugin.py.) This file is type-checked, never run.
"""

import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, overload

import numpy as np
from jax import Array

from autovmap import auto_vmap, vectorize

T = TypeVar("T")


def vector() -> Array:
    raise NotImplementedError


v = vector()


@auto_vmap(a=1, b=1)
def add(a: Array, b: Array, *, scale: float = 1.0) -> Array:
    return scale * (a + b)


@auto_vmap(a=1)
def norm(a: Array) -> float:
    return 0.0


class Model:
    @auto_vmap(None, 1)
    def apply(self, a: Array) -> Array:
        return a

    @auto_vmap(a=1)
    @staticmethod
    def static(a: Array) -> Array:
        return a


# The batched functions keep their parameters.
add(v)  # E: missing argument
add(v, v, v)  # E: too many positional arguments
add(v, v, c=v)  # E: unknown keyword
add(v, v, scale="large")  # E: wrong argument type
Model().apply(v, v)  # E: a method binds `self` like a plain function
Model.static(a=v, b=v)  # E: unknown keyword of a staticmethod

# They keep their return types, and a scalar-returning function may return an array.
label: str = add(v, v)  # E: an array is not a str
total: float = norm(v)  # E: `Array | float` is not a float


# A function returning `Any` keeps its parameters too.
@auto_vmap(a=1)
def summary(a: Array) -> Any:
    return {"mean": a.mean()}


summary(v, v)  # E: too many positional arguments


# A callable object becomes a function: it is one at run time.
class Scale:
    factor = 2.0

    def __call__(self, a: Array) -> Array:
        return self.factor * a


factor = auto_vmap(a=1)(Scale()).factor  # E[mypy, plugin, pyright]: a function has no `factor`


# A generic function stays generic: its type variable is solved at each call.
@auto_vmap(tree=1)
def same(tree: T) -> T:
    return tree


same_label: str = same(v)  # E: `same(v)` is an `Array`


# Scalars, NumPy scalars, optional scalars and containers of scalars may come back as arrays.
@auto_vmap(a=1)
def pair(a: Array) -> tuple[float, float]:
    return 1.0, 2.0


@auto_vmap(a=1)
def numpy_scalar(a: Array) -> np.float64:
    return np.float64(1.0)


@auto_vmap(a=1)
def maybe(a: Array) -> float | None:
    return None


@auto_vmap(a=1)
def named(a: Array) -> dict[str, float]:
    return {"one": 1.0}


first: float = pair(v)[0]  # E: a batched call returns a tuple of arrays
host: np.float64 = numpy_scalar(v)  # E: a batched call returns an array
optional: float | None = maybe(v)  # E: a batched call returns an array
one: float = named(v)["one"]  # E: a batched call returns a dict of arrays

# A rank is an int, None, or a pytree of those; `check` and `chunk_size` are options.
auto_vmap(a=1.5)  # E: a float rank
auto_vmap(1, a=(1, 2.5))  # E: a float in a rank pytree
auto_vmap(a={"w": [0.5]})  # E: a float deep in a rank pytree
auto_vmap(a=np.float64(1.0))  # E: a NumPy float rank (NumPy integers are ranks)
float_ranks: dict[str, float] = {"a": 1.5}
auto_vmap(**float_ranks)  # E: float ranks, from a dict
auto_vmap(check=1.0)  # E: `check` takes a bool (an int passes as a rank: the plugin reports it)
auto_vmap(chunk_size=0.5)  # E: `chunk_size` takes an int
auto_vmap(a=1)(42)  # E: only functions are decorated
auto_vmap(add, a=1)  # E: the ranks come first, `auto_vmap(a=1)(add)`


# `async def` and generator functions are refused: the overload that takes them is deprecated
# (pyright reports that for a decorator that is a name), and what it returns cannot be called.
# The plugin reports decorations it sees, mypy's `deprecated` error code (off here) all.
async def fetch(a: Array) -> Array:
    raise NotImplementedError


def generate(a: Array) -> Iterator[Array]:
    yield a


fetched = auto_vmap(a=1)(fetch)  # E[plugin]: an `async def` function
fetched(v)  # E: not callable


@auto_vmap  # E[pyright]: deprecated overload
async def fetch_all(a: Array) -> Array:
    raise NotImplementedError


fetch_all(v)  # E: not callable
auto_vmap(generate)  # E[pyright, plugin]: deprecated overload; a generator function
auto_vmap(a=1)(generate)(v)  # E: not callable

# A lambda takes its parameter types from the declared type (mypy gives it `Any` parameters, as
# it does under `jax.vmap`).
f: Callable[[Array], Array] = auto_vmap(x=1)(lambda x: x.nope)  # E[pyright, basic]: `x` is an Array


# `vectorize` types as `auto_vmap` does.
def identity(tree: T) -> T:
    return tree


def moments(a: Array) -> tuple[float, float]:
    return 1.0, 2.0


vectorized_label: str = vectorize(identity)(v)  # E: `vectorize(identity)(v)` is an `Array`
vectorized_first: float = vectorize(moments)(v)[0]  # E: a batched call returns arrays
g: Callable[[Array], Array] = vectorize(lambda x: x.nope)  # E[pyright, basic]: `x` is an Array


# `functools.partial(auto_vmap, ...)` as a preset keeps the function's parameters and return
# type: mypy alone types a `partial` of overloads `Any`, which the plugin replaces.
unchecked = functools.partial(auto_vmap, check=False)


@unchecked
def center(a: Array, b: Array) -> Array:
    return a - b


center(a=center)  # E[pyright, basic, plugin]: `b` missing, `a` not an Array
centered: str = center(v, v)  # E[pyright, basic, plugin]: an Array is not a str
by_signature = functools.partial(vectorize, signature="(n)->()")
norms: float = by_signature(moments)(v)  # E[pyright, basic, plugin]: not a float


# Where a return type is expected, a function returning `Any` (or a lambda) matches several of
# the stub's rows, which mypy alone resolves to `Any`; the plugin keeps the first row's type.
def anything(a: Array) -> Any:
    return a


def batch_anything() -> Callable[[Array], Any]:
    return auto_vmap(a=1)(anything)  # E[mypy]: returning `Any` (the plugin fixes it)


def batch_lambda(k: float) -> Callable[[Array], Array]:
    return auto_vmap(a=1)(lambda a: k * a)  # E[mypy]: returning `Any` (the plugin fixes it)


# An overloaded function: with the plugin, each overload goes through the return-type rule;
# pyright and mypy alone keep the overloads as declared, as `jax.vmap` does.
@overload
def size_of(a: Array) -> Array: ...
@overload
def size_of(a: Array, axis: int) -> int: ...
def size_of(a: Array, axis: int | None = None) -> Array | int:
    return a if axis is None else a.shape[axis]


size_of_each = auto_vmap(a=1)(size_of)
sizes: int = size_of_each(v, 0)  # E[plugin]: a batched call returns an array
