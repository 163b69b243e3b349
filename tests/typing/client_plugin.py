"""Rank specs that `auto_vmap` rejects when decorating, which the mypy plugin reports.

Checked by mypy with tests/typing/mypy.ini (the plugin on): every line that ends in an `E:`
comment must be reported, and no other line. Each of these would raise `RankSpecError` at run
time; this file is type-checked, never run.
"""

from collections.abc import Callable, Iterator
from typing import Any, Final

import jax
import numpy as np
from jax import Array
from jax.sharding import PartitionSpec

from autovmap import AutoVmap, auto_vmap, autovmap

NEGATIVE: Final = -1
VECTOR: Final = 1


# A rank keyword must name a parameter.
@auto_vmap(a=1, c=1)  # E: `c` is not a parameter
def add(a: Array, b: Array, *, scale: float = 1.0) -> Array:
    return a + b


@auto_vmap(a=1, scale=0, check=False, chunk_size=2)  # keyword-only, and options
def add_ok(a: Array, b: Array, *, scale: float = 1.0) -> Array:
    return a + b


@auto_vmap(b=1)  # E: positional-only `a` has a name; `b` is not one
def positional_only(a: Array, /) -> Array:
    return a


@auto_vmap(a=1)  # positional-only parameters are named like any other
def positional_only_ok(a: Array, /) -> Array:
    return a


# Positional ranks fill the parameters in order, whatever their kind.
@auto_vmap(1, 1, 0, 1)  # E: four ranks, three parameters
def three(a: Array, b: Array, *, scale: float = 1.0) -> Array:
    return a + b


@auto_vmap(1, 1, 0)  # the third fills the keyword-only `scale`
def three_ok(a: Array, b: Array, *, scale: float = 1.0) -> Array:
    return a + b


@autovmap(1, a=1)  # E: `a` is ranked twice
def twice(a: Array, b: Array) -> Array:
    return a + b


@auto_vmap(1, rest=1, options=None)  # `*rest` and `**options` are parameters too
def variadic(a: Array, *rest: Array, **options: Any) -> Array:
    return a


variadic_too_many = auto_vmap(1, 1, 1, 1)(variadic)  # E: four ranks, three parameters
unknown_by_class = AutoVmap(w=1)(variadic)  # E: `w` is not a parameter
ranks = (1, 1, 1, 1)
unseen = auto_vmap(*ranks)(variadic)  # ranks the plugin cannot count are not checked


# Ranks are an int >= 0, None or a pytree of those: literals that are not are reported.
@auto_vmap(a=-1)  # E: negative
def negative(a: Array) -> Array:
    return a


@auto_vmap(a=NEGATIVE)  # E: negative, through a `Final` name
def negative_name(a: Array) -> Array:
    return a


@auto_vmap(a=(VECTOR, [0, {"w": True}]))  # E: a bool deep in a pytree
def boolean(a: Array) -> Array:
    return a


@auto_vmap(a="n n")  # a jaxtyping dim string: rank 2, with named dims
def dims(a: Array) -> Array:
    return a


@auto_vmap(a="*b n")  # E: a dim string with a variadic dim has no fixed rank
def variadic_dims(a: Array) -> Array:
    return a


@auto_vmap(a="(n,n)")  # E: gufunc syntax belongs in `signature=`
def gufunc_dims(a: Array) -> Array:
    return a


@auto_vmap(signature="(n,n)->()")  # an option, not a rank
def signature_option(a: Array) -> Array:
    return a


@auto_vmap(signature="(n,n)")  # E: a signature has outputs
def no_outputs(a: Array) -> Array:
    return a


# Methods: positional ranks count `self` and `cls`, whatever the decorator order.
class Model:
    @auto_vmap(None, 1, 1)  # E: three ranks for `self` and `a`
    def apply(self, a: Array) -> Array:
        return a

    @auto_vmap(None, 1)
    def apply_ok(self, a: Array) -> Array:
        return a

    @auto_vmap(self=1)  # E: a staticmethod has no `self`
    @staticmethod
    def static(a: Array) -> Array:
        return a

    @staticmethod
    @auto_vmap(1)
    def static_ok(a: Array) -> Array:
        return a

    @auto_vmap(cls=None, a=1, b=2)  # E: `b` is not a parameter
    @classmethod
    def from_class(cls, a: Array) -> Array:
        return a

    @classmethod
    @auto_vmap(None, a=1)
    def from_class_ok(cls, a: Array) -> Array:
        return a


# Functions whose parameters mypy does not know (`Callable[..., T]`) are not checked.
def loss(a: Array, b: Array) -> Array:
    return a


per_example_grads = auto_vmap(1, 1, 1)(jax.grad(loss))  # a `Callable[..., Any]`


def batch_any(fn: Callable[..., Array]) -> Callable[..., Array]:
    return auto_vmap(1, 1, 1)(fn)


def batch_two(fn: Callable[[Array, Array], Array]) -> Callable[[Array, Array], Array]:
    return auto_vmap(1, 1, 1)(fn)  # E: three ranks, two parameters (unnamed)


# Ranks held in variables are checked by their type; options are not ranks.
DIMS = "n n"
VARIADIC: Final = "*b n"
flag = True
dims_ranks = {"a": (1, [DIMS])}
auto_vmap(a=DIMS)  # a dim string, held in a variable
auto_vmap(a=(1, [DIMS]))  # dim strings deep in a pytree
auto_vmap(a=VARIADIC)  # E: a dim string with no fixed rank, through a `Final` name
auto_vmap(a=(1, [VARIADIC]))  # E: deep in a pytree
auto_vmap(a=flag)  # E: a `bool` rank, held in a variable
auto_vmap(a=np.int64(1), b=(np.int32(0), None))  # NumPy integers are ranks
auto_vmap(a=1, **{"check": False, "chunk_size": 8})  # options, from a literal dict
auto_vmap(a=1, **{"b": -1})  # E: a negative rank, from a literal dict
auto_vmap(**dims_ranks)  # ranks from a dict variable are not checked
auto_vmap(check=flag, chunk_size=None)
CHECK: Final = False
CHUNK: Final = 0
auto_vmap(check=CHECK)
auto_vmap(chunk_size=CHUNK)  # E: `chunk_size` is at least 1, through a `Final` name
auto_vmap(check=1)  # E: `check` takes a bool (the types take an int for a rank)
auto_vmap(a=1, **{"check": 1})  # E: `check` takes a bool
auto_vmap(chunk_size=0)  # E: `chunk_size` is at least 1
auto_vmap(chunk_size=True)  # E: `chunk_size` is not a bool
auto_vmap(loss, chunk_size=0)  # E: options of `auto_vmap(fn, ...)` too
positional_from_list = auto_vmap(*[1, 1])(loss)
too_many_from_list = auto_vmap(*[1, 1, 1])(loss)  # E: three ranks, two parameters


# `async def` and generator functions are refused (a bare `@auto_vmap` is reported by mypy's
# `deprecated` error code, not by the plugin).
@auto_vmap(a=1)  # E: an `async def` function
async def fetch(a: Array) -> Array:
    return a


@auto_vmap(a=1)  # E: a generator function
def generate(a: Array) -> Iterator[Array]:
    yield a


async def fetch_one(a: Array) -> Array:
    return a


fetch_later = auto_vmap(fetch_one)  # E: an `async def` function


# Options of the wrong type: the stub's form for `auto_vmap(**ranks)` takes each of these for a
# rank (a str, an int, a sequence), so only the plugin reports them.
CHUNK_SIZE: Final = 8
AXIS: Final = 0
auto_vmap(chunk_size=str(CHUNK_SIZE))  # E: a str
auto_vmap(axis_name=0)  # E: an int
auto_vmap(axis_name=AXIS)  # E: an int, through a `Final` name
auto_vmap(spmd_axis_name=["data"])  # E: a list, not a tuple
auto_vmap(signature=("(n)->()",))  # E: a tuple of signatures
auto_vmap(signature=3)  # E: an int
auto_vmap(signature=b"(n)->()")  # E: bytes
auto_vmap(chunk_size=8, axis_name="batch")  # E: a collective needs the whole batch at once


@auto_vmap(v=1, axis_name=1)  # E: `axis_name` takes a str
def scaled(v: Array) -> Array:
    return v


class Config:
    SIGNATURE = ("(n)->()",)
    CHUNK = "8"
    AXIS_NAME = "batch"


auto_vmap(signature=Config.SIGNATURE)  # E: a tuple, through a class attribute
auto_vmap(chunk_size=Config.CHUNK)  # E: a str, through a class attribute
auto_vmap(chunk_size=4, axis_name=Config.AXIS_NAME)  # E: both, through a class attribute
maybe_axis: str | None = None
auto_vmap(axis_name="batch", spmd_axis_name=("data", "model"))
auto_vmap(chunk_size=CHUNK_SIZE, axis_name=None)  # `None` gives no axis name
auto_vmap(chunk_size=8, axis_name=maybe_axis)  # perhaps `None`: not reported


def sharded(spec: PartitionSpec) -> AutoVmap:
    return auto_vmap(spmd_axis_name=spec, signature=None)


# An option named like a parameter of the function is ambiguous: option or rank?
@auto_vmap(v=1, check=False)  # E: the function has a parameter `check`
def gated(v: Array, check: bool) -> Array:
    return v


def gate(v: Array, chunk_size: int) -> Array:
    return v


gated_by_call = auto_vmap(gate, chunk_size=2)  # E: `chunk_size` is a parameter of `gate`
gated_ok = auto_vmap(1, None)(gate)  # ranked positionally: no option given
