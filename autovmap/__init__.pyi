"""The typed public surface of `autovmap`: what mypy and pyright see.

`stubs/autovmap/__init__.pyi` is a checked copy of this file: edit this one, then copy it over.
Every name declared here must exist at run time (`python -m mypy.stubtest autovmap` checks).
Docstrings repeat the first line of the code's, for editors that read only the stub.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeAlias, TypeVar, overload

from jax import Array
from jaxtyping import TypeCheckError

__version__: str

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")
# A function returning a Python scalar gets its own result back from a call with no batch
# dimensions, and a `jax.Array` from a call with some: its batched version returns
# `Array | <scalar>`. Constrained, narrowest first, so `-> int` gives `Array | int`.
_S = TypeVar("_S", bool, int, float, complex)

# A rank: an int >= 0, `None` (not batched), or a pytree of those, like `jax.vmap`'s `in_axes`.
# Negative and bool ranks are run-time errors that this type cannot exclude, and mypy accepts a
# `str` as a sequence: the mypy plugin `autovmap.mypy_plugin` reports such literal ranks.
_Rank: TypeAlias = int | None | Sequence[_Rank] | Mapping[Any, _Rank]

class AutoVmapError(Exception):
    """Base class of every error raised by `autovmap` itself."""

class RankSpecError(AutoVmapError, TypeError, ValueError):
    """A rank specification is invalid; raised when decorating."""

class BatchShapeError(AutoVmapError, ValueError):
    """The arguments of a call do not fit the ranks; raised before `jax.vmap` runs."""

class RankTooLargeError(BatchShapeError):
    """An array argument has fewer dimensions than its per-example rank."""

class BroadcastError(BatchShapeError):
    """The batch shapes of the arguments do not broadcast against each other."""

class TreeStructureError(BatchShapeError):
    """An argument's pytree structure does not match the pytree of ranks given for it."""

class AnnotationCheckError(AutoVmapError, TypeCheckError):
    """An example does not match the function's jaxtyping annotations (shape, dims or dtype)."""

# The overloads below come in pairs: a function returning a Python scalar, then any other.
# `staticmethod` objects are callable, so their overloads come before the plain callables';
# mypy takes those as unsafely overlapping, which they are not, as they come first.

class AutoVmap:
    """A configured `auto_vmap` decorator: call it on a function to get the batched function."""

    def __init__(
        self,
        *positional_ranks: _Rank,
        check: bool = True,
        chunk_size: int | None = None,
        **keyword_ranks: _Rank,
    ) -> None: ...
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: staticmethod[_P, _S]
    ) -> staticmethod[_P, Array | _S]: ...
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: staticmethod[_P, _R]
    ) -> staticmethod[_P, _R]: ...
    @overload
    def __call__(self, fn: classmethod[_T, _P, _S]) -> classmethod[_T, _P, Array | _S]: ...
    @overload
    def __call__(self, fn: classmethod[_T, _P, _R]) -> classmethod[_T, _P, _R]: ...
    @overload
    def __call__(self, fn: Callable[_P, _S]) -> Callable[_P, Array | _S]: ...
    @overload
    def __call__(self, fn: Callable[_P, _R]) -> Callable[_P, _R]: ...

# `@auto_vmap` and `auto_vmap(fn)`: ranks from the annotations.
@overload
def auto_vmap(  # type: ignore[overload-overlap]
    fn: staticmethod[_P, _S], /, *, check: bool = True, chunk_size: int | None = None
) -> staticmethod[_P, Array | _S]: ...
@overload
def auto_vmap(  # type: ignore[overload-overlap]
    fn: staticmethod[_P, _R], /, *, check: bool = True, chunk_size: int | None = None
) -> staticmethod[_P, _R]: ...
@overload
def auto_vmap(
    fn: classmethod[_T, _P, _S], /, *, check: bool = True, chunk_size: int | None = None
) -> classmethod[_T, _P, Array | _S]: ...
@overload
def auto_vmap(
    fn: classmethod[_T, _P, _R], /, *, check: bool = True, chunk_size: int | None = None
) -> classmethod[_T, _P, _R]: ...
@overload
def auto_vmap(
    fn: Callable[_P, _S], /, *, check: bool = True, chunk_size: int | None = None
) -> Callable[_P, Array | _S]: ...
@overload
def auto_vmap(
    fn: Callable[_P, _R], /, *, check: bool = True, chunk_size: int | None = None
) -> Callable[_P, _R]: ...

# `@auto_vmap(...)`, with ranks or without: the decorator.
@overload
def auto_vmap(
    *ranks: _Rank, check: bool = True, chunk_size: int | None = None, **keyword_ranks: _Rank
) -> AutoVmap: ...

autovmap = auto_vmap

@dataclass(frozen=True)
class LeafPlan:
    """One ranked array leaf of a call."""

    argument: str
    rank: int
    source: str
    shape: tuple[int, ...]
    batch_shape: tuple[int, ...]
    in_axes: tuple[int | None, ...] | None = None

@dataclass(frozen=True)
class Plan:
    """What calling an auto-vmapped function with given arguments does, worked out without
    running it."""

    function: str
    batch_shape: tuple[int, ...]
    leaves: tuple[LeafPlan, ...]
    levels: int
    eager_levels: int
    chunk_size: int | None = None

def plan(fn: Callable[_P, Any], /, *args: _P.args, **kwargs: _P.kwargs) -> Plan: ...
