"""Ranks from annotations: jaxtyping introspection, and resolving string annotations.

Array annotations are read only through jaxtyping's documented introspection: `AbstractArray`
subclasses carry `dims` and `index_variadic`, and `PyTree[T]` carries `leaftype`. Dim strings
are never parsed here.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import sys
import types
import typing
from typing import Any

import jaxtyping
import numpy as np

from ._errors import BatchShapeError, fn_label

try:  # not a dependency; its `TypeAliasType` backports `type X = ...` aliases
    import typing_extensions
except ImportError:  # pragma: no cover
    typing_extensions = None  # type: ignore[assignment]

from . import _batched

_UNION_TYPES = (typing.Union, types.UnionType)
# Containers whose every element has the rank of their (last) type argument.
_HOMOGENEOUS = (
    list,
    dict,
    collections.abc.Sequence,
    collections.abc.Mapping,
    collections.abc.MutableSequence,
    collections.abc.MutableMapping,
)


@dataclasses.dataclass(frozen=True, eq=False)
class FieldRanks:
    """Ranks of the fields of a dataclass, `equinox.Module` or `NamedTuple`, by field name.

    At call time a leaf takes the rank of the field its pytree path goes through. `ranks` is
    filled after construction, so that a class whose field refers back to the class itself
    (`child: Optional["Node"]`) points at the same object instead of recursing forever.
    """

    cls: type
    ranks: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={_short(rank)}" for name, rank in self.ranks.items())
        return f"{self.cls.__name__}({fields})"


@dataclasses.dataclass(frozen=True)
class EachRank:
    """The rank of every element of a container (`tuple[Module, ...]`, `dict[str, Module]`)
    whose elements have field ranks."""

    element: Any

    def __repr__(self) -> str:
        return f"each {_short(self.element)}"


@dataclasses.dataclass(frozen=True)
class DtypeRank:
    """The rank of a union whose members have different ranks and disjoint dtypes, chosen per
    array leaf by its dtype: jaxtyping's `PRNGKeyArray` is a typed key (rank 0) or a raw
    `uint32[2]` key (rank 1). `bind` turns it into the leaf's int rank."""

    by_dtype: tuple[tuple[str, int], ...]  # jaxtyping's dtype names, each with its rank
    annotation: Any

    def __repr__(self) -> str:
        ranks = sorted({rank for _, rank in self.by_dtype})
        return " or ".join(map(str, ranks)) + " by dtype"

    def of(self, leaf: Any, fn: Any, label: str) -> int:
        """The rank of an array leaf; `BatchShapeError` where its dtype fits no member."""
        dtype = getattr(leaf, "dtype", None)
        if dtype is None:
            dtype = np.asarray(leaf).dtype
        name = dtype.type.__name__  # as jaxtyping names it: `float32`, `uint32`, `prng_key`
        for member_dtype, rank in self.by_dtype:
            if member_dtype == name:
                return rank
        choices = "; ".join(
            f"rank {rank} for {', '.join(d for d, r in self.by_dtype if r == rank)}"
            for rank in sorted({rank for _, rank in self.by_dtype})
        )
        raise BatchShapeError(
            f"{fn_label(fn)}: argument `{label}` has dtype {name}, but its annotation "
            f"`{annotation_str(self.annotation)}` chooses the rank by dtype ({choices}), and "
            f"{name} is none of those. Pass an array of one of those dtypes, or give `{label}` "
            "its rank explicitly."
        )


def leaf_rank(rank: Any, leaf: Any, fn: Any, label: str) -> int:
    """The int rank of an array leaf whose rank is not an int: a `DtypeRank`, by its dtype."""
    assert isinstance(rank, DtypeRank), rank
    return rank.of(leaf, fn, label)


def _by_dtype(union: Any, members: list[tuple[Any, Any]]) -> DtypeRank:
    """The rank of a union whose members have different ranks, where the dtype decides it:
    each ranked member an array annotation of an int rank with listed dtypes, no dtype in two
    members of different ranks. Else `NoSingleRank`."""
    by_dtype: dict[str, int] = {}
    for member, rank in members:
        member = unwrap(member)
        dtypes = getattr(member, "dtypes", None) if is_array_annotation(member) else None
        if (
            not isinstance(rank, int)
            or not isinstance(dtypes, tuple)
            or not all(isinstance(d, str) for d in dtypes)  # not a regex: comparable
        ):
            raise NoSingleRank(
                f"its members have different ranks {[r for _, r in members]}, and their dtypes "
                "do not decide which applies"
            )
        for dtype in dtypes:
            if by_dtype.setdefault(dtype, rank) != rank:
                raise NoSingleRank(
                    f"its members have different ranks {[r for _, r in members]}, and the dtype "
                    f"{dtype} fits members of both ranks {by_dtype[dtype]} and {rank}"
                )
    return DtypeRank(tuple(by_dtype.items()), union)


def _short(rank: Any) -> str:
    return f"{rank.cls.__name__}(...)" if isinstance(rank, FieldRanks) else repr(rank)


def rank_at(rank: Any, path: tuple[Any, ...]) -> int | None:
    """The rank of the leaf at pytree key `path` of an argument whose rank is `rank`."""
    for key in path:
        if isinstance(rank, FieldRanks):
            rank = rank.ranks.get(getattr(key, "name", ""))
        elif isinstance(rank, EachRank):
            rank = rank.element
        else:
            break
    return None if isinstance(rank, (FieldRanks, EachRank)) else rank


class VariadicAnnotation(Exception):
    """Internal: an annotation whose rank is not fixed (`"*b n"`, `"..."`)."""


class NoSingleRank(Exception):
    """Internal: an annotation whose rank cannot be stated as one rank tree; says why."""


ALIAS_TYPES: tuple[type, ...] = tuple(
    alias
    for alias in {
        getattr(typing, "TypeAliasType", None),
        getattr(typing_extensions, "TypeAliasType", None),
    }
    if isinstance(alias, type)
)


_ALIAS_DEPTH = 100  # a bound on aliases that refer to themselves (`type A = A`)


def without_alias(t: Any) -> Any:
    """`t` with its type aliases (`type Vec = Float[Array, "n"]`, Python 3.12+, or
    `typing_extensions.TypeAliasType`) replaced by their values. An alias that refers to itself
    comes back still an alias, for the caller to refuse."""
    for _ in range(_ALIAS_DEPTH):
        if not isinstance(t, ALIAS_TYPES):
            break
        t = typing.cast(Any, t).__value__
    return t


def unwrap(t: Any) -> Any:
    """What an annotation means for ranks: `Annotated[T, ...]` and type aliases read as `T`."""
    for _ in range(_ALIAS_DEPTH):
        if typing.get_origin(t) is typing.Annotated:
            t = typing.get_args(t)[0]
        elif isinstance(t, ALIAS_TYPES):
            t = without_alias(t)
            if isinstance(t, ALIAS_TYPES):
                break
        elif isinstance(typing.get_origin(t), ALIAS_TYPES):
            alias = typing.get_origin(t)
            if alias not in _READING and _reads_jaxtyping(alias):  # (in it: it refers to itself)
                raise NoSingleRank("it is a generic type alias, whose rank is not read")
            return t  # such as numpy's `NDArray[np.float64]`: no rank, checked as written
        else:
            return t
    raise NoSingleRank("it is a type alias that refers to itself")


_READING: set[Any] = set()  # generic aliases being read: one that refers to itself stops


def _reads_jaxtyping(alias: Any) -> bool:
    _READING.add(alias)
    try:
        return contains_jaxtyping(alias.__value__)
    finally:
        _READING.discard(alias)


def is_array_annotation(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, jaxtyping.AbstractArray)


def _is_pytree_annotation(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, jaxtyping.PyTree) and hasattr(t, "leaftype")


def _is_namedtuple(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, tuple) and hasattr(t, "_fields")


class AnnotationReader:
    """Turns annotations into ranks, resolving string annotations as it goes.

    Strings are evaluated in the globals of the module that wrote them and, failing that, in
    the locals of the frame that applied the decorator (for classes defined in a function).
    Those locals are read only when needed, copied, and the frame's own snapshot of them is
    dropped: on Python < 3.13 reading `frame.f_locals` stores a snapshot in the frame that
    would keep every local of the caller alive until it returns.
    """

    def __init__(self, frame: types.FrameType | None) -> None:
        self._frame = frame
        self._locals: dict[str, Any] | None = None
        self._in_progress: dict[type, FieldRanks] = {}
        # Aliases being read: one met again inside itself (`type T = list[T]`) has no rank.
        self._aliases_in_progress: set[Any] = set()

    def _frame_locals(self) -> dict[str, Any]:
        if self._locals is None:
            self._locals = {}
            if self._frame is not None:
                snapshot = self._frame.f_locals
                self._locals = dict(snapshot)
                optimized = self._frame.f_code.co_flags & 0x1  # CO_OPTIMIZED: a function frame
                if optimized and sys.version_info < (3, 13) and isinstance(snapshot, dict):
                    # Every later reader of f_locals refreshes it from the frame first, so
                    # dropping the snapshot loses nothing and frees the caller's locals.
                    snapshot.clear()
            self._frame = None
        return self._locals

    def resolve(self, annotation: Any, globalns: dict[str, Any]) -> Any:
        """`annotation` evaluated if it is a string; raises `NameError` etc. if it cannot be."""
        if isinstance(annotation, typing.ForwardRef):  # `NamedTuple` fields keep these
            annotation = annotation.__forward_arg__
        if not isinstance(annotation, str):
            return annotation
        try:
            return eval(annotation, globalns)  # noqa: S307 - annotations are the user's code
        except NameError:
            return eval(annotation, globalns, self._frame_locals())  # noqa: S307

    def rank(self, t: Any) -> Any:
        """The rank an annotation implies: an int, a tuple of ranks, a `FieldRanks` or
        `EachRank`, or `None` (not batched). Raises `VariadicAnnotation` or `NoSingleRank`."""
        if not isinstance(t, ALIAS_TYPES):
            return self._rank(unwrap(t))
        if t in self._aliases_in_progress:
            raise NoSingleRank("it is a type alias that refers to itself")
        self._aliases_in_progress.add(t)
        try:
            return self._rank(unwrap(t))
        finally:
            self._aliases_in_progress.discard(t)

    def _rank(self, t: Any) -> Any:
        if is_array_annotation(t):
            if t.index_variadic is not None:
                raise VariadicAnnotation(t)
            return len(t.dims)
        if _is_pytree_annotation(t):
            return self._each(t.leaftype, t)
        if isinstance(t, _batched.BatchedMeta):  # `Batched[T, "e"]`: T's ranks, plus "e"
            return _batched.stacked_rank(self, t)
        origin = typing.get_origin(t)
        args = typing.get_args(t)
        if origin in _UNION_TYPES:
            members = [(m, r) for m in args if (r := self.rank(m)) is not None]
            if any(r != members[0][1] for _, r in members):
                return _by_dtype(t, members)
            return members[0][1] if members else None
        if origin is tuple and args:
            if len(args) == 2 and args[1] is Ellipsis:
                return self._each(args[0], t)
            ranks = tuple(map(self.rank, args))
            if all(r is None for r in ranks):
                return None
            if not all(r is None or isinstance(r, int) for r in ranks):
                raise NoSingleRank("it is a tuple of structured values")
            return ranks
        if origin in _HOMOGENEOUS and args:
            return self._each(args[-1], t)
        if isinstance(t, type) and (dataclasses.is_dataclass(t) or _is_namedtuple(t)):
            return self._field_ranks(t)
        return None  # `int`, `str`, callables, `jax.Array`, unannotated, ...: not batched

    def _each(self, element: Any, container: Any) -> Any:
        rank = self.rank(element)
        if rank is None or isinstance(rank, (int, DtypeRank)):
            return rank  # an int rank applies to every leaf below it
        if isinstance(rank, FieldRanks):
            return EachRank(rank)
        raise NoSingleRank(f"the elements of `{annotation_str(container)}` are structured")

    def _field_ranks(self, cls: type) -> FieldRanks | None:
        if cls in self._in_progress:  # a field refers back to its own class
            return self._in_progress[cls]
        result = self._in_progress[cls] = FieldRanks(cls)
        unresolved = {}
        try:
            for name, annotation, globalns in _field_annotations(cls):
                try:
                    field_type = self.resolve(annotation, globalns)
                except Exception as e:  # noqa: BLE001 - any failure: this field has no rank
                    unresolved[name] = f"{annotation!r}: {type(e).__name__}: {e}"
                    continue
                try:
                    rank = self.rank(field_type)
                except (VariadicAnnotation, NoSingleRank) as e:
                    raise NoSingleRank(
                        f"its field `{name}`: {_why_no_rank(field_type, e)}"
                    ) from None
                if rank is not None:
                    result.ranks[name] = rank
        finally:
            del self._in_progress[cls]
        if not result.ranks:
            return None  # unresolved fields of an unbatched class never block decorating
        if unresolved:
            name, reason = next(iter(unresolved.items()))
            raise NoSingleRank(
                f"the annotation of its field `{name}` cannot be resolved ({reason}), while "
                f"other fields are batched; define the names it uses at module level"
            )
        return result


def _why_no_rank(annotation: Any, error: Exception) -> str:
    """Why an annotation gives no rank, for `RankSpecError` messages."""
    if isinstance(error, VariadicAnnotation):
        return f"`{annotation_str(annotation)}` has a variadic dimension, so no fixed rank"
    return str(error)


def _field_annotations(cls: type) -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, raw annotation, globals of the module that wrote it) for each field of `cls`."""
    if _is_namedtuple(cls):
        names = list(cls._fields)  # type: ignore[attr-defined]
    else:
        names = [f.name for f in dataclasses.fields(cls)]
    found: dict[str, tuple[Any, dict[str, Any]]] = {}
    for base in reversed(cls.__mro__):  # subclasses override their bases
        globalns = vars(sys.modules[base.__module__]) if base.__module__ in sys.modules else {}
        for name, annotation in vars(base).get("__annotations__", {}).items():
            found[name] = (annotation, dict(globalns))
    return [(name, *found[name]) for name in names if name in found]


def contains_jaxtyping(t: Any, aliases_seen: frozenset[Any] = frozenset()) -> bool:
    """Whether checking `t` at run time means anything jaxtyping-specific."""
    if isinstance(t, ALIAS_TYPES):
        if t in aliases_seen:
            return False  # met again inside itself: what it holds is looked at already
        aliases_seen |= {t}
    try:
        t = unwrap(t)
    except NoSingleRank:
        return True  # a generic alias: let the checks look
    if is_array_annotation(t) or _is_pytree_annotation(t) or isinstance(t, _batched.BatchedMeta):
        return True
    return any(contains_jaxtyping(member, aliases_seen) for member in typing.get_args(t))


def annotation_str(t: Any) -> str:
    """An annotation as a person writes it: `Float[Array, 'n n']`, not its full repr, and a
    class by its name: `Dense`, not `my_module.Dense`."""
    if isinstance(t, type) and t.__module__ != "jaxtyping":
        return t.__name__
    text = repr(t)
    for noise in ("<class '", "'>", "jaxtyping.", "jaxlib._jax.", "typing."):
        text = text.replace(noise, "")
    return text


def batched_annotation(t: Any) -> Any:
    """`t` with a broadcastable variadic batch prefix: `Float[Array, "n"]` becomes
    `Float[Array, "*#batch n"]`, so that checking the batched call against it works."""
    t = unwrap(t)
    if is_array_annotation(t):
        if t.index_variadic is not None:  # already takes any number of dims; only one may vary
            return t
        return t.dtype[t.array_type, f"*#batch {t.dim_str}".strip()]
    if _is_pytree_annotation(t):
        return jaxtyping.PyTree[batched_annotation(t.leaftype)]
    if isinstance(t, _batched.BatchedMeta):
        return _batched.Batched[t.inner, f"*#batch {t.dim_str}"]
    if typing.get_origin(t) in _UNION_TYPES:
        return typing.Union[tuple(batched_annotation(m) for m in typing.get_args(t))]
    return t


def caller_frame(depth: int) -> types.FrameType | None:
    """The frame `depth` levels above the caller: where a decorator was applied."""
    try:
        return sys._getframe(depth + 1)
    except (AttributeError, ValueError):  # pragma: no cover - non-CPython, or no such frame
        return None
