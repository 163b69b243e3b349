"""The typed public surface of `autovmap`: what mypy and pyright see.

`stubs/autovmap/__init__.pyi` is a checked copy of this file: edit this one, then copy it over.
Every name declared here must exist at run time (`python -m mypy.stubtest autovmap` checks).
Docstrings repeat the first line of the code's, for editors that read only the stub.
"""

# mypy takes most pairs of the overloads below for unsafely overlapping: they are not, as the
# narrower comes first and a call takes the first that matches.
# mypy: disable-error-code="overload-overlap"

from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from types import CodeType
from typing import (
    Any,
    ParamSpec,
    Protocol,
    TypeAlias,
    TypedDict,
    TypeVar,
    Unpack,
    final,
    overload,
)

import numpy as np
from jax import Array
from jax.sharding import PartitionSpec
from jaxtyping import TypeCheckError
from typing_extensions import deprecated

__version__: str

# A rank: an int >= 0 (a NumPy integer too), `None` (not batched), a jaxtyping-style dim string
# (`"n k"`: rank 2, with named dims), or a pytree of those, like `jax.vmap`'s `in_axes`. Not
# `SupportsIndex`, which NumPy and JAX arrays satisfy too. Negative and bool ranks, and dim
# strings with no fixed rank, are errors that this type cannot exclude: the mypy plugin
# `autovmap.mypy_plugin` reports those.
_Rank: TypeAlias = int | np.integer[Any] | str | None | Sequence[_Rank] | Mapping[Any, _Rank]

class _Options(TypedDict, total=False):
    """The options of `auto_vmap(fn, ...)`. A new option goes here, and in the first overload
    of `AutoVmap.__init__` and of `auto_vmap(*ranks, ...)`."""

    check: bool
    chunk_size: int | None
    axis_name: str | None
    spmd_axis_name: str | tuple[str, ...] | PartitionSpec | None
    signature: str | None

class AutoVmapError(Exception):
    """Base class of every error raised by `autovmap` itself."""

class RankSpecError(AutoVmapError, TypeError, ValueError):
    """A rank specification is invalid; raised when decorating."""

class OptionError(AutoVmapError, TypeError, ValueError):
    """An option of `auto_vmap` is invalid; raised when the option is written."""

class BatchShapeError(AutoVmapError, ValueError):
    """The arguments of a call do not fit the ranks; raised before `jax.vmap` runs."""

class RankTooLargeError(BatchShapeError):
    """An array argument has fewer dimensions than its per-example rank."""

class BroadcastError(BatchShapeError):
    """The batch shapes of the arguments do not broadcast against each other."""

class TreeStructureError(BatchShapeError):
    """An argument's pytree structure does not match the pytree of ranks given for it."""

class CoreDimError(BatchShapeError):
    """Like-named core dims of the arguments have different sizes, or a core dim of fixed size
    has another; from a `signature=`, dim strings such as `v="n"`, or annotations."""

class OutputSignatureError(AutoVmapError, TypeError, ValueError):
    """One example's return value does not fit the outputs of the signature: not a tuple of
    the declared length, an output of another rank, or a named dim of another size."""

class AnnotationCheckError(AutoVmapError, TypeCheckError):
    """An example does not match the function's jaxtyping annotations (shape, dims or dtype)."""

class NothingToBatchWarning(UserWarning):
    """`auto_vmap` found no parameter to batch (none gets a rank from any source)."""

# `Batched[T, "e"]`, a stack of `T`s, is `T` to type checkers, as jaxtyping's `Float[Array, "n"]`
# is `Array`: its leading dims are checked at run time. `Annotated` is a type form, which cannot
# be assigned to a name: only an import can rename it, and a renamed import is exported from a
# stub only when `__all__` lists it (as the module's own `__all__` does).
from typing import Annotated as Batched  # noqa: E402

__all__ = [
    "AnnotationCheckError",
    "AutoVmap",
    "AutoVmapError",
    "BatchShapeError",
    "Batched",
    "BroadcastError",
    "CoreDimError",
    "LeafPlan",
    "NothingToBatchWarning",
    "OptionError",
    "OutputSignatureError",
    "Plan",
    "RankSpecError",
    "RankTooLargeError",
    "TreeStructureError",
    "auto_vmap",
    "autovmap",
    "plan",
    "vectorize",
]

# The return-type rule; docs/typing.md has it as a table, which tests/test_typing.py compares
# with what the checkers report. A call with no batch dimensions returns the function's own
# result, and a batched call returns it with a `jax.Array` at every leaf. So a function whose
# return type is
#
# - arrays, or a tuple, list or mapping of arrays, or `None`, `Any` (jaxtyping's `PyTree`) or
#   a type variable, keeps its type, as with `jax.vmap`;
# - a Python or NumPy scalar or a NumPy array `S` (or `S | None`) returns `Array | S`;
# - a tuple `T`, other sequence `L` or mapping `M` of those and arrays returns
#   `T | tuple[Array, ...]`, `L | list[Array]` or `M | dict[Any, Array]`;
# - a coroutine, generator or iterator is refused: its overload is deprecated, and returns a
#   `_CoroutineOrGeneratorNotBatchable`, which cannot be called;
# - anything else (a dataclass, an equinox Module, a union of arrays and scalars) keeps its
#   type.
#
# A function "keeps its type" exactly (`_KeptFunction`, `_OtherFunction`): generic functions
# stay generic, overloaded ones overloaded. Other callables, such as callable objects and
# `functools.partial`, become the function `auto_vmap` returns for them, `Callable[_P, R]`:
# they are told apart by `__code__`, which functions have (`_Function`). In every row a
# callable keeps its parameters (`_P`).
#
# Each row matches on a bare type variable: given a function returning `Any`, mypy then sees
# the same argument type in every row that matches, and takes the first (which keeps `Any`),
# rather than calling the whole result `Any`. Where a return type is expected (`return
# auto_vmap(v=1)(f)`), the rows on `Callable[_P, ...]` take their parameters from it, the
# argument types differ, and mypy alone does call the result `Any`: the plugin
# (`autovmap._mypy_returns`) gives the first row's type, as it does for overloaded functions,
# whose overloads it takes through the rows one by one. The rows that change the return type come in
# three kinds, `staticmethod` first, as `staticmethod` objects are callable. pyright needs
# those: mypy drops `staticmethod` and `classmethod` from a decorator list before applying the
# rest.

_P = ParamSpec("_P")
_T = TypeVar("_T")  # the class of a classmethod
_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)

class _Function(Protocol[_R_co]):
    """A function, bound method or lambda (not a callable object), returning `_R_co`."""

    @property
    def __code__(self) -> CodeType: ...
    def __call__(self, *args: Any, **kwargs: Any) -> _R_co: ...

# The leaves that a batched call turns into `jax.Array`s.
_Scalar: TypeAlias = bool | int | float | complex | np.generic | np.ndarray[Any, Any]

class _NamedTuple(Protocol):
    """A `NamedTuple` (only they have `_asdict`): kept whole, as a dataclass is, not taken for
    a tuple of scalars (its scalar fields are arrays when batched, which its type cannot say)."""

    def _asdict(self) -> dict[str, Any]: ...

# The return types that a batched call returns as they are.
_Arrays: TypeAlias = Array | None | Sequence[Array] | Mapping[Any, Array] | _NamedTuple
_Refused: TypeAlias = Coroutine[Any, Any, Any] | Iterator[Any] | AsyncIterator[Any]

_KeptFunction = TypeVar(
    "_KeptFunction",
    bound=_Function[_Arrays] | staticmethod[..., _Arrays] | classmethod[Any, ..., _Arrays],
)
_NotBatchable = TypeVar(
    "_NotBatchable",
    bound=Callable[..., _Refused] | staticmethod[..., _Refused] | classmethod[Any, ..., _Refused],
)
_Kept = TypeVar("_Kept", bound=_Arrays)
_Leaf = TypeVar("_Leaf", bound=_Scalar | None)
_Tuple = TypeVar("_Tuple", bound=tuple[Array | _Scalar, ...])
_Sequence = TypeVar("_Sequence", bound=Sequence[Array | _Scalar])
_Mapping = TypeVar("_Mapping", bound=Mapping[Any, Array | _Scalar])
_OtherFunction = TypeVar(
    "_OtherFunction",
    bound=_Function[object] | staticmethod[..., object] | classmethod[Any, ..., object],
)

# pyright takes a callable object's rows (`Callable[_P, _Kept]`, `Callable[_P, _R]`) for
# unreachable after the function's (`_KeptFunction`, `_OtherFunction`): they are not, as a
# callable object has no `__code__`. It asks for the bound of `_NotBatchable` in place of a
# type variable used once: mypy needs the type variable (see above). And it takes the refused
# row's return type for incompatible with the last function row's, which a refused function
# would otherwise match: that is the point.

@final
class _CoroutineOrGeneratorNotBatchable:
    """What `auto_vmap` makes of an `async def` or generator function, statically: nothing that
    can be called. At run time, decorating one raises `TypeError`."""

class AutoVmap:
    """A configured `auto_vmap` decorator: call it on a function to get the batched function."""

    @overload
    def __init__(
        self,
        /,
        *positional_ranks: _Rank,
        check: bool = True,
        chunk_size: int | None = None,
        axis_name: str | None = None,
        spmd_axis_name: str | tuple[str, ...] | PartitionSpec | None = None,
        signature: str | None = None,
        **keyword_ranks: _Rank,
    ) -> None: ...
    # `AutoVmap(**ranks)` with a `dict[str, int]`: both checkers match a `**` argument against
    # every keyword parameter, `check: bool` included, so this overload has none.
    @overload
    def __init__(self, /, *positional_ranks: _Rank, **keyword_ranks: _Rank) -> None: ...
    @overload
    def __call__(self, fn: _KeptFunction, /) -> _KeptFunction: ...
    @overload
    @deprecated("`auto_vmap` cannot batch an `async def` or generator function")
    def __call__(self, fn: _NotBatchable, /) -> _CoroutineOrGeneratorNotBatchable: ...  # pyright: ignore[reportInvalidTypeVarUse]
    @overload
    def __call__(self, fn: staticmethod[_P, _Leaf], /) -> staticmethod[_P, Array | _Leaf]: ...
    @overload
    def __call__(
        self, fn: staticmethod[_P, _Tuple], /
    ) -> staticmethod[_P, _Tuple | tuple[Array, ...]]: ...
    @overload
    def __call__(
        self, fn: staticmethod[_P, _Sequence], /
    ) -> staticmethod[_P, _Sequence | list[Array]]: ...
    @overload
    def __call__(
        self, fn: staticmethod[_P, _Mapping], /
    ) -> staticmethod[_P, _Mapping | dict[Any, Array]]: ...
    @overload
    def __call__(self, fn: classmethod[_T, _P, _Leaf], /) -> classmethod[_T, _P, Array | _Leaf]: ...
    @overload
    def __call__(
        self, fn: classmethod[_T, _P, _Tuple], /
    ) -> classmethod[_T, _P, _Tuple | tuple[Array, ...]]: ...
    @overload
    def __call__(
        self, fn: classmethod[_T, _P, _Sequence], /
    ) -> classmethod[_T, _P, _Sequence | list[Array]]: ...
    @overload
    def __call__(
        self, fn: classmethod[_T, _P, _Mapping], /
    ) -> classmethod[_T, _P, _Mapping | dict[Any, Array]]: ...
    @overload
    def __call__(self, fn: Callable[_P, _Kept], /) -> Callable[_P, _Kept]: ...  # pyright: ignore[reportOverlappingOverload]
    @overload
    def __call__(self, fn: Callable[_P, _Leaf], /) -> Callable[_P, Array | _Leaf]: ...
    @overload
    def __call__(self, fn: Callable[_P, _Tuple], /) -> Callable[_P, _Tuple | tuple[Array, ...]]: ...
    @overload
    def __call__(self, fn: Callable[_P, _Sequence], /) -> Callable[_P, _Sequence | list[Array]]: ...
    @overload
    def __call__(
        self, fn: Callable[_P, _Mapping], /
    ) -> Callable[_P, _Mapping | dict[Any, Array]]: ...
    @overload
    def __call__(self, fn: _OtherFunction, /) -> _OtherFunction: ...  # pyright: ignore[reportOverlappingOverload]
    @overload
    def __call__(self, fn: Callable[_P, _R], /) -> Callable[_P, _R]: ...  # pyright: ignore[reportOverlappingOverload]

# `@auto_vmap` and `auto_vmap(fn, ...)`: ranks from the annotations. The rows of
# `AutoVmap.__call__`, with the options.
@overload
def auto_vmap(fn: _KeptFunction, /, **options: Unpack[_Options]) -> _KeptFunction: ...
@overload
@deprecated("`auto_vmap` cannot batch an `async def` or generator function")
def auto_vmap(
    fn: _NotBatchable,  # pyright: ignore[reportInvalidTypeVarUse]
    /,
    **options: Unpack[_Options],
) -> _CoroutineOrGeneratorNotBatchable: ...
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
def auto_vmap(  # pyright: ignore[reportOverlappingOverload]
    fn: Callable[_P, _Kept], /, **options: Unpack[_Options]
) -> Callable[_P, _Kept]: ...
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
def auto_vmap(  # pyright: ignore[reportOverlappingOverload]
    fn: _OtherFunction, /, **options: Unpack[_Options]
) -> _OtherFunction: ...
@overload
def auto_vmap(  # pyright: ignore[reportOverlappingOverload]
    fn: Callable[_P, _R], /, **options: Unpack[_Options]
) -> Callable[_P, _R]: ...

# `@auto_vmap(...)`, with ranks or without: the decorator. The second overload takes
# `auto_vmap(**ranks)` with a `dict[str, int]`, as `AutoVmap.__init__`'s does.
@overload
def auto_vmap(
    *ranks: _Rank,
    check: bool = True,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    spmd_axis_name: str | tuple[str, ...] | PartitionSpec | None = None,
    signature: str | None = None,
    **keyword_ranks: _Rank,
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
    route: Any = None  # how the call runs: autovmap._route.Route, printed by str(plan)

def plan(fn: Callable[_P, Any], /, *args: _P.args, **kwargs: _P.kwargs) -> Plan: ...

# `vectorize(f)`, and `functools.partial(vectorize, signature=...)` as a decorator: the rows of
# `AutoVmap.__call__` for functions and callable objects (a batched call returns the same
# structure with an array at every leaf), with `vectorize`'s options.
@overload
def vectorize(
    pyfunc: _KeptFunction,
    *,
    excluded: Collection[int | str] = ...,
    signature: str | None = None,
) -> _KeptFunction: ...
@overload
def vectorize(  # pyright: ignore[reportOverlappingOverload]
    pyfunc: Callable[_P, _Kept],
    *,
    excluded: Collection[int | str] = ...,
    signature: str | None = None,
) -> Callable[_P, _Kept]: ...
@overload
def vectorize(
    pyfunc: Callable[_P, _Leaf],
    *,
    excluded: Collection[int | str] = ...,
    signature: str | None = None,
) -> Callable[_P, Array | _Leaf]: ...
@overload
def vectorize(
    pyfunc: Callable[_P, _Tuple],
    *,
    excluded: Collection[int | str] = ...,
    signature: str | None = None,
) -> Callable[_P, _Tuple | tuple[Array, ...]]: ...
@overload
def vectorize(
    pyfunc: Callable[_P, _Sequence],
    *,
    excluded: Collection[int | str] = ...,
    signature: str | None = None,
) -> Callable[_P, _Sequence | list[Array]]: ...
@overload
def vectorize(
    pyfunc: Callable[_P, _Mapping],
    *,
    excluded: Collection[int | str] = ...,
    signature: str | None = None,
) -> Callable[_P, _Mapping | dict[Any, Array]]: ...
@overload
def vectorize(  # pyright: ignore[reportOverlappingOverload]
    pyfunc: _OtherFunction,
    *,
    excluded: Collection[int | str] = ...,
    signature: str | None = None,
) -> _OtherFunction: ...
@overload
def vectorize(  # pyright: ignore[reportOverlappingOverload]
    pyfunc: Callable[_P, _R],
    *,
    excluded: Collection[int | str] = ...,
    signature: str | None = None,
) -> Callable[_P, _R]: ...
