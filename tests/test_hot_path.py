"""The per-call path: its shape through the package, and the one-walk binding of plain calls.

A call giving exactly the positional arguments of a function with int ranks is bound by
`_bind.bind_call` in one walk (`None` when it certainly needs no batching); every other call by
`_bind.bind`. The fast walk must be invisible: the same leaves, batch shapes, outputs and errors
as the general one. No timing here: `benchmarks/hot_path.py` measures.
"""

from __future__ import annotations

import pathlib
import sys
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import Array, Float
from oracle import assert_trees_close, loop

import autovmap
from autovmap import AutoVmapError, auto_vmap
from autovmap._bind import bind, bind_call

PACKAGE = pathlib.Path(autovmap.__file__).resolve().parent


def _package_module(frame: types.FrameType) -> str | None:
    path = pathlib.Path(frame.f_code.co_filename)
    if path.parent == PACKAGE:
        return path.stem
    return None


def trace_modules(fn: Any, *args: Any) -> tuple[Any, list[str]]:
    """Call `fn(*args)` under `sys.setprofile`; return its result and the package modules on
    the stack (outermost first, repeats of one module in a row collapsed) where the most
    distinct package modules were nested at once."""
    deepest: list[str] = []

    def profile(frame: types.FrameType, event: str, arg: Any) -> None:
        nonlocal deepest
        if event != "call":
            return
        chain: list[str] = []
        f: types.FrameType | None = frame
        while f is not None:
            module = _package_module(f)
            if module is not None and (not chain or chain[-1] != module):
                chain.append(module)
            f = f.f_back
        chain.reverse()
        if len(set(chain)) > len(set(deepest)):
            deepest = chain

    sys.setprofile(profile)
    try:
        result = fn(*args)
    finally:
        sys.setprofile(None)
    return result, deepest


@auto_vmap
def dist(a: Float[Array, "n"], b: Float[Array, "n"]) -> Float[Array, ""]:
    return jnp.sqrt(jnp.sum((a - b) ** 2))


def test_one_warm_annotated_batched_call_nests_at_most_four_package_modules() -> None:
    a = jnp.asarray(np.random.default_rng(0).normal(size=(4, 1, 3)), jnp.float32)
    b = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)), jnp.float32)
    dist(a, b)  # warm: checked once, planned once, the nested vmap built once
    out, chain = trace_modules(dist, a, b)
    assert_trees_close(out, loop(dist.__wrapped__, [a, b], [1, 1], (4, 5)))
    # The trace saw the call go through the package into the user's function.
    assert chain[0] == "_decorator", chain
    assert len(chain) >= 2, chain
    assert len(set(chain)) <= 4, f"the call nests {len(set(chain))} package modules: {chain}"


def _fast_and_general(spec: Any, args: tuple[Any, ...]) -> tuple[Any, Any]:
    return bind_call(spec, args, {}), bind(spec, args, {})


def quad(s, v, m):
    return v @ m @ v + s * v.size


def pair(x, y):
    return x * jnp.sum(y)


ONES = jnp.ones
CALLS = [
    # (function, ranks, arguments)
    (quad, dict(s=0, v=1, m=2), (jnp.float32(2.0), ONES((4, 3)), ONES((3, 3)))),
    (quad, dict(s=0, v=1, m=2), (jnp.float32(2.0), ONES((7, 1, 3)), ONES((5, 3, 3)))),
    (quad, dict(s=0, v=1, m=2), (jnp.float32(2.0), ONES(3), ONES((3, 3)))),  # unbatched
    (quad, dict(s=0, v=1, m=2), (ONES(2), ONES(3), ONES((3, 3)))),  # s batched only
    (quad, dict(s=0, v=1, m=None), (2.0, ONES((4, 3)), np.ones((3, 3)))),  # scalar, NumPy
    (quad, dict(s=0, v=1, m=2), (2.0, np.ones((4, 3)), ONES((3, 3)))),  # NumPy: general walk
    (pair, dict(x=1, y=1), (ONES((2, 3)), None)),  # a None argument
    (quad, dict(s=0, v=1, m=2), (ONES(()), None, ONES((2, 1, 3, 3)))),  # exact, None, batched
    (pair, dict(x=1, y=1), (ONES((2, 3)), [ONES(3), ONES((2, 3))])),  # a pytree: general walk
    (pair, dict(x=0, y=None), (ONES(5), "anything")),
]


@pytest.mark.parametrize("fn, ranks, args", CALLS)
def test_the_fast_walk_binds_as_the_general_walk(fn: Any, ranks: Any, args: Any) -> None:
    spec = auto_vmap(**ranks)(fn).__autovmap__.spec
    fast, general = _fast_and_general(spec, args)
    if fast is None:  # certainly unbatched: every ranked leaf a JAX array at its rank
        assert not any(general.batch_shapes)
        assert all(isinstance(leaf, jax.Array) for leaf in general.leaves)
        assert general.short is None
        return
    assert [id(x) for x in fast.leaves] == [id(x) for x in general.leaves]
    assert fast.ranks == general.ranks
    assert fast.batch_shapes == general.batch_shapes
    assert fast.short == general.short
    assert fast.leaf_labels() == general.leaf_labels()
    replaced = [jnp.zeros_like(x) for x in general.leaves]
    fast_args, fast_kwargs = fast.rebuild(replaced)
    general_args, general_kwargs = general.rebuild(replaced)
    assert fast_kwargs == general_kwargs
    assert len(fast_args) == len(general_args)
    for x, y in zip(fast_args, general_args):
        assert x is y or jax.tree.structure(x) == jax.tree.structure(y)
        if x is not y:
            assert all(a is b for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)))
    # A plain call makes its arguments only when asked: the same as the general walk's.
    for made, bound in zip(fast.arguments, general.arguments, strict=True):
        assert (made.key, made.param, made.slots, made.start) == (
            bound.key,
            bound.param,
            bound.slots,
            bound.start,
        )
        assert made.value is bound.value
        rebuilt, expected = made.rebuild(replaced), bound.rebuild(replaced)
        assert jax.tree.structure(rebuilt) == jax.tree.structure(expected)
        assert all(a is b for a, b in zip(jax.tree.leaves(rebuilt), jax.tree.leaves(expected)))


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except (AutoVmapError, TypeError, ValueError) as e:  # ours, or the function's own
        return type(e), str(e)


OUTCOMES = [
    # positional arguments (the fast walk) against the same by keyword (the general walk)
    (dict(s=0, v=1, m=2), (jnp.float32(2.0), ONES((4, 3)), ONES((3, 3)))),
    (dict(s=0, v=1, m=2), (jnp.float32(2.0), ONES((7, 1, 3)), ONES((5, 3, 3)))),
    (dict(s=0, v=1, m=2), (jnp.float32(2.0), ONES(3), ONES((3, 3)))),
    (dict(s=0, v=1, m=2), (jnp.float32(2.0), ONES((4, 3)), ONES(3))),  # m below its rank
    (dict(s=0, v=1, m=2), (jnp.float32(2.0), ONES((4, 3)), ONES((5, 3, 3)))),  # no broadcast
    (dict(s=0, v="n", m="n n"), (jnp.float32(2.0), ONES((4, 3)), ONES((2, 2)))),  # n differs
    (dict(s=0, v="n", m="n n"), (jnp.float32(2.0), ONES(3), ONES((2, 2)))),  # unbatched too
    (dict(s=0, v="n", m="n n"), (jnp.float32(2.0), ONES(3), ONES((3, 3)))),
    (dict(s=0, v="n", m="n n"), (jnp.float32(2.0), ONES((4, 3)), ONES((3, 3)))),
    (dict(s=0, v="n", m="n n"), (jnp.float32(2.0), ONES((4, 3)), ONES((4, 3, 2)))),
    (dict(s=0, v="#n", m="n n"), (jnp.float32(2.0), ONES((4, 1)), ONES((3, 3)))),
    (dict(s=0, v="3", m="n n"), (jnp.float32(2.0), ONES((4, 2)), ONES((2, 2)))),  # fixed 3
]


@pytest.mark.parametrize("ranks, args", OUTCOMES)
def test_a_call_by_position_and_by_keyword_give_the_same_outcome(ranks: Any, args: Any) -> None:
    f = auto_vmap(**ranks)(quad)
    by_position = _outcome(f, *args)
    by_keyword = _outcome(f, **dict(zip("svm", args)))
    if isinstance(by_position, tuple):  # an error: the same class and message
        assert by_position == by_keyword
    else:
        assert_trees_close(by_position, by_keyword)


def test_signature_calls_take_the_same_outcome_by_position_and_by_keyword() -> None:
    f = auto_vmap(signature="(n),(n)->()")(lambda a, b: a @ b)
    pairs = [(ONES(3), ONES(3)), (ONES((4, 3)), ONES(3)), (ONES(3), ONES(2))]
    pairs += [(ONES((4, 3)), ONES((4, 2))), (ONES((4, 1, 3)), ONES((5, 3)))]
    for a, b in pairs:
        by_position = _outcome(f, a, b)
        by_keyword = _outcome(f, a=a, b=b)
        if isinstance(by_position, tuple):
            assert by_position == by_keyword
        else:
            assert_trees_close(by_position, by_keyword)


def test_tracers_are_arrays_to_the_fast_walk() -> None:
    """Tracers are `jax.Array`s by their aval, not by their type: under `jax.jit` an unbatched
    call traces the function alone (no conversion), a batched one what `jax.vmap` traces, and
    a decorated function called from inside another one (its arguments `BatchTracer`s) gives
    the loop's numbers."""
    f = auto_vmap(x=1)(jnp.sin)
    x, xs = jnp.ones(3), jnp.ones((4, 3))
    assert str(jax.make_jaxpr(f)(x)) == str(jax.make_jaxpr(jnp.sin)(x))
    assert str(jax.make_jaxpr(f)(xs)) == str(jax.make_jaxpr(jax.vmap(jnp.sin))(xs))
    inner = auto_vmap(a=1, b=1)(lambda a, b: jnp.sum(a * b))
    outer = auto_vmap(a=2, b=1)(lambda a, b: inner(a, b))  # inner: batch (rows,) of a
    a = jnp.asarray(np.random.default_rng(2).normal(size=(5, 4, 3)), jnp.float32)
    b = jnp.asarray(np.random.default_rng(3).normal(size=(3,)), jnp.float32)
    expected = loop(lambda a, b: (a * b).sum(-1), [a, b], [2, 1], (5,))
    assert_trees_close(outer(a, b), expected)
    assert_trees_close(jax.jit(outer)(a, b), expected)


@pytest.mark.newest
def test_jax_vmap_takes_the_trampolines_debug_info_made_once(monkeypatch) -> None:
    """`jax.vmap` names the leaves of its arguments on every call, for its messages (a sixth
    of a small eager call); our one vmapped function carries jax's own debug info for it, made
    once, which jax takes instead. A jax that stops reading it makes every batched call slower:
    this says so. The result and the program are those of hand-written `jax.vmap` (the
    same-jaxpr tests), and JAX's errors inside the function read as before."""
    from jax._src import api_util

    f = auto_vmap(x=1)(lambda x: jnp.sin(x) * 2)
    for shape in [(4, 3), (2, 4, 3), (2, 1, 4, 3)]:  # one and two levels, a squeezed dim
        x = jnp.asarray(np.arange(np.prod(shape)).reshape(shape), jnp.float32)
        f(x)  # the first call also compiles `jnp.sin` and friends: jax names their arguments
        named = []
        original = api_util._non_static_arg_names
        monkeypatch.setattr(
            api_util,
            "_non_static_arg_names",
            lambda *a, n=named, o=original, **k: n.append(1) or o(*a, **k),
        )
        out = f(x)
        assert not named, f"jax.vmap named the arguments of our vmapped function ({shape})"
        np.testing.assert_allclose(out, np.sin(np.asarray(x)) * 2, rtol=1e-6)
        jax.vmap(lambda x: x)(x)  # the spy sees jax's own calls
        assert named
        monkeypatch.undo()
