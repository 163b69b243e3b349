"""`plan`: what a call of an auto-vmapped function will do, without running it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ParamSpec

from ._call import describe, prepare
from ._core import Decorated
from ._report import Plan

_P = ParamSpec("_P")


def decoration_of(fn: Any) -> Decorated | None:
    """The `Decorated` record of an auto-vmapped function (or bound method), if it is one."""
    record = getattr(fn, "__autovmap__", None)
    return record if isinstance(record, Decorated) else None


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
    record = decoration_of(fn)
    if record is None:
        raise TypeError(
            f"`autovmap.plan` takes a function returned by `auto_vmap`; got {fn!r}, which "
            "auto_vmap did not decorate (or which it left unchanged: it had nothing to batch)."
        )
    if inspect.ismethod(fn):  # a bound method: its instance is the first argument
        args = (fn.__self__, *args)  # type: ignore[assignment]
    return describe(record.spec, prepare(record.spec, args, kwargs), record.chunk_size)
