"""typeguard as autovmap's checks use it: every element of a container, every annotated field
of a dataclass (`equinox.Module` included), and NumPy array annotations of the values the
library hands the function as JAX arrays.

typeguard checks a dataclass instance with `isinstance` only. A checker lookup (typeguard's
documented extension point) adds the fields' own annotations, but only inside autovmap's checks
(those run with a `CheckMemo`): anyone else's typeguard check of a dataclass is unchanged.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import weakref
from typing import Any

import jax
import numpy as np
import typeguard

from ._annotations import (
    ALIAS_TYPES,
    AnnotationReader,
    annotation_str,
    contains_jaxtyping,
    is_array_annotation,
    without_alias,
)
from ._describe import what_value

_CONFIG = typeguard.TypeCheckConfiguration(
    collection_check_strategy=typeguard.CollectionCheckStrategy.ALL_ITEMS
)
UNION_TYPES = (typing.Union, types.UnionType)


class CheckMemo(typeguard.TypeCheckMemo):
    """typeguard's memo for autovmap's checks. `received`: the values checked are ones the
    library converted to JAX arrays (ranked arguments) or that come back out of `jax.vmap`
    (the return value), so a NumPy array annotation admits their JAX form."""

    def __init__(self, globalns: dict[str, Any], received: bool) -> None:
        super().__init__(globalns, {}, config=_CONFIG)
        self.received = received


def check(value: Any, annotation: Any, memo: CheckMemo) -> None:
    """`typeguard.check_type` with autovmap's configuration; raises `TypeCheckError`."""
    try:
        typeguard.check_type_internal(value, annotation, memo)
    except typeguard.TypeCheckError as e:
        e.append_path_element(type(value).__name__)
        raise


_received_cache: dict[Any, Any] = {}


def received(annotation: Any, expanding: frozenset[Any] = frozenset()) -> Any:
    """`annotation` as it applies to a value the library converted to a JAX array: each NumPy
    array annotation `Float[np.ndarray, "n"]` also admits `Float[Array, "n"]`. (`expanding`:
    the type aliases being read, around this one.)"""
    if expanding:  # inside an alias: what it gives depends on `expanding`, so not remembered
        return _received(annotation, expanding)
    try:
        return _received_cache[annotation]
    except KeyError:
        pass
    except TypeError:  # an unhashable `Annotated` extra: not cached
        return _received(annotation, expanding)
    if len(_received_cache) >= 512:
        _received_cache.clear()
    found = _received_cache[annotation] = _received(annotation, expanding)
    return found


def _received(t: Any, expanding: frozenset[Any]) -> Any:
    if isinstance(t, ALIAS_TYPES):
        if t in expanding:  # met inside itself (`type T = list[T]`): left for typeguard to follow
            return t
        expanding |= {t}
    t = without_alias(t)  # typeguard before 4.3 checks nothing through an alias
    if is_array_annotation(t):
        if t.array_type is np.ndarray:
            return typing.Union[t, t.dtype[jax.Array, t.dim_str]]
        return t
    origin, args = typing.get_origin(t), typing.get_args(t)
    if not args or not contains_jaxtyping(t):
        return t
    if origin is typing.Annotated:
        return typing.Annotated[(received(args[0], expanding), *t.__metadata__)]
    new_args = tuple(a if a is Ellipsis else received(a, expanding) for a in args)
    if all(new is old for new, old in zip(new_args, args)):
        return t
    if origin in UNION_TYPES:
        return typing.Union[new_args]
    try:
        return origin[new_args[0] if len(new_args) == 1 else new_args]
    except TypeError:  # pragma: no cover - a generic that cannot be re-subscripted
        return t


def explain(value: Any, annotation: Any) -> str:
    """jaxtyping's explanation of why `value` fails an array annotation ("this array has 2
    dimensions, not the 1 expected by the type hint"), for a union the member of the value's
    array type; "" where there is none."""
    if typing.get_origin(annotation) in UNION_TYPES:
        members = [m for m in typing.get_args(annotation) if is_array_annotation(m)]
        fitting = [m for m in members if _array_type_admits(m.array_type, value)]
        annotation = (fitting or members or [None])[-1]
    explain_ = getattr(annotation, "__instancecheck_str__", None)
    return (explain_(value) if explain_ is not None else "") or ""


def _array_type_admits(array_type: Any, value: Any) -> bool:
    try:
        return isinstance(value, array_type)
    except TypeError:
        return False


# --------------------------------------------------------------------------------------------
# Dataclass fields

_fields: weakref.WeakKeyDictionary[type, tuple[tuple[str, Any], ...]] = weakref.WeakKeyDictionary()


def checked_fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """The fields of a dataclass whose annotations the checks read: those with jaxtyping
    annotations, or of dataclass types that have such fields. Read once per class."""
    found = _fields.get(cls)
    if found is None:
        _fields[cls] = ()  # a field referring back to its own class: not read again
        from ._annotations import _field_annotations  # noqa: PLC0415 - one reader of fields

        reader = AnnotationReader(None)
        fields = []
        for name, raw, globalns in _field_annotations(cls):
            try:
                annotation = reader.resolve(raw, globalns)
            except Exception:  # noqa: BLE001, S112 - unresolved: refused when ranked, by read_spec
                continue
            if needs_check(annotation):
                fields.append((name, annotation))
        found = _fields[cls] = tuple(fields)
    return found


def needs_check(annotation: Any) -> bool:
    """Whether checking a value against `annotation` means more than typeguard alone does: it
    holds a jaxtyping annotation, or a dataclass with fields that do."""
    if contains_jaxtyping(annotation):
        return True
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return bool(checked_fields(annotation))
    return any(needs_check(member) for member in typing.get_args(annotation))


def _lookup(origin_type: Any, args: tuple[Any, ...], extras: tuple[Any, ...]) -> Any:
    if is_array_annotation(origin_type):
        return _check_array
    if isinstance(origin_type, type) and dataclasses.is_dataclass(origin_type):
        if checked_fields(origin_type):
            return _check_fields
    return None


def _not_an_instance(cls: type) -> typeguard.TypeCheckError:
    """typeguard's own error for a value that is not an instance of a class."""
    module, name = cls.__module__, cls.__qualname__
    return typeguard.TypeCheckError(
        f"is not an instance of {name if module in ('builtins', 'typing') else f'{module}.{name}'}"
    )


def _check_array(value: Any, origin_type: Any, args: tuple[Any, ...], memo: Any) -> None:
    """An array annotation inside a container: as typeguard checks it (`isinstance`), saying
    why it fails in autovmap's checks."""
    if isinstance(value, origin_type):
        return
    if not isinstance(memo, CheckMemo):
        raise _not_an_instance(origin_type)
    raise typeguard.TypeCheckError(
        f"is {what_value(value)}, which does not match `{annotation_str(origin_type)}`: "
        f"{explain(value, origin_type)}"
    )


def _check_fields(value: Any, origin_type: Any, args: tuple[Any, ...], memo: Any) -> None:
    if not isinstance(value, origin_type):  # what typeguard itself does for a class
        raise _not_an_instance(origin_type)
    if not isinstance(memo, CheckMemo):
        return  # not one of autovmap's checks
    for name, shown in checked_fields(origin_type):
        annotation = received(shown) if memo.received else shown
        field: Any = getattr(value, name, None)
        try:
            typeguard.check_type_internal(field, annotation, memo)
        except typeguard.TypeCheckError as failed:
            error = failed
            if is_array_annotation(annotation) or typing.get_origin(annotation) in UNION_TYPES:
                reason = explain(field, annotation)
                if reason:  # an array annotation: jaxtyping says why, and what the field holds
                    error = typeguard.TypeCheckError(
                        f"is {what_value(field)}, which does not match `{annotation_str(shown)}`: "
                        f"{reason}"
                    )
            error.append_path_element(f"field `{name}`")
            raise error from None


typeguard.checker_lookup_functions.append(_lookup)
