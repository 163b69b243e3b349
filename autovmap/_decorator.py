"""`auto_vmap`, the record that runs every call of a decorated function, and `plan`."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import warnings
from collections.abc import Callable
from typing import Any, ParamSpec

import jax

from ._annotations import AnnotationReader, batched_annotation, caller_frame, contains_jaxtyping
from ._bind import BoundCall, bind, shape_of
from ._check import invoker
from ._describe import Plan, broadcast_error, describe, fmt_shape, rank_too_large
from ._errors import (
    AnnotationCheckError,
    NothingToBatchWarning,
    RankSpecError,
    fn_label,
    hide_from_tracebacks,
)
from ._plan import IncompatibleBatchShapes, VmapPlan, plan_for
from ._run import run_plan
from ._spec import CallSpec, read_spec

hide_from_tracebacks(__file__)

_P = ParamSpec("_P")
_UNSET: Any = object()  # an option not given: a re-decoration keeps the original's


@dataclasses.dataclass(frozen=True, eq=False)
class BatchedCall:
    """Runs the calls of one auto-vmapped function: bind -> ranked leaves -> plan -> run.

    Attached to the functions `auto_vmap` returns as `__autovmap__`, for `plan`, for
    re-decoration and for `python -m autovmap inspect`.
    """

    spec: CallSpec
    check: bool  # whether examples are checked against the annotations
    chunk_size: int | None
    invoke: Callable[[tuple[Any, ...], dict[str, Any]], Any] = dataclasses.field(repr=False)

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._certainly_unbatched(args, kwargs):
            return self.invoke(args, kwargs)
        bound = bind(self.spec, args, kwargs)
        plan = self.plan(bound)
        if plan is None:  # no batch dims: one call, with the ranked leaves as JAX arrays
            if all(isinstance(leaf, jax.Array) for leaf in bound.leaves):
                return self.invoke(bound.args, bound.kwargs)
            return self.invoke(*bound.rebuild([jax.numpy.asarray(x) for x in bound.leaves]))

        def example(leaves: list[Any]) -> Any:
            return self.invoke(*bound.rebuild(leaves))

        try:
            return run_plan(plan, bound.leaves, example, self.chunk_size)
        except AnnotationCheckError as e:
            if getattr(e, "showed_shape", False):
                e.add_note(
                    f"The call has batch shape {fmt_shape(plan.batch_shape)}; the shape above is "
                    "of one example."
                )
            raise

    def _certainly_unbatched(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """True only for calls that certainly need no batching and no conversion: every
        positional argument given and nothing else, each `None` or a JAX array of exactly its
        rank. Keeps the cost of unbatched calls small; anything else takes the full path."""
        ranks = self.spec.plain_ranks
        if kwargs or ranks is None or len(args) != len(ranks):
            return False
        for value, rank in zip(args, ranks):
            if rank is not None and value is not None:
                if not isinstance(value, jax.Array) or value.ndim != rank:
                    return False
        return True

    def plan(self, bound: BoundCall) -> VmapPlan | None:
        """The plan of a bound call, `None` when no leaf has batch dims. Raises our shape
        errors, before any JAX work."""
        batch_shapes = []
        for i, (leaf, rank) in enumerate(zip(bound.leaves, bound.ranks)):
            shape = shape_of(leaf)
            assert shape is not None
            if len(shape) < rank:
                raise rank_too_large(self.spec.fn, bound, i)
            batch_shapes.append(shape[: len(shape) - rank])
        if not any(batch_shapes):
            return None
        try:
            return plan_for(tuple(batch_shapes))
        except IncompatibleBatchShapes as e:
            raise broadcast_error(self.spec.fn, bound, e) from None


def _check_options(check: Any, chunk_size: Any) -> None:
    if check is not _UNSET and not isinstance(check, bool):
        raise TypeError(
            f"`auto_vmap(check=...)` takes True or False, got {check!r}. `check` is an option, "
            "not a parameter name: to rank a parameter called `check`, give its rank "
            "positionally."
        )
    if chunk_size not in (_UNSET, None) and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise (TypeError if not isinstance(chunk_size, int) else ValueError)(
            f"`auto_vmap(chunk_size=...)` takes an int >= 1 or None, got {chunk_size!r}."
        )


class AutoVmap:
    """A configured `auto_vmap` decorator: call it on a function to get the batched function.

    Returned by `auto_vmap(...)` when it is given ranks rather than a function.
    """

    def __init__(
        self,
        /,
        *positional_ranks: Any,
        check: Any = _UNSET,
        chunk_size: Any = _UNSET,
        **keyword_ranks: Any,
    ) -> None:
        _check_options(check, chunk_size)
        self.positional_ranks = positional_ranks
        self.keyword_ranks = keyword_ranks
        self.check = check
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        parts = [repr(r) for r in self.positional_ranks]
        parts += [f"{k}={v!r}" for k, v in self.keyword_ranks.items()]
        if self.check is not _UNSET:
            parts.append(f"check={self.check}")
        if self.chunk_size is not _UNSET:
            parts.append(f"chunk_size={self.chunk_size}")
        return f"auto_vmap({', '.join(parts)})"

    def __call__(self, fn: Callable[..., Any], /) -> Any:
        return self._decorate(fn, caller_frame(1))

    def _decorate(self, fn: Any, frame: types.FrameType | None) -> Any:
        if isinstance(fn, (staticmethod, classmethod)):
            # Either decorator order works: batch the underlying function, re-wrap it.
            return type(fn)(self._decorate(fn.__func__, frame))
        if not callable(fn):
            raise TypeError(
                f"`auto_vmap` decorates functions; got {fn!r}. Use `@auto_vmap(...)` with "
                "ranks, or `@auto_vmap` on a function."
            )
        if inspect.ismethod(fn) and isinstance(
            getattr(fn.__func__, "__autovmap__", None), BatchedCall
        ):
            return types.MethodType(self._decorate(fn.__func__, frame), fn.__self__)
        reader = AnnotationReader(frame)
        previous = getattr(fn, "__autovmap__", None)
        if isinstance(previous, BatchedCall):  # re-decorating: read the original function
            ranks = read_spec(previous.spec.fn, self.positional_ranks, self.keyword_ranks, reader)
            spec = read_spec(
                previous.spec.fn, (), {**previous.spec.explicit, **ranks.explicit}, reader
            )
            check = previous.check if self.check is _UNSET else self.check
            chunk_size = previous.chunk_size if self.chunk_size is _UNSET else self.chunk_size
        else:
            spec = read_spec(fn, self.positional_ranks, self.keyword_ranks, reader)
            check = True if self.check is _UNSET else self.check
            chunk_size = None if self.chunk_size is _UNSET else self.chunk_size
        check = check and any(map(contains_jaxtyping, spec.annotations.values()))
        if not spec.any_ranked:
            if not spec.explicit and any(name != "return" for name in spec.annotations):
                warnings.warn(
                    f"{fn_label(fn)}: no parameter has an annotation that gives a rank (such as "
                    "`Float[Array, 'n']`), so nothing is batched. Give ranks explicitly, "
                    "`auto_vmap(x=1)`, or annotate with jaxtyping array types.",
                    NothingToBatchWarning,
                    stacklevel=3,
                )
            if not check:  # nothing to do: behave exactly as undecorated
                return fn
        return _wrapper(BatchedCall(spec, check, chunk_size, invoker(spec, check)))


def _wrapper(call: BatchedCall) -> Callable[..., Any]:
    spec = call.spec

    @functools.wraps(spec.fn)
    def batched(*args: Any, **kwargs: Any) -> Any:
        return call(args, kwargs)

    signature = _batched_signature(spec)
    batched.__signature__ = signature  # type: ignore[attr-defined]
    batched.__annotations__ = {
        name: p.annotation
        for name, p in signature.parameters.items()
        if p.annotation is not inspect.Parameter.empty
    }
    if "return" in spec.annotations:
        batched.__annotations__["return"] = signature.return_annotation
    batched.__autovmap__ = call  # type: ignore[attr-defined]
    return batched


def _batched_signature(spec: CallSpec) -> inspect.Signature:
    """The signature of the batched interface: each ranked parameter's (and the return's)
    array annotations gain a broadcastable batch prefix, `"*#batch n"`, so that outer
    `jaxtyped`/typeguard/beartype checks accept batched arguments."""
    parameters = []
    for param, rank in zip(spec.signature.parameters.values(), spec.params):
        if param.name in spec.annotations:
            annotation = spec.annotations[param.name]
            if rank.rank is not None:
                annotation = batched_annotation(annotation)
            param = param.replace(annotation=annotation)
        parameters.append(param)
    return_annotation = spec.signature.return_annotation
    if "return" in spec.annotations:
        return_annotation = batched_annotation(spec.annotations["return"])
    return spec.signature.replace(parameters=parameters, return_annotation=return_annotation)


def auto_vmap(
    *ranks: Any, check: bool = _UNSET, chunk_size: int | None = _UNSET, **keyword_ranks: Any
) -> Any:
    """Make a function written for single examples accept any leading batch dimensions.

    Give each parameter its rank: the number of dimensions one example has (`0` for a scalar,
    `1` for a vector, `2` for a matrix), `None` for "not batched", or a pytree of those
    matching the argument (like `jax.vmap`'s `in_axes`). Ranks go by keyword, or positionally
    in parameter order (`self` included), or both, as long as no parameter is named twice.
    Parameters without an explicit rank take it from their jaxtyping annotation
    (`Float[Array, "n n"]` has rank 2); `@auto_vmap`, `@auto_vmap()` and `auto_vmap(fn)` read
    every rank from annotations.

    The batched function takes arguments with any extra leading dimensions. The batch shapes
    (`shape[:ndim - rank]` of each array) broadcast NumPy-style, and every output leaf gets
    the broadcast batch shape prepended. Size-1 batch dimensions are mapped with
    `in_axes=None`, never copied. Ranked array arguments reach the function as JAX arrays
    (`jnp.asarray`), as with `jnp.vectorize`. Under `jax.jit` the program is the one
    hand-written nested `jax.vmap` gives.

    ```python
    import jax.numpy as jnp
    from jaxtyping import Array, Float
    from autovmap import auto_vmap

    @auto_vmap(s=0, v=1, m=2)
    def quad(s, v, m):
        return v @ m @ v + s * v.size

    assert quad(2.0, jnp.ones((7, 1, 3)), jnp.ones((5, 3, 3))).shape == (7, 5)

    @auto_vmap
    def dist(a: Float[Array, "n"], b: Float[Array, "n"]) -> Float[Array, ""]:
        return jnp.linalg.norm(a - b)

    assert dist(jnp.ones((4, 1, 3)), jnp.zeros((6, 3))).shape == (4, 6)
    ```

    Functions, methods, `staticmethod`/`classmethod`, callable objects (ranks from their
    `__call__`), `functools.partial` objects and auto-vmapped functions (re-decorating reads
    the original, keeping its ranks and options unless given again) can all be decorated.

    Args:
        *ranks: ranks of the parameters, in signature order.
        check: with jaxtyping annotations, check every example's arguments and return value
            against them, in one memo scope so named dims agree (once per trace under
            `jax.jit`, and once per shape signature eagerly). `False` turns the checks off.
        chunk_size: evaluate the flattened batch at most this many examples at a time
            (`jax.lax.map`), bounding peak memory; results are identical.
        **keyword_ranks: ranks of the parameters, by name. `check` and `chunk_size` are
            options, so rank parameters with those names positionally.

    Raises:
        RankSpecError: when decorating, if a rank is invalid or names no parameter, or an
            annotation gives no fixed rank (`"*b n"`).
        TypeError: when decorating something that is not a plain function (a coroutine or
            generator function), or when a call does not fit the signature.
        RankTooLargeError, BroadcastError, TreeStructureError: when calling, before
            `jax.vmap` runs, if the arguments do not fit their ranks.
        AnnotationCheckError: when calling with checks on, if an example does not match the
            annotations.
    """
    if ranks and (callable(ranks[0]) or isinstance(ranks[0], (staticmethod, classmethod))):
        fn = ranks[0]
        if len(ranks) > 1 or keyword_ranks:
            given = ", ".join(
                [*map(repr, ranks[1:]), *(f"{k}={v!r}" for k, v in keyword_ranks.items())]
            )
            raise RankSpecError(
                f"{fn_label(fn)}: `auto_vmap(fn, {given})` passes the function together with its "
                f"ranks. Give the ranks first, then the function: `auto_vmap({given})(fn)`, or "
                f"`@auto_vmap({given})` above its definition."
            )
        return AutoVmap(check=check, chunk_size=chunk_size)._decorate(fn, caller_frame(1))
    return AutoVmap(*ranks, check=check, chunk_size=chunk_size, **keyword_ranks)


autovmap = auto_vmap


def plan(fn: Callable[_P, Any], /, *args: _P.args, **kwargs: _P.kwargs) -> Plan:
    """Work out what calling the auto-vmapped `fn` with these arguments would do.

    Nothing is computed: shapes are read, the batch dims broadcast and the `jax.vmap` levels
    planned, exactly as a call would. Bad shapes raise the same errors a call raises.

    ```python
    import jax.numpy as jnp
    from autovmap import auto_vmap, plan

    @auto_vmap(s=0, v=1, m=2)
    def quad(s, v, m):
        return v @ m @ v + s * v.size

    p = plan(quad, 2.0, jnp.ones((7, 1, 3)), jnp.ones((5, 3, 3)))
    assert p.batch_shape == (7, 5)
    print(p)
    ```
    """
    call = getattr(fn, "__autovmap__", None)
    if not isinstance(call, BatchedCall):
        raise TypeError(
            f"`autovmap.plan` takes a function returned by `auto_vmap`; got {fn!r}, which "
            "auto_vmap did not decorate (or which it left unchanged: it had nothing to batch)."
        )
    if inspect.ismethod(fn):  # a bound method: its instance is the first argument
        args = (fn.__self__, *args)  # type: ignore[assignment]
    bound = bind(call.spec, args, kwargs)
    return describe(call.spec.fn, bound, call.plan(bound), call.chunk_size)
