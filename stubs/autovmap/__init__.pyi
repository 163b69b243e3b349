"""The typed public surface of `autovmap`: what mypy and pyright see.

`stubs/autovmap/__init__.pyi` is a checked copy of this file: edit this one, then copy it over.
Every name declared here must exist at run time (`python -m mypy.stubtest autovmap` checks).
Docstrings repeat the first line of the code's, for editors that read only the stub.
"""

# mypy finds most pairs of overloads below "unsafely overlapping": they are not, as the
# narrower comes first and a call takes the first that matches (pyright agrees).
# mypy: disable-error-code="overload-overlap"

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeAlias, TypedDict, TypeVar, Unpack, final, overload

import numpy as np
from jax import Array
from jaxtyping import TypeCheckError
from typing_extensions import deprecated

__version__: str

# A rank: an int >= 0 (a NumPy integer too), `None` (not batched), or a pytree of those, like
# `jax.vmap`'s `in_axes`. Negative and bool ranks are run-time errors that this type cannot
# exclude, and mypy accepts a `str` as a sequence: the mypy plugin `autovmap.mypy_plugin`
# reports those. Not `SupportsIndex`: NumPy and JAX arrays have `__index__` too.
_Rank: TypeAlias = int | np.integer[Any] | None | Sequence[_Rank] | Mapping[Any, _Rank]

class _Options(TypedDict, total=False):
    """The options `auto_vmap` takes besides ranks: add one here, and to the two rank overloads
    of `auto_vmap` and of `AutoVmap.__init__`."""

    check: bool
    chunk_size: int | None

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

# The return-type rule (docs/typing.md has it as a table, which tests/test_typing.py compares
# with what the checkers report). A call with no batch dimensions returns the function's own
# result; a batched call returns that pytree with a `jax.Array` at every leaf. So:
#
# - a return type whose leaves are already arrays (or `None`), `Any`, a type variable, or a
#   function the rules below do not cover keeps its type, exactly (overloads, Protocols);
# - a Python or NumPy scalar, or a NumPy array, `S` becomes `Array | S`;
# - a tuple, sequence or mapping of those and arrays `C` becomes `C | tuple[Array, ...]`,
#   `C | list[Array]` or `C | dict[Any, Array]`;
# - an `async def` function is rejected: its overload is deprecated (reported by pyright in
#   strict mode, and by mypy with `enable_error_code = deprecated` or the plugin), and it
#   returns a `_AsyncFunctionNotBatchable`, which cannot be called.
#
# Each row of the rule matches on a bare type variable, so that a function returning `Any` gives
# mypy the same argument type for every row: mypy then takes the first row that matches (the
# one that keeps `Any`) instead of calling the whole result `Any`. `staticmethod` objects are
# callable, and classmethod objects are not: the rows that change the return type come in
# three kinds, `staticmethod` first. pyright needs these (mypy strips `staticmethod` and
# `classmethod` from a decorator list before applying the rest).

_P = ParamSpec("_P")
_T = TypeVar("_T")  # the class of a classmethod

# Leaves that a batched call turns into `jax.Array`s.
_Scalar: TypeAlias = bool | int | float | complex | np.generic | np.ndarray[Any, Any]
# Return types that a batched call leaves as they are.
_Arrays: TypeAlias = Array | None | Sequence[Array] | Mapping[Any, Array]
_Kept = TypeVar(
    "_Kept", bound=Callable[..., _Arrays] | classmethod[Any, ..., _Arrays]
)
_Async = TypeVar(
    "_Async",
    bound=Callable[..., Coroutine[Any, Any, Any]]
    | staticmethod[..., Coroutine[Any, Any, Any]]
    | classmethod[Any, ..., Coroutine[Any, Any, Any]],
)
_Leaf = TypeVar("_Leaf", bound=_Scalar | None)
_Tuple = TypeVar("_Tuple", bound=tuple[Array | _Scalar, ...])
_Sequence = TypeVar("_Sequence", bound=Sequence[Array | _Scalar])
_Mapping = TypeVar("_Mapping", bound=Mapping[Any, Array | _Scalar])
_Other = TypeVar(
    "_Other", bound=Callable[..., Any] | staticmethod[..., Any] | classmethod[Any, ..., Any]
)

@final
class _AsyncFunctionNotBatchable:
    """What `auto_vmap` gives an `async def` function, statically: it cannot batch one."""

class AutoVmap:
    """A configured `auto_vmap` decorator: call it on a function to get the batched function."""

    @overload
    def __init__(
        self,
        *positional_ranks: _Rank,
        check: bool = True,
        chunk_size: int | None = None,
        **keyword_ranks: _Rank,
    ) -> None: ...
    # `AutoVmap(**ranks)` with a `dict[str, int]`: both checkers match a `**` argument against
    # every keyword parameter, `check: bool` included.
    @overload
    def __init__(self, *positional_ranks: _Rank, **keyword_ranks: _Rank) -> None: ...
    @overload
    def __call__(self, fn: _Kept) -> _Kept: ...
    @overload
    @deprecated("`auto_vmap` cannot batch an `async def` function")
    def __call__(self, fn: _Async) -> _AsyncFunctionNotBatchable: ...
    @overload
    def __call__(self, fn: staticmethod[_P, _Leaf]) -> staticmethod[_P, Array | _Leaf]: ...
    @overload
    def __call__(
        self, fn: staticmethod[_P, _Tuple]
    ) -> staticmethod[_P, _Tuple | tuple[Array, ...]]: ...
    @overload
    def __call__(
        self, fn: staticmethod[_P, _Sequence]
    ) -> staticmethod[_P, _Sequence | list[Array]]: ...
    @overload
    def __call__(
        self, fn: staticmethod[_P, _Mapping]
    ) -> staticmethod[_P, _Mapping | dict[Any, Array]]: ...
    @overload
    def __call__(
        self, fn: classmethod[_T, _P, _Leaf]
    ) -> classmethod[_T, _P, Array | _Leaf]: ...
    @overload
    def __call__(
        self, fn: classmethod[_T, _P, _Tuple]
    ) -> classmethod[_T, _P, _Tuple | tuple[Array, ...]]: ...
    @overload
    def __call__(
        self, fn: classmethod[_T, _P, _Sequence]
    ) -> classmethod[_T, _P, _Sequence | list[Array]]: ...
    @overload
    def __call__(
        self, fn: classmethod[_T, _P, _Mapping]
    ) -> classmethod[_T, _P, _Mapping | dict[Any, Array]]: ...
    @overload
    def __call__(self, fn: Callable[_P, _Leaf]) -> Callable[_P, Array | _Leaf]: ...
    @overload
    def __call__(
        self, fn: Callable[_P, _Tuple]
    ) -> Callable[_P, _Tuple | tuple[Array, ...]]: ...
    @overload
    def __call__(
        self, fn: Callable[_P, _Sequence]
    ) -> Callable[_P, _Sequence | list[Array]]: ...
    @overload
    def __call__(
        self, fn: Callable[_P, _Mapping]
    ) -> Callable[_P, _Mapping | dict[Any, Array]]: ...
    @overload
    def __call__(self, fn: _Other) -> _Other: ...

# `@auto_vmap` and `auto_vmap(fn, ...)`: ranks from the annotations. The same rows as
# `AutoVmap.__call__`, with the options.
@overload
def auto_vmap(fn: _Kept, /, **options: Unpack[_Options]) -> _Kept: ...
@overload
@deprecated("`auto_vmap` cannot batch an `async def` function")
def auto_vmap(fn: _Async, /, **options: Unpack[_Options]) -> _AsyncFunctionNotBatchable: ...
@overload
def auto_vmap(
    fn: staticmethod[_P, _Leaf], /, **options: Unpack[_Options]
) -> staticmethod[_P, Array | _Leaf]: ...
@overload
def auto_vmap(
    fn: staticmethod[_P, _Tuple], /, **options: Unpack[_Options]
) -> staticmethod[_P, _Tuple | tuple[Array, ...]]: ...
@overload
def auto_vmap(
    fn: staticmethod[_P, _Sequence], /, **options: Unpack[_Options]
) -> staticmethod[_P, _Sequence | list[Array]]: ...
@overload
def auto_vmap(
    fn: staticmethod[_P, _Mapping], /, **options: Unpack[_Options]
) -> staticmethod[_P, _Mapping | dict[Any, Array]]: ...
@overload
def auto_vmap(
    fn: classmethod[_T, _P, _Leaf], /, **options: Unpack[_Options]
) -> classmethod[_T, _P, Array | _Leaf]: ...
@overload
def auto_vmap(
    fn: classmethod[_T, _P, _Tuple], /, **options: Unpack[_Options]
) -> classmethod[_T, _P, _Tuple | tuple[Array, ...]]: ...
@overload
def auto_vmap(
    fn: classmethod[_T, _P, _Sequence], /, **options: Unpack[_Options]
) -> classmethod[_T, _P, _Sequence | list[Array]]: ...
@overload
def auto_vmap(
    fn: classmethod[_T, _P, _Mapping], /, **options: Unpack[_Options]
) -> classmethod[_T, _P, _Mapping | dict[Any, Array]]: ...
@overload
def auto_vmap(
    fn: Callable[_P, _Leaf], /, **options: Unpack[_Options]
) -> Callable[_P, Array | _Leaf]: ...
@overload
def auto_vmap(
    fn: Callable[_P, _Tuple], /, **options: Unpack[_Options]
) -> Callable[_P, _Tuple | tuple[Array, ...]]: ...
@overload
def auto_vmap(
    fn: Callable[_P, _Sequence], /, **options: Unpack[_Options]
) -> Callable[_P, _Sequence | list[Array]]: ...
@overload
def auto_vmap(
    fn: Callable[_P, _Mapping], /, **options: Unpack[_Options]
) -> Callable[_P, _Mapping | dict[Any, Array]]: ...
@overload
def auto_vmap(fn: _Other, /, **options: Unpack[_Options]) -> _Other: ...

# `@auto_vmap(...)`, with ranks or without: the decorator. The second overload takes
# `auto_vmap(**ranks)` with a `dict[str, int]` (see `AutoVmap.__init__`).
@overload
def auto_vmap(
    *ranks: _Rank, check: bool = True, chunk_size: int | None = None, **keyword_ranks: _Rank
) -> AutoVmap: ...
@overload
def auto_vmap(*ranks: _Rank, **keyword_ranks: _Rank) -> AutoVmap: ...

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
