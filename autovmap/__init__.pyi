"""The typed public surface of `autovmap` (what mypy and pyright see).

`stubs/autovmap/__init__.pyi` is a checked copy of this file: edit this one, then copy it.
Every name here must exist at run time (`python -m mypy.stubtest autovmap` checks it).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeAlias, TypeVar, overload

from jax import Array

from ._errors import AutoVmapError as AutoVmapError
from ._errors import BatchShapeError as BatchShapeError
from ._errors import BroadcastError as BroadcastError
from ._errors import RankSpecError as RankSpecError
from ._errors import RankTooLargeError as RankTooLargeError
from ._errors import TreeStructureError as TreeStructureError

__version__: str

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")
# A function returning a Python scalar gets it back unchanged when a call has no batch
# dimensions, and a `jax.Array` when it has some: such functions return `Array | <scalar>`.
# Constrained (narrowest first), so `-> int` gives `Array | int`, not `Array | complex`.
_S = TypeVar("_S", bool, int, float, complex)

# A rank: an int >= 0, None (not batched), or a pytree of those, like `jax.vmap`'s `in_axes`.
# Negative and bool ranks are run-time errors that types cannot express; the mypy plugin
# `autovmap.mypy_plugin` reports literal ones.
_Rank: TypeAlias = int | None | Sequence[_Rank] | Mapping[Any, _Rank]

class AutoVmap:
    """A configured `auto_vmap` decorator: call it on a function to get the batched function."""

    def __init__(
        self,
        *positional_ranks: _Rank,
        check: bool = True,
        chunk_size: int | None = None,
        **keyword_ranks: _Rank,
    ) -> None: ...
    # staticmethod objects are callable, so they come before the plain callables.
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: staticmethod[_P, _S]
    ) -> staticmethod[_P, Array | _S]: ...
    @overload
    def __call__(self, fn: staticmethod[_P, _R]) -> staticmethod[_P, _R]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: classmethod[_T, _P, _S]) -> classmethod[_T, _P, Array | _S]: ...
    @overload
    def __call__(self, fn: classmethod[_T, _P, _R]) -> classmethod[_T, _P, _R]: ...
    @overload
    def __call__(self, fn: Callable[_P, _S]) -> Callable[_P, Array | _S]: ...
    @overload
    def __call__(self, fn: Callable[_P, _R]) -> Callable[_P, _R]: ...

# `@auto_vmap` and `auto_vmap(fn)`: ranks from annotations.
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

# `@auto_vmap(...)` with ranks (or none): a decorator.
@overload
def auto_vmap(
    *ranks: _Rank, check: bool = True, chunk_size: int | None = None, **keyword_ranks: _Rank
) -> AutoVmap: ...

autovmap = auto_vmap

# Reserved for `plan(fn, *args, **kwargs) -> Plan` and the `Plan` class, once they exist.
