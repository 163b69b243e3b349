"""Ranks from jaxtyping annotations, and the batched signature of a decorated function.

Annotations are read only through jaxtyping's documented introspection: `AbstractArray`
subclasses carry `dims` and `index_variadic`, and `PyTree[T]` carries `leaftype`. We never
parse dim strings ourselves.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import jaxtyping

from ._errors import RankSpecError, fn_label

_UNION_TYPES = (typing.Union, types.UnionType)


@dataclasses.dataclass(frozen=True)
class FieldRanks:
    """Ranks of the fields of a dataclass or `equinox.Module`, read from its annotations.

    At call time each leaf gets the rank of the field its pytree path starts with (nested
    dataclasses recurse); leaves of unannotated or non-array fields are passed through.
    """

    cls: type
    ranks: tuple[tuple[str, Any], ...]  # (field name, rank) for the fields that have one

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={rank!r}" for name, rank in self.ranks)
        return f"{self.cls.__name__}({fields})"


class VariadicAnnotation(Exception):
    """Internal: an annotation whose rank is not fixed (`"*b n"`, `"..."`)."""


def is_array_annotation(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, jaxtyping.AbstractArray)


def _is_pytree_annotation(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, jaxtyping.PyTree) and hasattr(t, "leaftype")


def rank_of_annotation(t: Any) -> Any:
    """The rank tree an annotation implies: an int, a `FieldRanks`, or `None` (not batched)."""
    if is_array_annotation(t):
        if t.index_variadic is not None:
            raise VariadicAnnotation(t)
        return len(t.dims)
    if _is_pytree_annotation(t):
        return rank_of_annotation(t.leaftype)
    if typing.get_origin(t) in _UNION_TYPES:
        ranks = {rank_of_annotation(member) for member in typing.get_args(t)} - {None}
        if len(ranks) > 1:
            raise TypeError(f"its members have different ranks {sorted(map(repr, ranks))}")
        return ranks.pop() if ranks else None
    if isinstance(t, type) and dataclasses.is_dataclass(t):
        return _field_ranks(t)
    return None  # `int`, `str`, callables, unannotated, ...: not batched


def _field_ranks(cls: type) -> FieldRanks | None:
    hints = typing.get_type_hints(cls)
    ranks = []
    for field in dataclasses.fields(cls):
        rank = rank_of_annotation(hints.get(field.name))
        if rank is not None:
            ranks.append((field.name, rank))
    return FieldRanks(cls, tuple(ranks)) if ranks else None


def contains_jaxtyping(t: Any) -> bool:
    """Whether checking `t` at run time means anything jaxtyping-specific."""
    if is_array_annotation(t) or _is_pytree_annotation(t):
        return True
    return any(contains_jaxtyping(member) for member in typing.get_args(t))


def resolve_annotations(
    fn: Callable[..., Any], localns: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Evaluate each parameter's (and the return's) annotation.

    Returns the resolved annotations by name (`"return"` for the return) and, separately, the
    names whose string annotation could not be evaluated, with the reason. Names local to the
    decorating scope are found through `localns`.
    """
    globalns = getattr(inspect.unwrap(fn), "__globals__", {})
    raw = dict(getattr(fn, "__annotations__", None) or {})
    resolved: dict[str, Any] = {}
    unresolved: dict[str, str] = {}
    for name, annotation in raw.items():
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, globalns, dict(localns or {}))  # noqa: S307
            except Exception as e:  # NameError, SyntaxError, ...: reported only if needed
                unresolved[name] = f"{type(e).__name__}: {e}"
                continue
        resolved[name] = annotation
    return resolved, unresolved


def annotation_ranks(
    fn: Callable[..., Any],
    annotations: Mapping[str, Any],
    unresolved: Mapping[str, str],
    explicit: set[str],
) -> dict[str, Any]:
    """The rank each parameter's annotation implies, for the parameters not ranked explicitly."""
    ranks = {}
    for name in inspect.signature(fn).parameters:
        if name in explicit:
            continue
        if name in unresolved:
            raise RankSpecError(
                f"{fn_label(fn)}: cannot resolve the annotation of parameter `{name}` "
                f"({unresolved[name]}). Define the names it uses at module level, or give the "
                f"rank explicitly: `auto_vmap({name}=RANK)` (or `{name}=None`)."
            )
        try:
            ranks[name] = rank_of_annotation(annotations.get(name))
        except VariadicAnnotation:
            raise RankSpecError(
                f"{fn_label(fn)}: parameter `{name}` is annotated "
                f"`{annotation_str(annotations[name])}`, whose variadic dimension gives it no "
                f"fixed rank. Give the per-example rank explicitly, `auto_vmap({name}=RANK)`, "
                f"or `auto_vmap({name}=None)` to leave it unbatched."
            ) from None
        except TypeError as e:
            raise RankSpecError(
                f"{fn_label(fn)}: the annotation of parameter `{name}`, "
                f"`{annotation_str(annotations[name])}`, gives no single rank: {e}. Give the "
                f"rank explicitly: `auto_vmap({name}=RANK)`."
            ) from None
    return ranks


def annotation_str(t: Any) -> str:
    """An annotation as a person writes it: `Float[Array, 'n n']`, not its full repr."""
    text = t.__qualname__ if isinstance(t, type) and t.__module__ == "builtins" else repr(t)
    for noise in ("<class '", "'>", "jaxtyping.", "jaxlib._jax.", "typing."):
        text = text.replace(noise, "")
    return text


def batched_annotation(t: Any) -> Any:
    """`t` with a broadcastable variadic batch prefix: `Float[Array, "n"]` becomes
    `Float[Array, "*#batch n"]`, so that checking the batched call against it works."""
    if is_array_annotation(t):
        if t.index_variadic is not None:  # already takes any number of dims; only one may vary
            return t
        return t.dtype[t.array_type, f"*#batch {t.dim_str}".strip()]
    if _is_pytree_annotation(t):
        return jaxtyping.PyTree[batched_annotation(t.leaftype)]
    if typing.get_origin(t) in _UNION_TYPES:
        return typing.Union[tuple(batched_annotation(m) for m in typing.get_args(t))]
    return t


def caller_locals(depth: int) -> dict[str, Any] | None:
    """Locals of the frame `depth` levels up: where a decorator was applied, so that string
    annotations naming local classes can still be resolved."""
    try:
        return dict(sys._getframe(depth + 1).f_locals)
    except (AttributeError, ValueError):  # pragma: no cover - non-CPython, or no such frame
        return None
