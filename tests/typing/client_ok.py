"""Typed uses of `autovmap` that must check clean under `mypy --strict` and strict pyright.

tests/test_typing.py type-checks this file, with and without the mypy plugin, and also runs it,
so the types it pins are the ones the calls really have. `assert_type` pins whole signatures
where both checkers spell them the same way (positional-only parameters); elsewhere it pins the
types of calls, and client_errors.py shows that the parameters are kept.
"""

import functools
from collections.abc import Callable
from typing import Any, Final, NamedTuple, TypeVar, assert_type

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jaxtyping import Float
from numpy.typing import NDArray
from typing_extensions import TypedDict

import autovmap as autovmap_module
from autovmap import (
    AnnotationCheckError,
    AutoVmap,
    AutoVmapError,
    BatchShapeError,
    BroadcastError,
    CoreDimError,
    OutputSignatureError,
    RankSpecError,
    RankTooLargeError,
    TreeStructureError,
    auto_vmap,
    autovmap,
    vectorize,
)


def ones(*shape: int) -> Array:
    # jax leaves a parameter of `jnp.ones` (`device`) partly untyped, which strict pyright reports.
    return jnp.ones(shape)  # pyright: ignore[reportUnknownMemberType]


x = ones(4, 3)  # four vectors of three
m = ones(3, 3)  # one matrix


# Every decorator form keeps the parameters and the return type.
@auto_vmap
def annotated(v: Float[Array, " n"], w: Float[Array, "n n"], /) -> Float[Array, ""]:
    return v @ w @ v


@auto_vmap()
def no_ranks(v: Float[Array, " n"], /) -> Array:
    return v


@auto_vmap(1, 2)
def positional(v: Array, w: Array, /) -> Array:
    return w @ v


@auto_vmap(v=1, w=2, check=False, chunk_size=2)
def keywords(v: Array, w: Array, /) -> Array:
    return w @ v


def plain(v: Float[Array, " n"], w: Float[Array, "n n"], /) -> Float[Array, " n"]:
    return w @ v


@autovmap(1, w=2)
def alias(v: Array, w: Array, /) -> Array:
    return w @ v


assert_type(annotated, Callable[[Array, Array], Array])
assert_type(no_ranks, Callable[[Array], Array])
assert_type(positional, Callable[[Array, Array], Array])
assert_type(keywords, Callable[[Array, Array], Array])
assert_type(alias, Callable[[Array, Array], Array])
assert_type(auto_vmap(plain), Callable[[Array, Array], Array])
assert_type(auto_vmap(plain, check=False), Callable[[Array, Array], Array])
assert_type(autovmap(plain), Callable[[Array, Array], Array])

# The configured decorator is an `AutoVmap`; calling it decorates.
matvec_ranks = auto_vmap(1, w=2)
assert_type(matvec_ranks, AutoVmap)
assert_type(matvec_ranks(plain), Callable[[Array, Array], Array])
assert_type(AutoVmap(v=1, w=2)(plain), Callable[[Array, Array], Array])
assert_type(positional(x, m), Array)
assert positional(x, m).shape == (4, 3)


# Keyword-only parameters, defaults, `*args` and `**kwargs`, ranks as pytrees.
@auto_vmap(v=1, scale=0, rest=1, options=None)
def kinds(v: Array, *rest: Array, scale: float = 1.0, **options: str) -> Array:
    return scale * v + sum(rest, 0 * v)


assert_type(kinds(x, x, x, scale=2.0, mode="fast"), Array)
assert kinds(x, scale=2.0).shape == (4, 3)

# A rank is an int, `None`, or a pytree of those; `Final` literal ranks too.
VECTOR: Final = 1


@auto_vmap(pair=(VECTOR, None), tree={"w": 2, "bs": [1, 1]}, flag=None)
def pytrees(pair: tuple[Array, str], tree: dict[str, Array | list[Array]], flag: bool) -> Array:
    return pair[0]


tree: dict[str, Array | list[Array]] = {"w": m, "bs": [x, x]}
assert_type(pytrees((x, "label"), tree, True), Array)
assert pytrees((x, "label"), tree, True).shape == (4, 3)


# Ranks from a dictionary, and NumPy integer ranks.
matvec_ranks_by_name: dict[str, int] = {"v": 1, "w": 2}


@auto_vmap(**matvec_ranks_by_name)
def from_dict(v: Array, w: Array, /) -> Array:
    return w @ v


@auto_vmap(v=np.int64(1), w=np.int32(2))
def numpy_ranks(v: Array, w: Array, /) -> Array:
    return w @ v


assert_type(from_dict, Callable[[Array, Array], Array])
assert_type(AutoVmap(**matvec_ranks_by_name), AutoVmap)
assert_type(numpy_ranks, Callable[[Array, Array], Array])
assert from_dict(x, m).shape == numpy_ranks(x, m).shape == (4, 3)


# A function returning `Any` (or jaxtyping's `PyTree`, `Any` to a checker) returns `Any`.
@auto_vmap(v=1)
def summary(v: Array) -> Any:
    return {"mean": v.mean(), "max": v.max()}


stats = summary(x)
assert_type(stats, Any)
assert sorted(stats.items())[0][1].shape == (4,)

# A generic function stays generic.
T = TypeVar("T")


@auto_vmap(tree=1)
def same(tree: T) -> T:
    return tree


assert_type(same(x), Array)
assert_type(same({"v": x}), dict[str, Array])
assert same({"v": x})["v"].shape == (4, 3)


# A callable object becomes a function with its `__call__`'s parameters (it is one at run time).
class Scale:
    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, v: Array, /) -> Array:
        return self.factor * v


scaled = auto_vmap(v=1)(Scale(2.0))
assert_type(scaled, Callable[[Array], Array])
assert scaled(x).shape == (4, 3)

# A lambda takes its parameter types from the declared type, as with `jax.vmap`.
doubled: Callable[[Array], Array] = auto_vmap(x=1)(lambda x: 2 * x)
assert doubled(x).shape == (4, 3)


# A function returning a Python scalar returns it unchanged from an unbatched call, and a
# `jax.Array` from a batched one: the batched function returns `Array | <scalar>`. So do NumPy
# scalars and arrays, optional scalars, and containers of scalars (their batched form).
@auto_vmap(v=1)
def scalar(v: Array) -> float:
    return 2.0


@auto_vmap(v=1)
def count(v: Array) -> int:
    return 3


@auto_vmap(v=1)
def flag(v: Array) -> bool:
    return True


@auto_vmap(v=1)
def maybe(v: Array) -> float | None:
    return 1.0 if v.shape == (3,) else None


@auto_vmap(v=1)
def numpy_scalar(v: Array) -> np.float64:
    return np.float64(2.0)


@auto_vmap(v=1)
def numpy_array(v: Array) -> NDArray[np.float64]:
    return np.zeros(2)


@auto_vmap(v=1)
def pair(v: Array) -> tuple[float, float]:
    return 1.0, 2.0


@auto_vmap(v=1)
def named(v: Array) -> dict[str, float]:
    return {"one": 1.0}


batched_result = scalar(x)
assert_type(batched_result, Array | float)
assert_type(count(x), Array | int)
assert_type(flag(x), Array | bool)
assert isinstance(batched_result, jax.Array) and batched_result.shape == (4,)
assert scalar(x[0]) == 2.0 and isinstance(scalar(x[0]), float)
assert_type(maybe(x), Array | float | None)
assert_type(numpy_scalar(x), Array | np.float64)
assert_type(numpy_array(x), Array | NDArray[np.float64])
assert_type(pair(x), tuple[float, float] | tuple[Array, ...])
assert_type(named(x), dict[str, float] | dict[Any, Array])
assert isinstance(maybe(x), jax.Array) and isinstance(numpy_scalar(x), jax.Array)
assert numpy_array(x).shape == (4, 2) and isinstance(numpy_array(x[0]), np.ndarray)
first, one = pair(x)[0], named(x)["one"]  # `Array | float`: narrowed before use
assert isinstance(first, jax.Array) and isinstance(one, jax.Array) and first.shape == (4,)
assert pair(x[0]) == (1.0, 2.0)


# Methods bind as plain functions would: positional ranks count `self` and `cls`.
class Model:
    def __init__(self, w: Array) -> None:
        self.w = w

    @auto_vmap(None, 1)
    def apply(self, v: Array, /) -> Array:
        return self.w @ v

    @auto_vmap(v=1, w=2)
    @staticmethod
    def static_first(v: Array, w: Array, /) -> Array:
        return w @ v

    @staticmethod
    @auto_vmap(v=1, w=2)
    def static_last(v: Array, w: Array, /) -> Array:
        return w @ v

    @auto_vmap(None, 1)
    @classmethod
    def class_first(cls, v: Array, /) -> Array:
        return v

    @classmethod
    @auto_vmap(None, v=1)
    def class_last(cls, v: Array, /) -> Array:
        return v

    @auto_vmap
    @staticmethod
    def static_bare(v: Float[Array, " n"], /) -> float:
        return 1.0

    @auto_vmap(None, v=1)
    def keyword_only(self, *, v: Array) -> Array:
        return self.w @ v

    @auto_vmap(None, v=1)
    @classmethod
    def class_pair(cls, v: Array, /) -> tuple[float, float]:
        return 1.0, 2.0


model = Model(m)
assert_type(model.apply, Callable[[Array], Array])
assert_type(Model.static_first, Callable[[Array, Array], Array])
assert_type(Model.static_last, Callable[[Array, Array], Array])
assert_type(model.static_first, Callable[[Array, Array], Array])
assert_type(Model.class_first, Callable[[Array], Array])
assert_type(Model.class_last, Callable[[Array], Array])
assert_type(model.class_last, Callable[[Array], Array])
assert_type(Model.static_bare, Callable[[Array], Array | float])
assert_type(model.keyword_only(v=x), Array)
assert_type(Model.class_pair, Callable[[Array], tuple[float, float] | tuple[Array, ...]])
assert model.apply(x).shape == (4, 3)
assert Model.static_first(x, m).shape == (4, 3)
assert Model.static_last(x, m).shape == (4, 3)
assert Model.class_first(x).shape == (4, 3)
assert Model.class_last(x).shape == (4, 3)
assert model.keyword_only(v=x).shape == (4, 3)
assert isinstance(second := Model.class_pair(x)[1], jax.Array) and second.shape == (4,)

# The error classes and their hierarchy.
errors: tuple[type[AutoVmapError], ...] = (
    RankSpecError,
    BatchShapeError,
    RankTooLargeError,
    BroadcastError,
    TreeStructureError,
    AnnotationCheckError,
    CoreDimError,
    OutputSignatureError,
)
assert all(issubclass(error, AutoVmapError) for error in errors)
assert issubclass(BroadcastError, BatchShapeError) and issubclass(RankSpecError, ValueError)
try:
    positional(ones(2, 3), ones(5, 3, 3))
    raise AssertionError("batch shapes (2,) and (5,) do not broadcast")
except BroadcastError as error:
    assert_type(error, BroadcastError)
assert_type(autovmap_module.__version__, str)


# Named core dims: `signature=` and dim strings; `vectorize` keeps the parameters too.
@auto_vmap(signature="(n),(n,n)->(n)")
def by_signature(v: Array, w: Array, /) -> Array:
    return w @ v


@auto_vmap(v="n", w="n n")
def by_dim_strings(v: Array, w: Array, /) -> Array:
    return w @ v


@auto_vmap({"a": "n", "b": None}, "n n", signature=None)
def by_pytree_dim_strings(p: dict[str, Array], w: Array, /) -> Array:
    return w @ p["a"]


def length(v: Array) -> int:
    return v.size


assert_type(by_signature, Callable[[Array, Array], Array])
assert_type(by_dim_strings, Callable[[Array, Array], Array])
assert_type(vectorize(plain, signature="(n),(n,n)->(n)"), Callable[[Array, Array], Array])
assert_type(vectorize(plain, excluded={1, "w"}), Callable[[Array, Array], Array])
assert_type(vectorize(length, signature="(n)->()")(x), Array | int)
assert by_signature(x, m).shape == (4, 3) and by_dim_strings(x, m).shape == (4, 3)
assert by_pytree_dim_strings({"a": x, "b": m}, m).shape == (4, 3)
try:
    by_signature(x, ones(2, 2))
    raise AssertionError("n is 3 in v and 2 in w")
except CoreDimError as error:
    assert_type(error, CoreDimError)


# A `NamedTuple` keeps its class: a batched call returns one, its fields arrays.
class Stats(NamedTuple):
    mean: Array
    size: int


@auto_vmap(v=1)
def describe(v: Array) -> Stats:
    return Stats(v.mean(), v.size)


described = describe(x)
assert_type(described, Stats)
assert_type(described.mean, Array)
assert isinstance(described, Stats) and described.mean.shape == (4,)
assert isinstance(described.size, jax.Array)  # declared `int`: an array, batched


# `vectorize` has the rows of `auto_vmap`: generic functions stay generic, containers of scalars
# may hold arrays, a lambda takes its parameter types from the declared type.
def identity(t: T) -> T:
    return t


def moments(v: Array) -> tuple[float, float]:
    return 1.0, 2.0


assert_type(vectorize(identity)(x), Array)
assert vectorize(identity)(x).shape == (4, 3)
vectorized_moments = vectorize(moments, signature="(n)->(),()")
assert_type(vectorized_moments(x), tuple[float, float] | tuple[Array, ...])
assert all(isinstance(moment, jax.Array) for moment in vectorized_moments(x))
vectorized_lambda: Callable[[Array], Array] = vectorize(lambda v: 2 * v)
assert vectorized_lambda(x).shape == (4, 3)


# Option presets: a closed `TypedDict` (PEP 728) of options, spread into the call with ranks;
# closed, so pyright knows it holds no other key, which would land in the ranks.
class Preset(TypedDict, total=False, closed=True):
    check: bool
    chunk_size: int | None


FAST: Final[Preset] = {"check": False, "chunk_size": 2}


@auto_vmap(v=1, w=2, **FAST)
def preset_matvec(v: Array, w: Array, /) -> Array:
    return w @ v


assert_type(preset_matvec, Callable[[Array, Array], Array])
assert preset_matvec(x, m).shape == (4, 3)

# Or a configured decorator kept in a name, with ranks from the annotations.
unchecked = auto_vmap(check=False)


@unchecked
def unchecked_matvec(v: Float[Array, " n"], w: Float[Array, "n n"], /) -> Float[Array, " n"]:
    return w @ v


assert_type(unchecked_matvec, Callable[[Array, Array], Array])
assert unchecked_matvec(x, m).shape == (4, 3)


# Other uses of `functools.partial` type as they do without the plugin (which hooks `partial`).
parse_binary = functools.partial(int, base=2)
assert_type(parse_binary("101"), int)
assert parse_binary("101") == 5
