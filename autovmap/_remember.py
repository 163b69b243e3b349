"""Remembered check outcomes: the key of a call's signature, and jaxtyping's memo scope.

Whether a call's examples pass their checks depends on what the checks read of the arguments:
the types, shapes, dtypes and weak types of arrays, the values of small scalars and strings,
the node types and metadata of pytrees (dict keys with their types, dataclass fields), the
identity of functions, and the JAX settings that decide what an argument becomes on the way in
(`jax_enable_x64`, the dtype promotion mode). `call_key` builds a key of exactly that, holding
nothing that keeps a user's object alive (functions and classes by weak reference, small NumPy
metadata by value), or returns `None` for a call that has no such key (large strings, arbitrary
objects): that call is checked every time.

A call whose key passed before is run without checks, but still inside a jaxtyping memo scope
holding the dim sizes the checked call bound (`remembered_bindings`, `push_scope`), so that
`isinstance(y, Float[Array, "n"])` inside the function answers as it did the first time.
"""

from __future__ import annotations

import enum
import functools
import threading
import types
import weakref
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

import jax
import jaxtyping
import numpy as np

_SMALL = 256  # the longest str/bytes (and the most NumPy bytes) a key holds by value
_SCALARS = frozenset({bool, int, float, complex, type(None)})
# Compared by identity (held weakly): functions, and classes and enum members.
_BY_IDENTITY: tuple[type, ...] = (
    types.FunctionType,
    types.BuiltinFunctionType,
    functools.partial,
    jax.custom_jvp,
    jax.custom_vjp,
    type(jax.jit(lambda: None)),
    type,
    enum.Enum,
)

Bindings = tuple[dict[str, Any], ...]


class _NoKey(Exception):
    """Internal: a value whose check outcome no small key decides."""


def _weak(value: Any) -> Any:
    """`value` by identity, without keeping it alive. The hash is taken now, while `value`
    lives: metadata made afresh by each flatten is gone by the time the key is looked up."""
    try:
        reference = weakref.ref(value)
        hash(reference)
    except TypeError:  # no weak references to it, or unhashable
        raise _NoKey from None
    return reference


def _small(value: str | bytes) -> tuple[type, str | bytes]:
    if len(value) > _SMALL:
        raise _NoKey
    return type(value), value


_ARRAY_TYPES: set[type] = set()  # the `jax.Array` classes seen (jax's own: arrays, tracers)


def _part(value: Any) -> Any:
    """What the checks can read of one argument (or pytree child)."""
    kind = type(value)
    if kind in _ARRAY_TYPES:  # the common case first: its abstract value holds the weak type
        return kind, value.aval
    if kind in _SCALARS:
        if kind is int and value.bit_length() > 8 * _SMALL:
            raise _NoKey
        return kind, value
    if isinstance(value, jax.Array):
        _ARRAY_TYPES.add(kind)
        return kind, value.aval
    if kind is np.ndarray:
        return kind, value.shape, value.dtype
    if kind is str or kind is bytes:
        return _small(value)
    if kind is tuple or kind is list:
        return kind, tuple(map(_part, value))
    if kind is dict:  # keys with their types: `{1: a}` and `{1.0: a}` differ
        return kind, tuple((_part(k), _part(v)) for k, v in value.items())
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        return kind, value.item()
    return _node(value)


def _node(value: Any) -> Any:
    """A registered pytree node by its type, metadata and children; functions and classes by
    identity; anything else has no key."""
    children, treedef = jax.tree_util.tree_flatten(value, is_leaf=lambda x: x is not value)
    data = _node_data(treedef)
    if data is None:  # not a pytree node
        if isinstance(value, _BY_IDENTITY):
            return _weak(value)
        raise _NoKey
    node_type, metadata = data
    return _weak(node_type), _metadata(metadata), tuple(map(_part, children))


def _metadata(value: Any) -> Any:
    """A pytree node's static metadata, by value where it is small, else by identity."""
    kind = type(value)
    if kind in _SCALARS:
        return kind, value
    if kind is str or kind is bytes:
        return _small(value)
    if kind is tuple or kind is list or kind is frozenset:
        return kind, tuple(map(_metadata, value))
    if kind is dict:
        return kind, tuple((_metadata(k), _metadata(v)) for k, v in value.items())
    if isinstance(value, np.ndarray):  # by value: a copy of a small one, never the array
        if value.nbytes > _SMALL or value.dtype.hasobject:
            raise _NoKey
        return kind, value.shape, value.dtype, value.tobytes()
    if isinstance(value, jax.Array):
        raise _NoKey
    return _weak(value)  # a sentinel, a function, a class: static by JAX's contract


def _node_data(treedef: Any) -> Any:
    return treedef.node_data()


def _public_settings() -> tuple[Any, ...]:
    """The JAX settings that decide what an argument becomes inside the call."""
    config: Any = jax.config
    return config.jax_enable_x64, config.jax_numpy_dtype_promotion


def _setting_states() -> tuple[Any, Any] | None:
    """jax's own states of `_public_settings`, read in a third of the time, where this jax has
    them (checked against the public values once); else `None`."""
    try:
        from jax._src import config  # noqa: PLC0415

        x64: Any = config.enable_x64
        promotion: Any = config.numpy_dtype_promotion
        if (x64.value, promotion.value) == _public_settings():
            return x64, promotion
    except (ImportError, AttributeError):  # pragma: no cover - another jax layout
        pass
    return None  # pragma: no cover


_states = _setting_states()


def call_key(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """A key that decides whether a call passes its checks, or `None` if there is none."""
    # Inlined, as this runs on every checked call: `_part` of an array (in a plain loop: on
    # Python 3.11 a comprehension is a call), and the settings.
    found = []
    try:
        for value in args:
            kind = type(value)
            found.append((kind, value.aval) if kind in _ARRAY_TYPES else _part(value))
        parts = tuple(found)
        if kwargs:
            parts += tuple((name, _part(value)) for name, value in kwargs.items())
    except _NoKey:
        return None
    except RecursionError:
        return None
    if _states is None:  # pragma: no cover - another jax layout
        return _public_settings(), len(args), parts
    return (_states[0].value, _states[1].value), len(args), parts


# --------------------------------------------------------------------------------------------
# jaxtyping's memo scope. `jaxtyped("context")` is the public way to open one, but costs about
# 2 µs a call; its storage functions do the same in a fraction of that. Where they are missing
# (another jaxtyping version), the public context is used and no outcome is remembered.

_storage: Any
try:
    from jaxtyping import _storage
except ImportError:  # pragma: no cover - another jaxtyping layout
    _storage = None
_get_memo = getattr(_storage, "get_shape_memo", None)
_push_memo = getattr(_storage, "push_shape_memo", None)
_pop_memo = getattr(_storage, "pop_shape_memo", None)
_set_memo = getattr(_storage, "set_shape_memo", None)
if None in (_get_memo, _push_memo, _pop_memo, _set_memo):  # pragma: no cover
    _get_memo = _push_memo = _pop_memo = _set_memo = None

_fallback = threading.local()  # the fallback's open contexts, per thread


def push_scope(bindings: Bindings | None = None) -> None:
    """Open a jaxtyping memo scope, holding `bindings` if given; close it with `pop_scope`."""
    if _push_memo is None:  # pragma: no cover - another jaxtyping layout
        context = jaxtyping.jaxtyped("context")
        context.__enter__()
        _fallback.__dict__.setdefault("contexts", []).append(context)
        return
    memos = _push_memo({})
    if bindings is not None:
        for memo, bound in zip(memos, bindings):
            memo.update(bound)


def pop_scope() -> None:
    if _pop_memo is None:  # pragma: no cover - another jaxtyping layout
        _fallback.contexts.pop().__exit__(None, None, None)
        return
    _pop_memo()


def open_memo() -> tuple[dict[str, Any], ...] | None:
    """The memo of the jaxtyping scope open now (its dicts themselves, which checks bind dims
    in), or `None` where no scope is open or this jaxtyping's storage is unknown."""
    if _get_memo is None:  # pragma: no cover - another jaxtyping layout
        return None
    memo: tuple[dict[str, Any], ...] = _get_memo()
    return memo if _get_memo()[0] is memo[0] else None  # (no scope: fresh dicts each time)


def restore_memo(saved: tuple[dict[str, Any], ...]) -> None:
    """Put back the open scope's memo as `open_memo` gave it (copied beforehand)."""
    assert _set_memo is not None
    _set_memo(*saved)


def current_bindings() -> Bindings | None:
    """The dim sizes bound in the current scope, to open a remembered call's scope with; `None`
    where they cannot be copied faithfully (pytree structures, which may hold user objects)."""
    if _get_memo is None:  # pragma: no cover - another jaxtyping layout
        return None
    single, variadic, *rest = _get_memo()
    if any(rest):
        return None
    return dict(single), dict(variadic)


# The call being checked for the first time records the bindings of its first checked example
# here, so that later calls with its key can open the same scope.
_recording: ContextVar[tuple[object, list[Bindings | None]] | None] = ContextVar(
    "autovmap_recording", default=None
)


def start_recording(owner: object) -> tuple[list[Bindings | None], Any]:
    box: list[Bindings | None] = []
    return box, _recording.set((owner, box))


def stop_recording(token: Any) -> None:
    _recording.reset(token)


def record(owner: object) -> None:
    """Called by a checker after its arguments passed: keeps the first example's bindings."""
    recording = _recording.get()
    if recording is not None and recording[0] is owner and not recording[1]:
        recording[1].append(current_bindings())


def _memo_stacks() -> tuple[Any, int] | None:
    """jaxtyping's per-thread memo stacks and the width of one entry, where a scope pushed by
    `push_shape_memo` is a tuple of fresh dicts on them (checked once, here); else `None`."""
    local = getattr(_storage, "_shape_storage", None)
    if _push_memo is None or _pop_memo is None or local is None:
        return None
    memos = _push_memo({})
    try:
        stack = getattr(local, "memo_stack", None)
        fits = stack is not None and stack[-1] is memos and memos[0] == {} and memos[1] == {}
        fits = fits and isinstance(memos, tuple) and all(type(m) is dict for m in memos)
    finally:
        _pop_memo()
    return (local, len(memos)) if fits else None


_stacks = _memo_stacks()


class InScope:
    """Calls a function inside a memo scope holding the bindings a checked call made."""

    def __init__(self, fn: Callable[..., Any], bindings: Bindings) -> None:
        self.fn = fn
        self.bindings = bindings
        self.extra = _stacks[1] - len(bindings) if _stacks is not None else 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _stacks is None:  # pragma: no cover - another jaxtyping layout
            push_scope(self.bindings)
            try:
                return self.fn(*args, **kwargs)
            finally:
                pop_scope()
        try:
            stack = _stacks[0].memo_stack
        except AttributeError:  # the first scope of this thread
            push_scope()
            pop_scope()
            stack = _stacks[0].memo_stack
        # What `push_scope(self.bindings)` does, in a third of the time: fresh dicts, since
        # the function may bind more dims in them.
        single, variadic = self.bindings
        if self.extra == 2:  # jaxtyping's layout today: pytree structures, arguments
            stack.append((dict(single), dict(variadic), {}, {}))
        else:  # pragma: no cover - other widths
            stack.append((dict(single), dict(variadic), *[{} for _ in range(self.extra)]))
        try:
            return self.fn(*args, **kwargs)
        finally:
            stack.pop()
