"""Run-time checks: named core dims over the shapes of a call, and each example against the
signature's outputs and the function's jaxtyping annotations.

Named core dims (`CallSpec.core`: from a `signature=`, dim strings, or annotations with
`check=False`) are compared on the shapes of the ranked leaves alone, before `jax.vmap` runs
(`core_sizes`, once per call). A signature's outputs are compared with what each example
returns, against those sizes (`OutputChecker`, run by the call on each example's result).

All arguments (those bound by `functools.partial` too) and the return value of one example are
checked inside one jaxtyping memo scope, with typeguard (`_typecheck`: every element of a
container, every annotated field of a dataclass), so a dim named in two annotations must have
one size. `jaxtyped(typechecker=typeguard.typechecked)` is not used: with typeguard 4 it fails
on repeated dims such as `"n n"` and silently skips functions defined locally.

Whether a call's examples pass depends only on what the checks read of its arguments
(`_remember.call_key`): a call whose key passed before runs unchecked, in a memo scope holding
the dim sizes the checked call bound (`remembered_invoker`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import typing
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jaxtyping
import numpy as np
import typeguard

from ._annotations import (
    ALIAS_TYPES,
    AnnotationReader,
    annotation_str,
    is_array_annotation,
    without_alias,
)
from ._arrays import ARRAY_TYPES, shape_of
from ._bind import BoundCall, bind
from ._describe import (
    LeafAt,
    core_dim_fixed,
    core_dim_mismatch,
    count_dims,
    fmt_shape,
    what_value,
)
from ._errors import (
    AnnotationCheckError,
    OutputSignatureError,
    RankSpecError,
    fn_label,
    hide_from_tracebacks,
)
from ._remember import Bindings, InScope, pop_scope, push_scope, record
from ._signature import (
    Check,
    CoreDims,
    TreeDims,
    compare_dims,
    compile_dims,
    fmt_dims,
    leaf_dims,
)
from ._spec import CallSpec, _annotated_function
from ._typecheck import UNION_TYPES, CheckMemo, check, explain, received

hide_from_tracebacks(__file__)


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
    return explain(value, annotation) or str(error)


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in UNION_TYPES:
        return typing.get_args(annotation)
    return (annotation,)


def _hint(value: Any, shown: Any, received: bool) -> str:
    """Advice that applies to this value and annotation, or "". `received`: the value is one the
    library converted to a JAX array."""
    arrays = [m for m in _members(shown) if is_array_annotation(m)]
    if not arrays:
        return ""
    if isinstance(value, (np.ndarray, np.generic, bool, int, float, complex)):
        return (
            f" It is a {'NumPy array' if isinstance(value, np.ndarray) else 'Python scalar'}: "
            "annotate it `ArrayLike` (e.g. `Float[ArrayLike, ...]`) or pass `jnp.asarray(...)`."
        )
    numpy = [m for m in arrays if m.array_type is np.ndarray]
    if received and numpy and not any(_dtype_fits(value, m) for m in numpy):
        return (
            " Arguments with a rank reach the function as JAX arrays (`jnp.asarray`), so a "
            "float64 NumPy array arrives as float32 unless `jax_enable_x64` is on."
        )
    return ""


def _dtype_fits(value: Any, annotation: Any) -> bool:
    """Whether `value`'s dtype is one `annotation` admits, whatever its shape."""
    return isinstance(value, annotation.dtype[jax.Array, "..."])


def _fail(
    spec: CallSpec, what: str, value: Any, found: _Check, error: Exception
) -> AnnotationCheckError:
    shown, annotation, memo = found.shown, found.annotation, found.memo
    error_ = AnnotationCheckError(
        f"{fn_label(spec.fn)}: {what} is {what_value(value)}, which does "
        f"not match its annotation `{annotation_str(shown)}`: "
        f"{_reason(value, annotation, error)}.{_hint(value, shown, memo.received)}\n"
        f"Dims bound so far: {_bindings()}.\n"
        "Fix the argument's shape or dtype, or the annotation; `auto_vmap(..., check=False)` "
        "turns these checks off."
    )
    error_.showed_shape = hasattr(value, "shape")  # type: ignore[attr-defined]
    error_.checked_by = spec  # type: ignore[attr-defined] # only this call adds its batch note
    return error_


class _Check(typing.NamedTuple):
    """What one argument is checked against."""

    annotation: Any  # as checked (`received` for values the library converted)
    shown: Any  # as the user wrote it
    memo: CheckMemo
    by_partial: bool = False  # bound by `functools.partial`, not passed by the call

    def fails(self, value: Any) -> typeguard.TypeCheckError | None:
        """Why `value` fails the check, or `None` if it passes."""
        if is_array_annotation(self.annotation):
            # All typeguard would do for an array annotation (a class): `isinstance`.
            if isinstance(value, self.annotation):
                return None
            return typeguard.TypeCheckError(f"is not {annotation_str(self.annotation)}")
        try:
            check(value, self.annotation, self.memo)
        except typeguard.TypeCheckError as e:
            return e
        return None


class Checker:
    """Calls a function on one example, checking its arguments and result."""

    def __init__(self, spec: CallSpec) -> None:
        self.fn = spec.fn
        self.spec = spec
        target = _annotated_function(spec.fn)
        globalns = getattr(target, "__globals__", {})
        as_given = CheckMemo(globalns, received=False)
        as_received = CheckMemo(globalns, received=True)  # ranked: the library made them arrays
        ranked = {p.name for p in spec.params if p.rank is not None}
        self.checks: dict[str, _Check] = {}
        for name, annotation in spec.annotations.items():
            if isinstance(without_alias(annotation), ALIAS_TYPES):
                what = "the return value" if name == "return" else f"parameter `{name}`"
                raise RankSpecError(
                    f"{fn_label(spec.fn)}: {what} is annotated `{annotation_str(annotation)}`, "
                    "a type alias that refers to itself, so there is nothing to check it "
                    "against. Annotate it with the type it stands for, or pass `check=False`."
                )
            if name in ranked or name == "return":
                self.checks[name] = _Check(received(annotation), annotation, as_received)
            else:
                self.checks[name] = _Check(without_alias(annotation), annotation, as_given)
        self.return_check = self.checks.pop("return", None)
        self._positional = [(p.name, self.checks.get(p.name)) for p in spec.positional]
        self._bound, self._bound_keywords = _bound_by_partial(spec, target, globalns, as_given)

    def _items(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> list[tuple[str, Any, _Check]]:
        """(label, value, check) for every annotated argument given."""
        items = list(self._bound)
        positional = self._positional
        for i, value in enumerate(args):
            label, found = positional[i] if i < len(positional) else self._extra(i)
            if found is not None:
                items.append((label, value, found))
        for name, value in kwargs.items():
            param = self.spec.by_keyword.get(name) or self.spec.var_keyword
            assert param is not None  # the call was bound before: the name is a parameter
            found = self.checks.get(param.name)
            if found is not None:
                items.append((param.label(name), value, found))
        for name, item in self._bound_keywords:
            if name not in kwargs:  # the partial's keyword, not overridden by the call
                items.append(item)
        return items

    def _extra(self, i: int) -> tuple[str, _Check | None]:
        """The label and check of the extra positional argument `i` (`*args`)."""
        param = self.spec.var_positional
        assert param is not None  # the call was bound before: it has a `*args` parameter
        return param.label(i), self.checks.get(param.name)

    def _check_arguments(self, items: list[tuple[str, Any, _Check]]) -> None:
        for label, value, found in items:
            error = found.fails(value)
            if error is not None:
                what = f"argument `{label}`"
                if found.by_partial:
                    what += " (bound by `functools.partial`)"
                raise _fail(self.spec, what, value, found, error)

    def _check_result(self, result: Any) -> None:
        found = self.return_check
        if found is not None:
            error = found.fails(result)
            if error is not None:
                raise _fail(self.spec, "the return value", result, found, error)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        items = self._items(args, kwargs)
        push_scope()
        try:
            self._check_arguments(items)
            record(self.spec)  # the first check of a new call signature: its bindings
            result = self.fn(*args, **kwargs)
            self._check_result(result)
        finally:
            pop_scope()
        return result


def _bound_by_partial(
    spec: CallSpec, target: Any, globalns: dict[str, Any], memo: CheckMemo
) -> tuple[list[tuple[str, Any, _Check]], list[tuple[str, tuple[str, Any, _Check]]]]:
    """The arguments a `functools.partial` binds that have annotations: its positional ones
    (checked on every call) and its keywords (checked where a call does not override them)."""
    fn = spec.fn
    if not isinstance(fn, functools.partial):
        return [], []
    try:
        bound = inspect.signature(fn.func).bind_partial(*fn.args, **fn.keywords).arguments
    except (TypeError, ValueError):
        return [], []
    raw = getattr(target, "__annotations__", None) or {}
    reader = AnnotationReader(None)
    positional, keywords = [], []
    for name, value in bound.items():
        if name not in raw:
            continue
        annotation = spec.annotations.get(name)
        if annotation is None:
            try:
                annotation = reader.resolve(raw[name], globalns)
            except Exception as e:  # noqa: BLE001 - NameError, SyntaxError...
                raise RankSpecError(
                    f"{fn_label(fn)}: cannot resolve the annotation of `{name}`, bound by "
                    f"`functools.partial` ({type(e).__name__}: {e}), so it cannot be checked. "
                    "Define the names it uses at module level, or decorate with `check=False`."
                ) from None
        item = (name, value, _Check(annotation, annotation, memo, by_partial=True))
        if name in fn.keywords:
            keywords.append((name, item))
        else:
            positional.append(item)
    return positional, keywords


# The one callback a call makes into the user's function, called as the function is.
Invoke = Callable[..., Any]


def invoker(spec: CallSpec, check: bool) -> Invoke:
    """The one callback a call makes into the user's function: checked against the annotations
    or not. Unchecked, it is the function itself: nothing stands between a call and it."""
    return Checker(spec) if check else spec.fn


def remembered_invoker(spec: CallSpec) -> Callable[[Bindings], Invoke]:
    """For a checked function: the callback of a call whose signature passed its checks before,
    given the dim sizes that check bound. It runs unchecked in a memo scope holding them."""
    return lambda bindings: InScope(spec.fn, bindings)


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


def core_sizes(spec: CallSpec, bound: BoundCall) -> dict[str, int]:
    """The size of each named core dim of a call (of a function that has some), read once per
    call: `CoreDims.sizes` for plain positional calls, else `named_sizes`, which also explains
    dims that disagree. Raises `CoreDimError`, before `jax.vmap`."""
    core = spec.core
    assert core is not None
    # Read from the end of the shapes: the sizes of the call are those of each example.
    sizes = None if bound.kwargs else core.sizes(bound.args)
    return sizes if sizes is not None else named_sizes(spec.fn, core, bound)[0]


def _one_fits(value: Any, rank: int, dims: tuple[Check, ...], sizes: dict[str, int]) -> bool:
    """Whether one output is a single array of its entry's rank whose dims fit `sizes`."""
    shape = value.shape if ARRAY_TYPES.get(type(value)) else shape_of(value)  # (JAX's, inline)
    return shape is not None and len(shape) == rank and not compare_dims(shape, dims, sizes)


class OutputChecker:
    """Compares the result of one example with the signature's outputs: a tuple of the declared
    length, each output of its entry's rank, named dims of the sizes the call's arguments (or
    an earlier output) give them. Under `jax.jit`: once, while tracing."""

    def __init__(self, spec: CallSpec) -> None:
        assert spec.core is not None and spec.core.outputs is not None
        self.spec = spec
        self.core = spec.core
        self.outputs = spec.core.outputs
        self.output_checks = tuple(
            (len(dims), compile_dims(dims)) for dims in self.outputs
        )  # rank and checks of each output
        self.single = self.output_checks[0] if len(self.output_checks) == 1 else None
        self.signature = f"`signature={spec.core.signature!r}`"  # for messages

    def __call__(
        self, out: Any, sizes: dict[str, int], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Raise if `out`, the result of the example `args`, `kwargs`, does not fit. `sizes`
        are the named sizes of the call's arguments (those of each example); names only the
        outputs give are added to them, as every example's outputs must agree."""
        if not self._fits(out, sizes):  # then read afresh: `_fits` may have added names
            sizes, _ = named_sizes(self.spec.fn, self.core, bind(self.spec, args, kwargs))
            self._check(out, sizes, args, kwargs)

    def _fits(self, out: Any, sizes: dict[str, int]) -> bool:
        """Whether `out` is one array per output, each fitting its entry: the common case,
        told without walking pytrees or building messages. Anything else (`False`) is decided
        and explained by `_check`."""
        if self.single is not None:  # one output: no tuple to build and walk
            rank, dims = self.single  # (unpacked here: a starred call costs more)
            return _one_fits(out, rank, dims, sizes)
        checks = self.output_checks
        if type(out) is not tuple or len(out) != len(checks):
            return False
        for value, (rank, dims) in zip(out, checks):
            if not _one_fits(value, rank, dims, sizes):
                return False
        return True

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
                f"return a tuple of {len(expected)}, but it returned {what_value(out)}. Return a "
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
                wrong = compare_dims(shape, self.output_checks[k][1], sizes)
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
