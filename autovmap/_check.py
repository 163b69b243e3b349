"""Run-time checks of each example against the function's jaxtyping annotations.

All arguments and the return value of one example are checked inside one jaxtyping memo scope
(`jaxtyped("context")` + `typeguard.check_type`), so a dim named in two annotations must have
one size. `jaxtyped(typechecker=typeguard.typechecked)` is not used: with typeguard 4 it fails
on repeated dims such as `"n n"` and silently skips functions defined locally.

Whether a call's examples pass depends only on the call's arguments: on the types, shapes and
dtypes of its arrays, and on the values of the rest. So a call whose arguments are all arrays,
pytrees of arrays, or small hashable values (`call_signature`) is checked once, and a later call
with the same signature is known to pass; any other call is checked every time.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jaxtyping
import numpy as np
import typeguard

from ._annotations import annotation_str
from ._describe import fmt_shape
from ._errors import AnnotationCheckError, fn_label, hide_from_tracebacks
from ._spec import CallSpec

hide_from_tracebacks(__file__)

_UNCACHEABLE = object()


_VALUES = (bool, int, float, complex, str, bytes, type(None))


def _signature_of(value: Any) -> Any:
    """What checking a call can depend on of `value`; `_UNCACHEABLE` if that is more."""
    if isinstance(value, (jax.Array, np.ndarray)):
        return type(value), value.shape, value.dtype
    if isinstance(value, _VALUES):
        return type(value), value
    leaves, treedef = jax.tree_util.tree_flatten(value)
    if not all(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves):
        return _UNCACHEABLE
    return treedef, tuple((type(x), x.shape, x.dtype) for x in leaves)


def call_signature(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """A key that determines whether a call passes its checks, or `None` if there is none."""
    parts = []
    for value in (*args, *kwargs.values()) if kwargs else args:
        part = _signature_of(value)
        if part is _UNCACHEABLE:
            return None
        parts.append(part)
    return tuple(parts), tuple(kwargs)


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

    def _check_arguments(self, items: list[tuple[str, Any, Any]]) -> None:
        for label, value, annotation in items:
            try:
                typeguard.check_type(value, annotation)
            except typeguard.TypeCheckError as e:
                raise _fail(self.fn, f"argument `{label}`", value, annotation, e) from None

    def _check_result(self, result: Any) -> None:
        if self.return_annotation is not None:
            try:
                typeguard.check_type(result, self.return_annotation)
            except typeguard.TypeCheckError as e:
                raise _fail(
                    self.fn, "the return value", result, self.return_annotation, e
                ) from None

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        items = self._items(args, kwargs)
        with jaxtyping.jaxtyped("context"):
            self._check_arguments(items)
            result = self.fn(*args, **kwargs)
            self._check_result(result)
        return result


Invoke = Callable[[tuple[Any, ...], dict[str, Any]], Any]


def invoker(spec: CallSpec, check: bool) -> Invoke:
    """The one callback a call makes into the user's function, checked or not."""
    if check:
        return Checker(spec)
    fn = spec.fn
    return lambda args, kwargs: fn(*args, **kwargs)
