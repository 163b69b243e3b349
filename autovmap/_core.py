"""`auto_vmap`: the decorator, and the wrapper it returns."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from ._annotations import (
    annotation_ranks,
    batched_annotation,
    caller_locals,
    contains_jaxtyping,
    resolve_annotations,
)
from ._apply import run_plan
from ._arguments import RankedArgument, bind_ranked
from ._check import Checker
from ._errors import BroadcastError, RankSpecError, RankTooLargeError, fn_label, render_table
from ._plan import IncompatibleBatchShapes, make_plan
from ._spec import CallSpec, build_call_spec, explicit_ranks
from ._traceback import hide_from_tracebacks

hide_from_tracebacks(__file__)

_PYTHON_SCALARS = (bool, int, float, complex)


def _shape_of(leaf: Any) -> tuple[int, ...] | None:
    """The shape of an array-like leaf; `None` for leaves that are not arrays (strings, ...)."""
    shape = getattr(leaf, "shape", None)
    if shape is not None and hasattr(leaf, "dtype"):
        return tuple(shape)
    if isinstance(leaf, _PYTHON_SCALARS):
        return ()
    return None


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _shape_rows(ranked: list[RankedArgument]) -> list[list[str]]:
    """One row per ranked array leaf: label, shape, rank, batch shape."""
    rows = []
    for argument in ranked:
        for path, leaf, rank in zip(argument.leaf_paths(), argument.leaves, argument.leaf_ranks):
            shape = _shape_of(leaf)
            if rank is None or shape is None:
                continue
            batch = _fmt_shape(shape[: len(shape) - rank]) if len(shape) >= rank else "-"
            rows.append([path, _fmt_shape(shape), str(rank), batch])
    return rows


def _rank_too_large(
    spec: CallSpec, argument: RankedArgument, leaf_index: int, shape: tuple[int, ...], rank: int
) -> RankTooLargeError:
    path = argument.leaf_paths()[leaf_index]
    core = ", ".join(f"d{i}" for i in range(rank))
    return RankTooLargeError(
        f"{fn_label(spec.fn)}: argument `{path}` has shape {_fmt_shape(shape)} "
        f"({len(shape)} dims), but its rank is {rank}: one example has {rank} dims, so the "
        f"argument needs at least {rank}.\nPass `{path}` with shape (*batch, {core}), or give "
        "it a smaller rank."
    )


def _broadcast_error(
    spec: CallSpec, ranked: list[RankedArgument], error: IncompatibleBatchShapes, ndim: int
) -> BroadcastError:
    sizes = " and ".join(map(str, error.sizes))
    table = render_table(["argument", "shape", "rank", "batch shape"], _shape_rows(ranked))
    return BroadcastError(
        f"{fn_label(spec.fn)}: the batch shapes of the arguments do not broadcast: batch "
        f"dimension {error.axis - ndim} (counted from the right) has sizes {sizes}.\n{table}\n"
        "Batch shapes are aligned on the right, and in each position the sizes must be equal "
        "or 1 (a size-1 or missing dimension stretches). Make the sizes agree, or insert a "
        "size-1 axis (`x[:, None]`) to combine every example of one argument with every "
        "example of another."
    )


# Calls the function on one example: `(args, kwargs, batch_shape) -> result`.
Invoke = Callable[[tuple[Any, ...], dict[str, Any], tuple[int, ...]], Any]


def _call(
    spec: CallSpec,
    invoke: Invoke,
    chunk_size: int | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    ranked = bind_ranked(spec, args, kwargs)
    leaves: list[Any] = []
    batched: list[int] = []
    batch_shapes: list[tuple[int, ...]] = []
    for argument in ranked:
        for i, (leaf, rank) in enumerate(zip(argument.leaves, argument.leaf_ranks)):
            shape = None if rank is None else _shape_of(leaf)
            if shape is not None:
                if len(shape) < rank:
                    raise _rank_too_large(spec, argument, i, shape, rank)
                if len(shape) > rank:
                    batched.append(len(leaves))
                    batch_shapes.append(shape[: len(shape) - rank])
            leaves.append(leaf)
    if not batched:  # nothing to map: the function sees exactly what it was given
        return invoke(args, kwargs, ())
    try:
        plan = make_plan(tuple(batch_shapes))
    except IncompatibleBatchShapes as e:
        raise _broadcast_error(spec, ranked, e, max(map(len, batch_shapes))) from None

    def call_on_leaves(example_leaves: list[Any]) -> Any:
        new_args = list(args)
        new_kwargs = dict(kwargs)
        start = 0
        for argument in ranked:
            stop = start + len(argument.leaves)
            value = argument.rebuild(example_leaves[start:stop])
            start = stop
            if isinstance(argument.key, int):
                new_args[argument.key] = value
            else:
                new_kwargs[argument.key] = value
        return invoke(tuple(new_args), new_kwargs, plan.batch_shape)

    return run_plan(plan, call_on_leaves, leaves, batched, chunk_size)


class AutoVmap:
    """A configured `auto_vmap` decorator: call it on a function to get the batched function.

    Returned by `auto_vmap(...)` when it is given ranks rather than a function.
    """

    def __init__(
        self,
        *positional_ranks: Any,
        check: bool = True,
        chunk_size: int | None = None,
        **keyword_ranks: Any,
    ) -> None:
        if not isinstance(check, bool):
            raise RankSpecError(
                f"`auto_vmap(check=...)` takes True or False, got {check!r}. `check` is an "
                "option, not a parameter name: to rank a parameter called `check`, give its "
                "rank positionally."
            )
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise RankSpecError(
                f"`auto_vmap(chunk_size=...)` takes an int >= 1 or None, got {chunk_size!r}."
            )
        self.positional_ranks = positional_ranks
        self.keyword_ranks = keyword_ranks
        self.check = check
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        parts = [repr(r) for r in self.positional_ranks]
        parts += [f"{k}={v!r}" for k, v in self.keyword_ranks.items()]
        if not self.check:
            parts.append("check=False")
        if self.chunk_size is not None:
            parts.append(f"chunk_size={self.chunk_size}")
        return f"auto_vmap({', '.join(parts)})"

    def __call__(self, fn: Callable[..., Any]) -> Any:
        return self._decorate(fn, caller_locals(1))

    def _decorate(self, fn: Any, localns: dict[str, Any] | None) -> Any:
        if isinstance(fn, (staticmethod, classmethod)):
            # Either decorator order works: batch the underlying function, re-wrap it.
            return type(fn)(self._decorate(fn.__func__, localns))
        if not callable(fn):
            raise TypeError(
                f"`auto_vmap` decorates functions; got {fn!r}. Use `@auto_vmap(...)` with "
                "ranks, or `@auto_vmap` on a function."
            )
        explicit = explicit_ranks(fn, self.positional_ranks, self.keyword_ranks)
        annotations, unresolved = resolve_annotations(fn, localns)
        spec = build_call_spec(
            fn, explicit, annotation_ranks(fn, annotations, unresolved, set(explicit))
        )
        checked = self.check and any(map(contains_jaxtyping, annotations.values()))
        if not spec.any_ranked and not checked:  # nothing to do: behave exactly as undecorated
            return fn
        invoke: Invoke
        if checked:
            invoke = Checker(fn, annotations).call
        else:
            invoke = lambda args, kwargs, batch_shape: fn(*args, **kwargs)  # noqa: E731

        @functools.wraps(fn)
        def batched(*args: Any, **kwargs: Any) -> Any:
            return _call(spec, invoke, self.chunk_size, args, kwargs)

        batched.__signature__ = _batched_signature(spec, annotations)  # type: ignore[attr-defined]
        batched.__annotations__ = {
            name: p.annotation
            for name, p in batched.__signature__.parameters.items()  # type: ignore[attr-defined]
            if p.annotation is not inspect.Parameter.empty
        }
        if "return" in annotations:
            batched.__annotations__["return"] = batched.__signature__.return_annotation  # type: ignore[attr-defined]
        batched.__autovmap_spec__ = spec  # type: ignore[attr-defined]
        return batched


def _batched_signature(spec: CallSpec, annotations: dict[str, Any]) -> inspect.Signature:
    """The signature of the batched interface: each ranked parameter's (and the return's)
    array annotations gain a broadcastable batch prefix, `"*#batch n"`, so that outer
    `jaxtyped`/typeguard/beartype checks accept batched arguments."""
    signature = inspect.signature(spec.fn)
    parameters = []
    for param, rank in zip(signature.parameters.values(), spec.params):
        if param.name in annotations and rank.rank is not None:
            param = param.replace(annotation=batched_annotation(annotations[param.name]))
        parameters.append(param)
    return_annotation = signature.return_annotation
    if "return" in annotations:
        return_annotation = batched_annotation(annotations["return"])
    return signature.replace(parameters=parameters, return_annotation=return_annotation)


def auto_vmap(
    *ranks: Any, check: bool = True, chunk_size: int | None = None, **keyword_ranks: Any
) -> Any:
    """Make a function written for single examples accept any leading batch dimensions.

    Give each parameter its rank: the number of dimensions one example has (`0` for a scalar,
    `1` for a vector, `2` for a matrix), `None` for "not batched", or a pytree of those
    matching the argument (like `jax.vmap`'s `in_axes`). Ranks go by keyword, or positionally
    in parameter order (`self` included), or both, as long as no parameter is named twice.

    The batched function takes arguments with any extra leading dimensions. The batch shapes
    (`shape[:ndim - rank]` of each array) broadcast NumPy-style, and every output leaf gets
    the broadcast batch shape prepended. Size-1 batch dimensions are mapped with
    `in_axes=None`, never copied.

    ```python
    import jax.numpy as jnp
    from autovmap import auto_vmap

    @auto_vmap(s=0, v=1, m=2)
    def quad(s, v, m):
        return v @ m @ v + s * v.size

    quad(2.0, jnp.ones((7, 1, 3)), jnp.ones((5, 3, 3))).shape  # (7, 5)
    ```

    Raises:
        RankSpecError: when decorating, if a rank is invalid or names no parameter.
        RankTooLargeError, BroadcastError, TreeStructureError: when calling, before
            `jax.vmap` runs, if the arguments do not fit their ranks.
    """
    if len(ranks) == 1 and not keyword_ranks and (
        callable(ranks[0]) or isinstance(ranks[0], (staticmethod, classmethod))
    ):
        return AutoVmap(check=check, chunk_size=chunk_size)._decorate(ranks[0], caller_locals(1))
    return AutoVmap(*ranks, check=check, chunk_size=chunk_size, **keyword_ranks)


autovmap = auto_vmap
