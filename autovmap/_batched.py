"""`Batched[T, "dims"]`: the type of a stack of `T`s, such as an ensemble of models.

A value is a `Batched[T, "e"]` when every array leaf has the leading dims `"e"` and one example
of the stack (each array leaf indexed `[0]` along those dims) is a `T`, its own annotations
included. The dims bind through jaxtyping's memo like any dim, so inside a `jaxtyped` scope
`"e"` must agree with the other arguments and the return value. The dim string is read by
jaxtyping (`Shaped[Any, dims]`), never parsed here.

To `auto_vmap`, each leaf of a `Batched[T, "e"]` parameter has the rank of `T`'s leaf plus the
number of added dims (`stacked_rank`): one example is the whole stack, and further leading dims
are batch dims. To type checkers, `Batched[T, "e"]` is `T` (see `__init__.pyi`).
"""

from __future__ import annotations

import sys
from typing import Any

import jax
import jaxtyping
import numpy as np
import typeguard

from . import _annotations
from ._errors import RankSpecError
from ._remember import open_memo, restore_memo  # jaxtyping's memo of dim sizes: one owner


class BatchedMeta(type):
    """The metaclass of `Batched` and of every `Batched[T, dims]`: subscription, the
    `isinstance` check (so that typeguard, beartype and plain `isinstance` all work), and a
    readable repr."""

    inner: Any  # T
    dim_str: str  # the added leading dims as written
    leading: Any  # `Shaped[Any, dim_str]`: jaxtyping's reading of the dim string

    def __getitem__(cls, item: Any) -> BatchedMeta:
        if cls is not Batched:
            raise RankSpecError(f"`{cls!r}` is already subscripted: write `Batched[T, 'e k']`.")
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str)):
            raise RankSpecError(
                "`Batched` takes a type and a dim string of the added leading dims, as in "
                f"`Batched[MLP, 'e']`; got `Batched[{item!r}]`."
            )
        inner, dim_str = item
        leading: Any  # to type checkers a jaxtyping type is `Annotated`, without `dims`
        try:
            leading = jaxtyping.Shaped[Any, dim_str]
        except ValueError as e:  # jaxtyping's own reason, such as two variadic dims
            raise RankSpecError(f"`Batched[..., {dim_str!r}]`: {e}") from None
        name = f"Batched[{_annotations.annotation_str(inner)}, {dim_str!r}]"
        stacked = BatchedMeta(
            name, (Batched,), {"inner": inner, "dim_str": dim_str, "leading": leading}
        )
        # As jaxtyping's `PyTree[...]`: the name alone, in any repr (beartype requires that
        # `repr(X | int)` show `X` as `repr(X)` does).
        stacked.__module__ = "builtins"
        if leading.index_variadic is not None and _known_ranks(stacked) is None:
            raise RankSpecError(
                f"`{name}`: the variadic dims {dim_str!r} cover as many leading dims as a leaf "
                f"has beyond its rank in `{_annotations.annotation_str(inner)}`, but that type "
                "gives no leaf a fixed rank. Name each added dim (`'e'`, `'e k'`), or annotate "
                "the fields of the type with fixed-rank array types."
            )
        return stacked

    def __repr__(cls) -> str:
        return cls.__qualname__ if hasattr(cls, "inner") else super().__repr__()

    # Two subscriptions with equal arguments are one type, without a cache of user classes.
    def __eq__(cls, other: object) -> bool:
        if cls is other:
            return True
        if not (isinstance(other, BatchedMeta) and hasattr(cls, "inner")):
            return False
        return (cls.inner, cls.dim_str) == (getattr(other, "inner", None), other.dim_str)

    def __hash__(cls) -> int:
        return hash((cls.inner, cls.dim_str)) if hasattr(cls, "inner") else id(cls)

    def __instancecheck__(cls, obj: Any) -> bool:
        return cls.__instancecheck_str__(obj) == ""

    def __instancecheck_str__(cls, obj: Any) -> str:
        """Why `obj` is not a `cls`, or `""` if it is. Dims bound on the way are kept only when
        it is, as jaxtyping does for its own types."""
        if not hasattr(cls, "inner"):  # bare `Batched`: any value is a stack of something
            return ""
        memo = open_memo()
        if memo is None:
            # No `jaxtyped` scope is active, so each dim would bind on its own: open one for
            # this check, so that `"e"` agrees across the leaves and T's dims within the example.
            with jaxtyping.jaxtyped("context"):
                return _why_not(cls, obj)
        saved = tuple(m.copy() for m in memo)
        try:
            reason = _why_not(cls, obj)
        except Exception:
            restore_memo(saved)
            raise
        if reason:
            restore_memo(saved)
        return reason


class Batched(metaclass=BatchedMeta):
    """A stack of `T`s: `Batched[T, "e"]`, with the added leading dims as a jaxtyping dim string
    (`"e"`, `"e k"`, `"*b"`, `"#e"`, a fixed `"4"`).

    `isinstance(x, Batched[MLP, "e"])` holds when every array leaf of `x` starts with the dims
    `"e"` and one example of the stack is an `MLP` whose annotated fields match their
    annotations. Inside a `jaxtyped` scope (and so in an `auto_vmap` call with checks on), `e`
    binds like any dim. To `auto_vmap`, a parameter annotated `Batched[T, "e"]` has, per leaf,
    the rank of `T`'s leaf plus one. To type checkers, `Batched[T, "e"]` is `T`.
    """


def _is_array(leaf: Any) -> bool:
    return hasattr(leaf, "shape") and hasattr(leaf, "dtype")


def _known_ranks(cls: BatchedMeta) -> Any:
    """The rank tree of `T` (as `auto_vmap` reads it), or `None` where `T` gives no fixed rank."""
    try:
        return _annotations.AnnotationReader(None).rank(cls.inner)
    except (_annotations.VariadicAnnotation, _annotations.NoSingleRank):
        return None


def stacked_rank(reader: _annotations.AnnotationReader, cls: BatchedMeta) -> Any:
    """The rank `auto_vmap` gives a parameter annotated `cls`: `T`'s, plus the number of added
    dims on every leaf. Raises `VariadicAnnotation` for variadic added dims (`"*b"`)."""
    if cls.leading.index_variadic is not None:
        raise _annotations.VariadicAnnotation(cls)
    return _add(reader.rank(cls.inner), len(cls.leading.dims))


def _add(rank: Any, added: int) -> Any:
    if rank is None:
        return None
    if isinstance(rank, int):
        return rank + added
    if isinstance(rank, tuple):
        return tuple(_add(r, added) for r in rank)
    if isinstance(rank, _annotations.EachRank):
        return _annotations.EachRank(_add(rank.element, added))
    assert isinstance(rank, _annotations.FieldRanks)
    result = _annotations.FieldRanks(rank.cls)
    result.ranks.update({name: _add(r, added) for name, r in rank.ranks.items()})
    return result


def _why_not(cls: BatchedMeta, obj: Any) -> str:
    """Check the leading dims of every array leaf, then one example against `T`."""
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(obj)
    variadic = cls.leading.index_variadic is not None
    ranks = _known_ranks(cls) if variadic else None
    example = []
    expected: Any  # a jaxtyping array type for the leading dims of the leaf
    for path, leaf in with_paths:
        if not _is_array(leaf):
            example.append(leaf)  # static values, functions, Python scalars: left alone
            continue
        if variadic:
            rank = _annotations.rank_at(ranks, path)
            if not isinstance(rank, int):  # T does not fix this leaf's rank: nothing to strip
                example.append(leaf)
                continue
            # Anonymous dims for the rank of `T`'s leaf; the variadic dims take the rest.
            expected = jaxtyping.Shaped[Any, f"{cls.dim_str}{' _' * rank}"]
            added = leaf.ndim - rank
        else:
            expected = jaxtyping.Shaped[Any, f"{cls.dim_str} ..."]
            added = len(cls.leading.dims)
        reason = expected.__instancecheck_str__(leaf)
        if reason:
            what = f"its leaf `{jax.tree_util.keystr(path)}`" if path else "the array"
            return (
                f"{what} has shape {tuple(leaf.shape)}, which does not start with the stacked "
                f"dims {cls.dim_str!r}: {reason}"
            )
        example.append(_first(leaf, added))
    return _why_not_example(cls, jax.tree_util.tree_unflatten(treedef, example))


def _first(leaf: Any, added: int) -> Any:
    """The first example of a leaf with `added` leading dims. A stack of size 0 has none: a
    zero-filled stand-in of the same array type, dtype and example shape takes its place, so
    that `T`'s annotations are checked on the example shape all the same."""
    if added == 0:
        return leaf
    if 0 not in tuple(leaf.shape[:added]):
        return leaf[(0,) * added + (Ellipsis,)]  # `...` keeps a NumPy example an array
    shape = tuple(leaf.shape[added:])
    if isinstance(leaf, np.ndarray):
        return np.zeros(shape, leaf.dtype)
    return jax.numpy.zeros(shape, leaf.dtype)


def _why_not_example(cls: BatchedMeta, example: Any) -> str:
    try:
        check_example(example, cls.inner)
    except typeguard.TypeCheckError as e:
        return (
            f"one example of the stack (every array leaf at index 0 of its dims "
            f"{cls.dim_str!r}) does not match `{_annotations.annotation_str(cls.inner)}`: {e}"
        )
    return ""


def check_example(value: Any, annotation: Any) -> None:
    """Check one example against `annotation` in the current memo scope, with the one check
    autovmap's argument checks use (`_typecheck.check`): every item of a container, every
    annotated field of a dataclass, `equinox.Module` or `NamedTuple`, jaxtyping's own words for
    array types. Raises `typeguard.TypeCheckError` saying where and why."""
    from ._typecheck import CheckMemo, check  # `_typecheck` reads annotations: imports us

    check(value, annotation, CheckMemo(vars(sys.modules[__name__]), received=False))
