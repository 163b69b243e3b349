"""Run-time checks: named core dims over the shapes of a call, and each example against the
signature's outputs and the function's jaxtyping annotations.

Named core dims (`CallSpec.core`: from a `signature=`, dim strings, or annotations with
`check=False`) are compared on the shapes of the ranked leaves alone, before `jax.vmap` runs
(`check_core_dims`). A signature's outputs are compared with what one example returns
(`OutputChecker`, part of the one callback into the user's function).


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
from ._bind import BoundCall, bind, shape_of
from ._describe import LeafAt, core_dim_fixed, core_dim_mismatch, count_dims, fmt_shape
from ._errors import AnnotationCheckError, OutputSignatureError, fn_label, hide_from_tracebacks
from ._signature import CoreDims, TreeDims, compare_dims, compile_dims, fmt_dims, leaf_dims
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
    """The one callback a call makes into the user's function: checked against the annotations
    or not, and its result against the signature's outputs if it has any."""
    call: Invoke
    if check:
        call = Checker(spec)
    else:
        fn = spec.fn
        call = lambda args, kwargs: fn(*args, **kwargs)
    if spec.core is not None and spec.core.outputs is not None:
        return OutputChecker(spec, call)
    return call


# --------------------------------------------------------------------------------------------
# Named core dims


def named_sizes(
    fn: object, core: CoreDims, bound: BoundCall
) -> tuple[dict[str, int], dict[str, LeafAt]]:
    """The size of each named core dim in a call, and the ranked leaf that gave it first.

    Raises `CoreDimError` where like-named dims differ or a fixed size is not met. Reads shapes
    only, after the rank checks: every ranked leaf has at least its rank."""
    sizes: dict[str, int] = {}
    origin: dict[str, LeafAt] = {}
    for a, argument in enumerate(bound.arguments):
        checks = core.checks.get(argument.param.name)
        if checks is None:
            continue
        if isinstance(checks, TreeDims):
            per_leaf = [() if d is None else compile_dims(d) for d in leaf_dims(checks, argument)]
        else:  # the dims apply to every leaf, whose rank is their number
            per_leaf = [checks] * len(argument.slots)
        for j, leaf_checks in enumerate(per_leaf):
            if not leaf_checks:
                continue
            shape = shape_of(bound.leaves[argument.start + j])
            assert shape is not None  # a ranked leaf
            wrong = compare_dims(shape, leaf_checks, sizes)
            if wrong is not None and not wrong.name:
                raise core_dim_fixed(fn, core, bound, (a, j), wrong.expected, wrong.size)
            if wrong is not None:
                first = origin.get(wrong.name, (a, j))  # or this leaf: `"n n"` on (3, 4)
                raise core_dim_mismatch(
                    fn, core, bound, wrong.name, first, wrong.expected, (a, j), wrong.size
                )
            for name in sizes.keys() - origin.keys():
                origin[name] = (a, j)
    return sizes, origin


def check_core_dims(spec: CallSpec, bound: BoundCall) -> None:
    """Compare the named core dims of a call; raises `CoreDimError`, before `jax.vmap`."""
    if spec.core is not None:
        named_sizes(spec.fn, spec.core, bound)


class OutputChecker:
    """Calls one example, then compares its result with the signature's outputs: a tuple of
    the declared length, each output of its entry's rank, named dims of the sizes the
    example's arguments (or an earlier output) give them. Under `jax.jit`: once, while
    tracing."""

    def __init__(self, spec: CallSpec, call: Invoke) -> None:
        assert spec.core is not None and spec.core.outputs is not None
        self.spec = spec
        self.core = spec.core
        self.outputs = spec.core.outputs
        self.output_checks = [compile_dims(dims) for dims in self.outputs]
        self.call = call
        self.signature = f"`signature={spec.core.signature!r}`"  # for messages

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = self.call(args, kwargs)
        # The arguments' named dims agree (they were checked before the call): their sizes,
        # read from the positional arguments directly where the call has nothing else.
        sizes = None if kwargs else self.core.sizes(args)
        if sizes is None:
            sizes, _ = named_sizes(self.spec.fn, self.core, bind(self.spec, args, kwargs))
        self._check(result, sizes, args, kwargs)
        return result

    def _error(self, message: str) -> OutputSignatureError:
        return OutputSignatureError(f"{fn_label(self.spec.fn)}: {message}")

    def _check(
        self, out: Any, sizes: dict[str, int], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Raise if `out` does not fit."""
        expected = self.outputs
        if len(expected) > 1 and not isinstance(out, tuple):
            raise self._error(
                f"{self.signature} declares {len(expected)} outputs, so the function must "
                f"return a tuple of {len(expected)}, but it returned {_what(out)}. Return a "
                "tuple (not a list), or fix the signature."
            )
        outs = out if isinstance(out, tuple) else (out,)
        if len(outs) != len(expected):
            raise self._error(
                f"{self.signature} declares {len(expected)} output(s), but the function "
                f"returned a tuple of {len(outs)}. Return one value per output, or fix the "
                "signature."
            )
        from_output: dict[str, int] = {}
        for k, (value, dims) in enumerate(zip(outs, expected)):
            for leaf in jax.tree_util.tree_leaves(value):
                shape = shape_of(leaf)
                if shape is None:
                    shape = np.shape(leaf)
                if len(shape) != len(dims):
                    raise self._error(
                        f"output {k} of one example has shape {fmt_shape(shape)}, but "
                        f"{self.signature} gives it the core dims {fmt_dims(dims)} "
                        f"({count_dims(len(dims))}). The shapes here are of one example (batch "
                        "dims excluded); fix what the function returns, or the signature."
                    )
                known = sizes.keys()
                new = [d.name for d in dims if d.name is not None and d.name not in known]
                wrong = compare_dims(shape, self.output_checks[k], sizes)
                for name in new:
                    from_output.setdefault(name, k)
                if wrong is not None and not wrong.name:
                    raise self._error(
                        f"output {k} of one example has shape {fmt_shape(shape)}, but "
                        f"{self.signature} fixes a dim of it to size {wrong.expected}."
                    )
                if wrong is not None:
                    source = self._source(args, kwargs, wrong.name, from_output)
                    raise self._error(
                        f"output {k} of one example has shape {fmt_shape(shape)}, so its "
                        f"core dim `{wrong.name}` has size {wrong.size}, but `{wrong.name}` = "
                        f"{wrong.expected} from {source} ({self.signature}). Fix what the "
                        "function returns, or the signature."
                    )

    def _source(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], name: str, from_output: dict[str, int]
    ) -> str:
        """Where a named dim got its size first: an argument of the example, or an output."""
        bound = bind(self.spec, args, kwargs)
        _, origin = named_sizes(self.spec.fn, self.core, bound)
        if name not in origin:
            return f"output {from_output[name]}"
        a, j = origin[name]
        argument = bound.arguments[a]
        shape = shape_of(bound.leaves[argument.start + j])
        assert shape is not None
        return f"argument `{argument.leaf_labels()[j]}` (shape {fmt_shape(shape)})"


def _what(value: Any) -> str:
    shape = shape_of(value)
    if shape is not None:
        return f"a single array of shape {fmt_shape(shape)}"
    return f"a `{type(value).__name__}`"
