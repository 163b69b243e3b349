"""Run-time checks of each example against the function's jaxtyping annotations.

All arguments and the return value of one example are checked inside one jaxtyping memo scope
(`jaxtyped("context")` + `typeguard.check_type`), so a dim named in two annotations must have
one size. `jaxtyped(typechecker=typeguard.typechecked)` is not used: with typeguard 4 it fails
on repeated dims such as `"n n"` and silently skips functions defined locally.

Whether arrays pass their annotations depends only on their types, shapes and dtypes, so a
check that passed is remembered by those (never for other values, whose checks can depend on
the value itself) and not repeated: a call with the same abstract arguments and result is
known to pass.
"""

from __future__ import annotations

import contextlib
import io
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jaxtyping
import numpy as np
import typeguard

from ._annotations import annotation_str
from ._describe import fmt_shape
from ._errors import AnnotationCheckError, fn_label, hide_from_tracebacks
from ._plan import BoundedCache
from ._spec import CallSpec

hide_from_tracebacks(__file__)

_UNCACHEABLE = object()


def _abstract(value: Any) -> Any:
    """What a check of `value` depends on, if it is only that: `_UNCACHEABLE` otherwise."""
    if isinstance(value, (jax.Array, np.ndarray)):
        return type(value), value.shape, value.dtype
    if value is None:
        return None
    if isinstance(value, (str, bytes, numbers.Number)):
        return _UNCACHEABLE
    leaves, treedef = jax.tree_util.tree_flatten(value)
    if not all(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves):
        return _UNCACHEABLE
    return treedef, tuple((type(x), x.shape, x.dtype) for x in leaves)


def _shape_str(value: Any) -> str | None:
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    return f"a {getattr(value, 'dtype', '')} array of shape {fmt_shape(tuple(shape))}"


def _bindings() -> str:
    """The dim sizes bound so far in the current memo scope, as `n=3, m=4`.

    Taken from jaxtyping's public `print_bindings`, minus its header sentences."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        jaxtyping.print_bindings()  # type: ignore[no-untyped-call]
    lines = [line for line in out.getvalue().splitlines() if "=" in line and " " not in line]
    return ", ".join(lines) or "none"


def _reason(value: Any, annotation: Any, error: Exception) -> str:
    """Why `value` failed `annotation`: jaxtyping's own explanation for array annotations
    (for example "this array has 2 dimensions, not the 1 expected by the type hint"), else
    typeguard's."""
    explain = getattr(annotation, "__instancecheck_str__", None)
    reason = explain(value) if explain is not None else ""
    return reason or str(error)


def _fail(
    fn: Any, what: str, value: Any, annotation: Any, error: Exception
) -> AnnotationCheckError:
    shape = _shape_str(value)
    hint = ""
    if isinstance(value, (np.ndarray, np.generic, bool, int, float, complex)):
        hint = (
            f" It is a {'NumPy array' if shape else 'Python scalar'}: annotate it `ArrayLike` "
            "(e.g. `Float[ArrayLike, ...]`) or pass `jnp.asarray(...)`."
        )
    error_ = AnnotationCheckError(
        f"{fn_label(fn)}: {what} is {shape or f'a `{type(value).__name__}`'}, which does not "
        f"match its annotation `{annotation_str(annotation)}`: "
        f"{_reason(value, annotation, error)}.{hint}\nDims bound so far: {_bindings()}.\n"
        "Fix the argument's shape or dtype, or the annotation; `auto_vmap(..., check=False)` "
        "turns these checks off."
    )
    error_.showed_shape = shape is not None  # type: ignore[attr-defined]
    return error_


class Checker:
    """Calls a function on one example, checking its arguments and result."""

    def __init__(self, spec: CallSpec) -> None:
        self.fn = spec.fn
        self.spec = spec
        self.annotations = {k: v for k, v in spec.annotations.items() if k != "return"}
        self.return_annotation = spec.annotations.get("return")
        self._passed = BoundedCache(256)  # abstract arguments (and result) known to pass
        self._positional = [(p.name, self.annotations.get(p.name)) for p in spec.positional]

    def _items(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> list[tuple[str, Any, Any]]:
        """(label, value, annotation) for every annotated argument given."""
        items = []
        positional = self._positional
        for i, value in enumerate(args):
            label, annotation = positional[i] if i < len(positional) else self._extra(i)
            if annotation is not None:
                items.append((label, value, annotation))
        for name, value in kwargs.items():
            param = self.spec.by_keyword.get(name) or self.spec.var_keyword
            assert param is not None  # the call was bound before: the name is a parameter
            annotation = self.annotations.get(param.name)
            if annotation is not None:
                items.append((param.label(name), value, annotation))
        return items

    def _extra(self, i: int) -> tuple[str, Any]:
        """The label and annotation of the extra positional argument `i` (`*args`)."""
        param = self.spec.var_positional
        assert param is not None  # the call was bound before: it has a `*args` parameter
        return param.label(i), self.annotations.get(param.name)

    def _check(self, items: list[tuple[str, Any, Any]], result: Any = _UNCACHEABLE) -> None:
        """Check `items`, and `result` if given, in the current memo scope."""
        for label, value, annotation in items:
            try:
                typeguard.check_type(value, annotation)
            except typeguard.TypeCheckError as e:
                raise _fail(self.fn, f"argument `{label}`", value, annotation, e) from None
        if result is not _UNCACHEABLE and self.return_annotation is not None:
            try:
                typeguard.check_type(result, self.return_annotation)
            except typeguard.TypeCheckError as e:
                raise _fail(
                    self.fn, "the return value", result, self.return_annotation, e
                ) from None

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        items = self._items(args, kwargs)
        key: Any = tuple([_abstract(value) for _, value, _ in items])
        if _UNCACHEABLE in key:
            key = None
        if key is None or self._passed.get(key) is None:
            with jaxtyping.jaxtyped("context"):
                self._check(items)
                result = self.fn(*args, **kwargs)
                self._check([], result)
        else:  # the arguments passed before: check the result only if it is new
            result = self.fn(*args, **kwargs)
            returned = _abstract(result)
            if self.return_annotation is None or self._passed.get((key, returned)) is not None:
                return result
            with jaxtyping.jaxtyped("context"):
                self._check(items, result)  # again, so the result's dims meet the arguments'
        if key is not None:
            self._passed.put(key, True)
            returned = _abstract(result)
            if returned is not _UNCACHEABLE:
                self._passed.put((key, returned), True)
        return result


def invoker(spec: CallSpec, check: bool) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    """The one callback a call makes into the user's function, checked or not."""
    if check:
        return Checker(spec)
    fn = spec.fn
    return lambda args, kwargs: fn(*args, **kwargs)
