"""Run-time checks of each example against the function's jaxtyping annotations.

All arguments and the return value of one example are checked inside one jaxtyping memo scope
(`jaxtyped("context")` + `typeguard.check_type`), so a dim named in two annotations must have
one size. `jaxtyped(typechecker=typeguard.typechecked)` is not used: with typeguard 4 it fails
on repeated dims such as `"n n"` and silently skips functions defined locally.
"""

from __future__ import annotations

import contextlib
import inspect
import io
from collections.abc import Callable, Mapping
from typing import Any

import jaxtyping
import typeguard

from ._annotations import annotation_str
from ._errors import AutoVmapError, fn_label
from ._traceback import hide_from_tracebacks

_P = inspect.Parameter

hide_from_tracebacks(__file__)


class AnnotationCheckError(AutoVmapError, jaxtyping.TypeCheckError):
    """An example does not match the function's jaxtyping annotations (shape, dims or dtype)."""


def _shape_str(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is None:
        return f"a `{type(value).__name__}`"
    dtype = getattr(value, "dtype", "")
    return f"{dtype}{list(shape)}".replace(" ", "")


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


class Checker:
    """Checks the examples passed to one function against its annotations."""

    def __init__(self, fn: Callable[..., Any], annotations: Mapping[str, Any]) -> None:
        self.fn = fn
        self.signature = inspect.signature(fn)
        self.annotations = dict(annotations)
        self.return_annotation = self.annotations.pop("return", None)

    def _fail(
        self, what: str, value: Any, annotation: Any, error: Exception, batch_shape: tuple[int, ...]
    ) -> AnnotationCheckError:
        batch = (
            f" The call has batch shape {batch_shape}; the shape above is of one example."
            if batch_shape
            else ""
        )
        return AnnotationCheckError(
            f"{fn_label(self.fn)}: {what} is {_shape_str(value)}, which does not match its "
            f"annotation `{annotation_str(annotation)}`: {_reason(value, annotation, error)}."
            f"{batch}\nDims bound so far: {_bindings()}.\n"
            "Fix the argument's shape or dtype, or the annotation; `auto_vmap(..., "
            "check=False)` turns these checks off."
        )

    def call(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], batch_shape: tuple[int, ...]) -> Any:
        """Call the function on one example, checking arguments and result."""
        bound = self.signature.bind(*args, **kwargs)
        with jaxtyping.jaxtyped("context"):
            for name, value in bound.arguments.items():
                annotation = self.annotations.get(name)
                if annotation is None:
                    continue
                kind = self.signature.parameters[name].kind
                if kind is _P.VAR_POSITIONAL:
                    items = [(f"argument `*{name}[{i}]`", v) for i, v in enumerate(value)]
                elif kind is _P.VAR_KEYWORD:
                    items = [(f"argument `**{name}[{k!r}]`", v) for k, v in value.items()]
                else:
                    items = [(f"argument `{name}`", value)]
                for what, item in items:
                    try:
                        typeguard.check_type(item, annotation)
                    except typeguard.TypeCheckError as e:
                        raise self._fail(what, item, annotation, e, batch_shape) from None
            result = self.fn(*args, **kwargs)
            if self.return_annotation is not None:
                try:
                    typeguard.check_type(result, self.return_annotation)
                except typeguard.TypeCheckError as e:
                    raise self._fail(
                        "the return value", result, self.return_annotation, e, batch_shape
                    ) from None
        return result
