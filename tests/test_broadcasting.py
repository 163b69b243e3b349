"""Batched results equal a plain loop over `np.ndindex(batch_shape)`, for random shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from oracle import assert_trees_close, loop

from autovmap import auto_vmap


def quad(s, v, m):
    return v @ m @ v + s * v.size


def outer_stats(v, w):  # pytree output, output cores of different ranks
    return {"outer": jnp.outer(v, w), "dot": v @ w, "norms": (jnp.linalg.norm(v), w.sum())}


def mat_solve(a, b):
    return jnp.linalg.solve(a + 4.0 * jnp.eye(a.shape[0]), b)


CASES = [
    # function, per-example core shapes, ranks
    (quad, [(), (3,), (3, 3)], [0, 1, 2]),
    (outer_stats, [(3,), (3,)], [1, 1]),
    (mat_solve, [(2, 2), (2,)], [2, 1]),
]


@pytest.mark.parametrize("fn, cores, ranks", CASES, ids=lambda c: getattr(c, "__name__", ""))
@given(data=st.data())
def test_matches_loop(fn, cores, ranks, data):
    batch = data.draw(
        mutually_broadcastable_shapes(
            num_shapes=len(cores), min_dims=0, max_dims=4, min_side=0, max_side=3
        )
    )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    args = [rng.normal(size=b + c).astype(np.float32) for b, c in zip(batch.input_shapes, cores)]
    batched = auto_vmap(*ranks)(fn)
    expected = loop(fn, args, ranks, batch.result_shape)
    assert_trees_close(batched(*args), expected)
    assert_trees_close(hand_vmapped(fn, args, ranks, batch.result_shape), expected)


def hand_vmapped(fn, args, ranks, batch_shape):
    """The second oracle: one hand-written `jax.vmap` over the broadcast, flattened batch."""
    n = int(np.prod(batch_shape))
    flat = [
        np.broadcast_to(a, batch_shape + a.shape[a.ndim - r :]).reshape(
            (n,) + a.shape[a.ndim - r :]
        )
        for a, r in zip(args, ranks)
    ]
    out = jax.vmap(fn)(*flat)
    return jax.tree_util.tree_map(lambda o: o.reshape(batch_shape + o.shape[1:]), out)


@given(data=st.data())
def test_many_batch_dims(data):
    ndim = data.draw(st.integers(10, 13))
    batch = data.draw(
        mutually_broadcastable_shapes(
            num_shapes=3, min_dims=0, max_dims=ndim, min_side=1, max_side=2
        )
    )
    rng = np.random.default_rng(0)
    cores = [(), (2,), (2, 2)]
    args = [rng.normal(size=b + c).astype(np.float32) for b, c in zip(batch.input_shapes, cores)]
    out = auto_vmap(0, 1, 2)(quad)(*args)
    assert_trees_close(out, loop(quad, args, [0, 1, 2], batch.result_shape), rtol=1e-4)


def test_twelve_full_batch_dims_match_hand_written_vmap():
    shape = (2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 2)
    v = jnp.arange(np.prod(shape) * 3, dtype=jnp.float32).reshape(shape + (3,))
    m = jnp.eye(3)
    flat = jax.vmap(lambda v: quad(1.0, v, m))(v.reshape(-1, 3)).reshape(shape)
    assert_trees_close(auto_vmap(s=0, v=1, m=2)(quad)(1.0, v, m), flat)


def test_pytree_rank_per_leaf_matches_loop():
    rng = np.random.default_rng(1)
    params = {"w": rng.normal(size=(4, 1, 3, 2)), "b": rng.normal(size=(5, 2))}
    x = rng.normal(size=(4, 5, 3))

    def layer(params, x):
        return jnp.tanh(x @ params["w"] + params["b"])

    out = auto_vmap({"w": 2, "b": 1}, 1)(layer)(params, x)
    expected = np.stack(
        [
            np.stack(
                [layer({"w": params["w"][i, 0], "b": params["b"][j]}, x[i, j]) for j in range(5)]
            )
            for i in range(4)
        ]
    )
    assert_trees_close(out, expected)


def test_int_rank_applies_to_every_leaf_and_lists_are_pytrees():
    vs = [jnp.ones((4, 3)), 2 * jnp.ones((3,))]
    out = auto_vmap(1)(lambda vs: vs[0] @ vs[1])(vs)
    np.testing.assert_allclose(out, np.full((4,), 6.0))


def test_size_one_batch_dims_come_back_in_the_output():
    out = auto_vmap(0, 1, 2)(quad)(1.0, jnp.ones((1, 1, 3)), jnp.ones((1, 3, 3)))
    assert out.shape == (1, 1)
    assert_trees_close(out, np.full((1, 1), 12.0))


def test_size_zero_batch():
    out = auto_vmap(0, 1, 2)(quad)(1.0, jnp.ones((0, 3)), jnp.ones((3, 3)))
    assert out.shape == (0,)
    out = auto_vmap(v=1, w=1)(outer_stats)(jnp.ones((2, 0, 3)), jnp.ones((3,)))
    assert out["outer"].shape == (2, 0, 3, 3) and out["norms"][0].shape == (2, 0)
