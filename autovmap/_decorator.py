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

from . import _plan
from ._annotations import AnnotationReader, batched_annotation, caller_frame
from ._arrays import all_arrays
from ._bind import BoundCall, bind, bind_call, explain_failure
from ._check import Invoke, OutputChecker, core_sizes, invoker, remembered_invoker
from ._describe import Plan, broadcast_error, describe, fmt_shape, rank_too_large
from ._errors import (
    AnnotationCheckError,
    AutoVmapError,
    NothingToBatchWarning,
    RankSpecError,
    fn_label,
    hide_from_tracebacks,
    tidy_traceback,
    value_label,
)
from ._options import OPTION_NAMES, Options, given_options, mark_defaults
from ._plan import BoundedCache, IncompatibleBatchShapes, VmapPlan, plan_for
from ._remember import Bindings, call_key, start_recording, stop_recording
from ._route import choose_route
from ._run import run_named_unbatched, run_plan
from ._spec import CallSpec, explicit_ranks, read_spec
from ._typecheck import needs_check

hide_from_tracebacks(__file__)

_P = ParamSpec("_P")


@dataclasses.dataclass(frozen=True, eq=False)
class BatchedCall:
    """Runs the calls of one auto-vmapped function: bind -> ranked leaves -> plan -> run.

    Attached to the functions `auto_vmap` returns as `__autovmap__`, for `plan`, for
    re-decoration and for `python -m autovmap inspect`. `vectorize` makes one per layout of a
    call (which arguments are passed, and how).
    """

    spec: CallSpec
    options: Options  # `check` is on only where there are jaxtyping annotations to check
    invoke: Invoke = dataclasses.field(repr=False)  # calls the function, checking if asked
    # With checks on: the callback of a call whose signature passed before, from the dim sizes
    # its check bound (`remembered_invoker`); those callbacks are remembered per signature
    # (`passed`), each with whether `_call` ran that signature as given.
    remembered: Callable[[Bindings], Invoke] | None = dataclasses.field(default=None, repr=False)
    passed: BoundedCache = dataclasses.field(default_factory=lambda: BoundedCache(256), repr=False)
    # The signature's outputs, compared with each example's result (`None`: not checked).
    outputs: OutputChecker | None = dataclasses.field(init=False, repr=False)
    # A call of arguments that need no batching runs as given: no named core dims to compare,
    # no axis name to bind.
    runs_as_given: bool = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        core = self.spec.core
        outputs = None if core is None or core.outputs is None else OutputChecker(self.spec)
        object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "runs_as_given", core is None and self.options.axis_name is None)

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.remembered is None:
            return self._call(self.invoke, args, kwargs)
        # A call's checks depend only on what they read of it (`call_key`): checked once. The
        # key also holds all that `bind_call` reads (the number of arguments, keyword names,
        # each array's type and shape, `None`s), so whether `_call` runs such a call as given
        # (every ranked argument a JAX array of exactly its rank) is remembered with it.
        key = call_key(args, kwargs)
        if key is not None:
            found = self.passed.get(key)
            if found is not None:
                invoke, as_given = found
                return invoke(*args, **kwargs) if as_given else self._call(invoke, args, kwargs)
        seen, token = start_recording(self.spec)
        try:
            result = self._call(self.invoke, args, kwargs)
        finally:
            stop_recording(token)
        if key is not None and seen and seen[0] is not None:
            as_given = self.runs_as_given and bind_call(self.spec, args, kwargs) is None
            self.passed.put(key, (self.remembered(seen[0]), as_given))
        return result

    def _call(self, invoke: Invoke, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        spec = self.spec
        bound = bind_call(spec, args, kwargs)
        if bound is None:  # every ranked argument a JAX array of exactly its rank
            if self.runs_as_given:
                return invoke(*args, **kwargs)
            if self.options.axis_name is None:
                assert spec.core is not None  # (not `runs_as_given`)
                sizes = spec.core.sizes(args)
                if sizes is not None:
                    return self._example(invoke, sizes, args, kwargs)
            bound = bind(spec, args, kwargs)  # named dims that differ: explained below
        plan, sizes = self.plan(bound)
        options = self.options
        if plan is None:  # no batch dims: one call, with the ranked leaves as JAX arrays
            if all_arrays(bound.leaves):
                args, kwargs = bound.args, bound.kwargs
            else:
                args, kwargs = bound.rebuild([jax.numpy.asarray(x) for x in bound.leaves])
            if options.axis_name is not None:
                return run_named_unbatched(
                    lambda: self._example(invoke, sizes, args, kwargs), options.axis_name
                )
            return self._example(invoke, sizes, args, kwargs)

        def example(leaves: list[Any]) -> Any:
            return self._example(invoke, sizes, *bound.rebuild(leaves))

        try:
            return run_plan(
                plan,
                bound.leaves,
                example,
                chunk_size=options.chunk_size,
                axis_name=options.axis_name,
                spmd_axis_name=options.spmd_axis_name,
            )
        except AnnotationCheckError as e:
            # Only the call whose check failed says its batch shape (not the calls around it).
            if getattr(e, "showed_shape", False) and getattr(e, "checked_by", None) is self.spec:
                e.add_note(
                    f"The call has batch shape {fmt_shape(plan.batch_shape)}; the shape above is "
                    "of one example."
                )
            raise

    def _example(
        self,
        invoke: Invoke,
        sizes: dict[str, int] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """One example (the whole call when unbatched): the function, then its outputs checked
        against the named sizes of the call's arguments, read once per call."""
        out = invoke(*args, **kwargs)
        if self.outputs is not None:
            assert sizes is not None
            self.outputs(out, sizes, args, kwargs)
        return out

    def plan(self, bound: BoundCall) -> tuple[VmapPlan | None, dict[str, int] | None]:
        """The plan of a bound call (`None` when no leaf has batch dims) and the sizes of its
        named core dims (`None` when it has none). Raises our shape errors, before any JAX
        work."""
        if bound.short is not None:
            raise rank_too_large(self.spec.fn, bound, bound.short)
        spec = self.spec
        sizes = None if spec.core is None else core_sizes(spec, bound)  # before broadcasting
        if not any(bound.batch_shapes):
            return None, sizes
        batch_shapes = tuple(bound.batch_shapes)
        plan = _plan.PLANS.get(batch_shapes)  # (`plan_for`'s lookup: every batched call asks)
        if plan is not None:
            return plan, sizes
        try:
            return plan_for(batch_shapes), sizes
        except IncompatibleBatchShapes as e:
            raise broadcast_error(self.spec.fn, bound, e) from None

    def prepare(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[BatchedCall, tuple[Any, ...], dict[str, Any]]:
        """The record that runs a call with these arguments, and the arguments it takes: this
        one, unchanged. (`vectorize`'s record picks one per layout of the call.)"""
        return self, args, kwargs


class AutoVmap:
    """A configured `auto_vmap` decorator: call it on a function to get the batched function.

    Returned by `auto_vmap(...)` when it is given ranks rather than a function. Keywords named
    like an option (`Options`) set that option; every other keyword is a rank.
    """

    def __init__(self, /, *positional_ranks: Any, **keywords: Any) -> None:
        self.options = given_options(keywords)
        Options(**self.options)  # a bad option is an error now, not when decorating
        self.positional_ranks = positional_ranks
        self.keyword_ranks = {k: v for k, v in keywords.items() if k not in OPTION_NAMES}

    def __repr__(self) -> str:
        parts = [repr(r) for r in self.positional_ranks]
        parts += [f"{k}={v!r}" for k, v in {**self.keyword_ranks, **self.options}.items()]
        return f"auto_vmap({', '.join(parts)})"

    def __call__(self, fn: Callable[..., Any], /) -> Any:
        return self._decorate(fn, caller_frame(1))

    def _decorate(self, fn: Any, frame: types.FrameType | None) -> Any:
        if isinstance(fn, (staticmethod, classmethod)):
            # Either decorator order works: batch the underlying function, re-wrap it.
            return type(fn)(self._decorate(fn.__func__, frame))
        if not callable(fn):
            raise RankSpecError(
                f"`auto_vmap` decorates functions; got {value_label(fn)}. Did you forget the "
                "function? Write `auto_vmap(x=1)(f)(x)`, or `@auto_vmap(...)` above a `def`."
            )
        if inspect.ismethod(fn) and getattr(fn.__func__, "__autovmap__", None) is not None:
            return types.MethodType(self._decorate(fn.__func__, frame), fn.__self__)
        previous = getattr(fn, "__autovmap__", None)
        redecorate = getattr(previous, "redecorate", None)
        if callable(redecorate):  # a `vectorize` function: it takes the options it can honour
            return redecorate(self.positional_ranks, self.keyword_ranks, self.options)
        reader = AnnotationReader(frame)
        if isinstance(previous, BatchedCall):
            # Re-decorating: the original function, its ranks and options, then the new ones.
            fn = previous.spec.fn
            new = explicit_ranks(
                fn, previous.spec.signature, self.positional_ranks, self.keyword_ranks
            )
            explicit: dict[str, Any] = {**previous.spec.explicit, **new}
            options = dataclasses.replace(previous.options, **self.options)
            spec = read_spec(fn, (), explicit, reader, options.signature, options.check)
        else:
            options = Options(**self.options)
            spec = read_spec(
                fn,
                self.positional_ranks,
                self.keyword_ranks,
                reader,
                options.signature,
                options.check,
            )
        clash = [name for name in self.options if name in spec.signature.parameters]
        if clash:
            raise RankSpecError(
                f"{fn_label(fn)}: `{clash[0]}` is both a parameter of the function and an option "
                f"of `auto_vmap`, so `auto_vmap({clash[0]}=...)` is ambiguous. To rank the "
                "parameter, give its rank positionally; to set the option, rename the parameter."
            )
        if options.check and not any(map(needs_check, spec.annotations.values())):
            options = dataclasses.replace(options, check=False)  # nothing to check
        if not spec.any_ranked:
            warnings.warn(
                f"{fn_label(fn)}: no parameter gets a rank, so nothing is batched. Give ranks "
                "explicitly, `auto_vmap(x=1)`, or annotate with jaxtyping array types (such "
                "as `Float[Array, 'n']`).",
                NothingToBatchWarning,
                stacklevel=3,
            )
            if not options.check and options.axis_name is None:  # behave as undecorated
                return fn
        remembered = remembered_invoker(spec) if options.check else None
        return _wrapper(BatchedCall(spec, options, invoker(spec, options.check), remembered))


def _wrapper(call: BatchedCall) -> Callable[..., Any]:
    spec = call.spec
    # Without checks a call is `_call` with the one callback: bound here, one frame less a call.
    run = call if call.remembered is not None else functools.partial(call._call, call.invoke)

    @functools.wraps(spec.fn)
    def batched(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(args, kwargs)
        except Exception as error:  # free until raised
            replacement = explain_failure(error, spec, args, kwargs)
            if replacement is None:
                tidy_traceback(error)  # the user's line, then the message with its notes
                raise
        try:  # raised and re-raised here, so that no frame of this package shows either
            raise replacement from None
        except AutoVmapError as error:
            tidy_traceback(error)
            raise

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
    *ranks: Any,
    check: bool = True,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    spmd_axis_name: Any = None,
    signature: str | None = None,
    **keyword_ranks: Any,
) -> Any:
    """Make a function written for single examples accept any leading batch dimensions.

    Give each parameter its rank: the number of dimensions one example has (`0` for a scalar,
    `1` for a vector, `2` for a matrix), `None` for "not batched", or a pytree of those
    matching the argument (like `jax.vmap`'s `in_axes`). Ranks go by keyword, or positionally
    in parameter order (`self` included), or both, as long as no parameter is named twice.
    Parameters without an explicit rank take it from their jaxtyping annotation
    (`Float[Array, "n n"]` has rank 2); `@auto_vmap`, `@auto_vmap()` and `auto_vmap(fn)` read
    every rank from annotations. A dim string in place of a rank (`m="n n"`), or a NumPy gufunc
    `signature="(n),(n,n)->()"`, also names the dims: like-named dims must then have equal sizes
    in every argument, which is checked on each call, from the shapes, before `jax.vmap`.

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
            `jax.jit`, and once per shape signature eagerly). `False` turns these checks off;
            like-named dims are then still compared, from the shapes, before `jax.vmap`.
        chunk_size: evaluate at most this many examples at a time per device, bounding peak
            memory. Each chunk gives what `jax.jit(jax.vmap(f))` gives on it: integer, boolean
            and PRNG-key results equal the unchunked ones bit for bit; floating-point
            reductions may differ in the last bits (XLA may sum a chunk in another order than
            the whole batch). A sharded batch is chunked on each device's own shard: the
            output keeps the batch's sharding, with no collective added.
        axis_name: bind this name to the whole batch (every batch dim), so that collectives
            inside the function, `jax.lax.pmean(x, axis_name)`, reduce over every example.
            Cannot be combined with `chunk_size`.
        spmd_axis_name: the mesh axis (or axes) the leading batch dim is sharded over, passed
            to `jax.vmap(spmd_axis_name=...)`; a `PartitionSpec` gives one entry per leading
            batch dim.
        signature: a NumPy gufunc signature, `"(n),(n,n)->()"`: its entries rank the
            parameters in order (skipping a leading `self`/`cls` and parameters ranked
            `None`) and name their dims; its outputs are checked on each example.
        **keyword_ranks: ranks of the parameters, by name. `check`, `chunk_size`,
            `axis_name`, `spmd_axis_name` and `signature` are options, so rank parameters with
            those names positionally.

    Raises:
        RankSpecError: when decorating, if a rank is invalid or names no parameter, or an
            annotation gives no fixed rank (`"*b n"`), or the signature does not fit.
        TypeError: when decorating something that is not a plain function (a coroutine or
            generator function), or when a call does not fit the signature.
        RankTooLargeError, BroadcastError, TreeStructureError, CoreDimError: when calling,
            before `jax.vmap` runs, if the arguments do not fit their ranks or named dims.
        OutputSignatureError: if an example's result does not fit the signature's outputs.
        AnnotationCheckError: when calling with checks on, if an example does not match the
            annotations.
    """
    # The options, by the names `Options` lists (a test keeps this signature equal to it).
    options = given_options(locals())
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
        return AutoVmap(**options)._decorate(fn, caller_frame(1))
    return AutoVmap(*ranks, **options, **keyword_ranks)


mark_defaults(auto_vmap)
autovmap = auto_vmap


def plan(fn: Callable[_P, Any], /, *args: _P.args, **kwargs: _P.kwargs) -> Plan:
    """Work out what calling the auto-vmapped `fn` with these arguments would do.

    Nothing is computed: shapes are read, the batch dims broadcast and the `jax.vmap` levels
    planned, exactly as a call would. Bad shapes raise the same errors a call raises. `fn` is
    a function returned by `auto_vmap` or by `autovmap.vectorize`.

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
    record: Any = getattr(fn, "__autovmap__", None)  # a `BatchedCall`, or `vectorize`'s
    if not callable(getattr(record, "prepare", None)):
        raise TypeError(
            f"`autovmap.plan` takes a function returned by `auto_vmap`; got {fn!r}, which "
            "auto_vmap did not decorate (or which it left unchanged: it had nothing to batch)."
        )
    if inspect.ismethod(fn):  # a bound method: its instance is the first argument
        args = (fn.__self__, *args)  # type: ignore[assignment]
    call, call_args, call_kwargs = record.prepare(args, kwargs)
    bound = bind(call.spec, call_args, call_kwargs)
    options = call.options
    vmap_plan, _ = call.plan(bound)
    route = choose_route(  # the very choice the call makes (`run_plan`)
        vmap_plan,
        bound.leaves,
        chunk_size=options.chunk_size,
        axis_name=options.axis_name,
        spmd_axis_name=options.spmd_axis_name,
    )
    return describe(call.spec.fn, bound, vmap_plan, route, options.chunk_size)
