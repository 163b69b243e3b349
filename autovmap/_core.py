"""`auto_vmap`: the decorator, and the wrapper it returns."""

from __future__ import annotations

import dataclasses
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
from ._call import Invoke, call
from ._check import Checker
from ._errors import RankSpecError
from ._spec import CallSpec, build_call_spec, explicit_ranks
from ._traceback import hide_from_tracebacks

hide_from_tracebacks(__file__)

@dataclasses.dataclass(frozen=True)
class Decorated:
    """What `auto_vmap` attaches to the functions it returns, as `__autovmap__`, for `plan`
    and `python -m autovmap inspect`."""

    spec: CallSpec
    chunk_size: int | None
    annotations: dict[str, Any]  # resolved annotations by name, "return" included
    checked: bool


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
            return call(spec, invoke, self.chunk_size, args, kwargs)

        batched.__signature__ = _batched_signature(spec, annotations)  # type: ignore[attr-defined]
        batched.__annotations__ = {
            name: p.annotation
            for name, p in batched.__signature__.parameters.items()  # type: ignore[attr-defined]
            if p.annotation is not inspect.Parameter.empty
        }
        if "return" in annotations:
            batched.__annotations__["return"] = batched.__signature__.return_annotation  # type: ignore[attr-defined]
        batched.__autovmap__ = Decorated(  # type: ignore[attr-defined]
            spec, self.chunk_size, annotations, checked
        )
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
    Parameters without an explicit rank take it from their jaxtyping annotation
    (`Float[Array, "n n"]` has rank 2); `@auto_vmap`, `@auto_vmap()` and `auto_vmap(fn)` read
    every rank from annotations.

    The batched function takes arguments with any extra leading dimensions. The batch shapes
    (`shape[:ndim - rank]` of each array) broadcast NumPy-style, and every output leaf gets
    the broadcast batch shape prepended. Size-1 batch dimensions are mapped with
    `in_axes=None`, never copied. Under `jax.jit` the program is the one hand-written nested
    `jax.vmap` gives.

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

    Args:
        *ranks: ranks of the parameters, in signature order.
        check: with jaxtyping annotations, check every example's arguments and return value
            against them, in one memo scope so named dims agree (once per trace under
            `jax.jit`). `False` turns the checks off.
        chunk_size: evaluate the flattened batch at most this many examples at a time
            (`jax.lax.map`), bounding peak memory; results are identical.
        **keyword_ranks: ranks of the parameters, by name. `check` and `chunk_size` are
            options, so rank parameters with those names positionally.

    Raises:
        RankSpecError: when decorating, if a rank is invalid or names no parameter, or an
            annotation gives no fixed rank (`"*b n"`).
        RankTooLargeError, BroadcastError, TreeStructureError: when calling, before
            `jax.vmap` runs, if the arguments do not fit their ranks.
        AnnotationCheckError: when calling with checks on, if an example does not match the
            annotations.
    """
    if len(ranks) == 1 and not keyword_ranks and (
        callable(ranks[0]) or isinstance(ranks[0], (staticmethod, classmethod))
    ):
        return AutoVmap(check=check, chunk_size=chunk_size)._decorate(ranks[0], caller_locals(1))
    return AutoVmap(*ranks, check=check, chunk_size=chunk_size, **keyword_ranks)


autovmap = auto_vmap
