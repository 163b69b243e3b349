"""Every bad input gets our own error, early, naming the function and the parameter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autovmap import (
    AutoVmapError,
    BatchShapeError,
    BroadcastError,
    RankSpecError,
    RankTooLargeError,
    TreeStructureError,
    auto_vmap,
)


def quad(s, v, m):
    return v @ m @ v + s * v.size


@pytest.mark.parametrize(
    "positional, keyword, needles",
    [
        ((), {"q": 1}, ["`q`", "not a parameter", "`s`, `v`, `m`"]),
        ((0, 1, 2, 3), {}, ["4 positional ranks", "`s`, `v`, `m`"]),
        ((0,), {"s": 0}, ["`s`", "twice"]),
        ((), {"v": -1}, ["`v`", "-1", "negative"]),
        ((), {"v": 1.5}, ["`v`", "1.5", "float"]),
        ((), {"v": True}, ["`v`", "bool"]),
        ((), {"v": "*b n"}, ["`v`", "'*b n'", "variadic"]),  # a str rank is a dim string
        ((), {"v": "(n)"}, ["`v`", "signature="]),
        ((), {"m": {"a": 1, "b": -2}}, ["`m`", "-2"]),
        ((), {"m": [1, 0.5]}, ["`m`", "0.5"]),
    ],
)
def test_spec_errors_at_decoration(positional, keyword, needles):
    decorator = auto_vmap(*positional, **keyword)
    with pytest.raises(RankSpecError) as info:
        decorator(quad)
    message = str(info.value)
    assert "auto_vmap(quad)" in message
    for needle in needles:
        assert needle in message
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


def test_option_errors():
    # Options are not ranks: a wrong one is a plain TypeError or ValueError.
    with pytest.raises(TypeError, match="check") as info:
        auto_vmap(check=0)
    assert not isinstance(info.value, RankSpecError)
    with pytest.raises(ValueError, match="chunk_size"):
        auto_vmap(chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        auto_vmap(chunk_size=2.0)


def tree_fn(p, x):
    return p["w"] @ x + p["b"]


@pytest.mark.parametrize(
    "fn, ranks, args, error, needles",
    [
        (
            quad,
            dict(s=0, v=1, m=2),
            (1.0, jnp.ones(3), jnp.ones(3)),
            RankTooLargeError,
            ["`m`", "(3,)", "rank is 2"],
        ),
        (quad, dict(s=0, v=1, m=2), (jnp.ones(3), jnp.ones(3), jnp.ones((3, 3))), None, []),
        (
            quad,
            dict(s=1, v=1, m=2),
            (1.0, jnp.ones(3), jnp.ones((3, 3))),
            RankTooLargeError,
            ["`s`", "()", "rank is 1"],
        ),
        (
            quad,
            dict(s=0, v=1, m=2),
            (1.0, jnp.ones((7, 4, 3)), jnp.ones((5, 3, 3))),
            BroadcastError,
            ["(7, 4, 3)", "(7, 4)", "(5, 3, 3)", "(5,)", "4 and 5"],
        ),
        (
            tree_fn,
            dict(p={"w": 2, "b": 1}, x=1),
            ({"w": jnp.ones(3), "b": jnp.ones(2)}, jnp.ones(3)),
            RankTooLargeError,
            ["p['w']", "(3,)", "rank is 2"],
        ),
        (
            tree_fn,
            dict(p={"w": 2, "b": 1}, x=1),
            ({"w": jnp.ones((2, 3))}, jnp.ones(3)),
            TreeStructureError,
            ["`p`", "'w': 2", "'b': 1", "'b'"],
        ),
        (
            tree_fn,
            dict(p=1, x=1),
            ({"w": jnp.ones((4, 2, 3)), "b": jnp.ones((5, 2))}, jnp.ones(3)),
            BroadcastError,
            ["p['w']", "p['b']", "(4, 2, 3)", "(5, 2)"],
        ),
        (
            tree_fn,
            dict(p={"w": 2, "b": 1}, x=1),
            ({"w": jnp.ones((2, 3)), "b": jnp.ones((6, 2))}, jnp.ones((5, 3))),
            BroadcastError,
            ["p['b']", "(6,)", "x", "(5,)"],
        ),
    ],
)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_call_errors_before_vmap(fn, ranks, args, error, needles, jit):
    batched = auto_vmap(**ranks)(fn)
    if jit:
        batched = jax.jit(batched)
    if error is None:  # a valid call in the same table, to show the check is not too eager
        batched(*args)
        return
    with pytest.raises(error) as info:
        batched(*args)
    message = str(info.value)
    assert f"auto_vmap({fn.__name__})" in message
    for needle in needles:
        assert needle in message, (needle, message)
    assert isinstance(info.value, (BatchShapeError, ValueError, AutoVmapError))
    assert "inconsistent sizes" not in message and "dot_general" not in message


def test_broadcast_error_lists_every_batched_argument_in_a_table():
    with pytest.raises(BroadcastError) as info:
        auto_vmap(0, 1, 2)(quad)(np.zeros((2,)), jnp.ones((7, 4, 3)), jnp.ones((5, 3, 3)))
    lines = str(info.value).splitlines()
    assert lines[1].split() == ["argument", "rank", "from", "shape", "batch", "shape"]
    assert lines[2].split() == ["s", "0", "explicit", "(2,)", "(2,)"]
    assert lines[3].split() == ["v", "1", "explicit", "(7,", "4,", "3)", "(7,", "4)"]
    assert lines[4].split() == ["m", "2", "explicit", "(5,", "3,", "3)", "(5,)"]


@pytest.mark.parametrize("rank", [7, 10**6, 10**7])
def test_a_huge_rank_gives_a_small_message(rank):
    f = auto_vmap(x=rank)(lambda x: x)
    with pytest.raises(RankTooLargeError) as info:
        f(jnp.ones(3))
    message = str(info.value)
    assert len(message) < 500, len(message)
    assert f"its rank is {rank}" in message
    assert f"(*batch, d0, d1, d2, d3, ..., d{rank - 1})" in message
