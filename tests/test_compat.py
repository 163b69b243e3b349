"""Code written for the PyPI package `jax-autovmap` runs unchanged with
`from autovmap import ...`."""

import jax.numpy as jnp
import numpy as np
import pytest

from autovmap import NothingToBatchWarning, auto_vmap, autovmap


def test_seed_example_batches_of_five():
    @auto_vmap(s=0, v=1, m=2)
    def foo(s, v, m):
        return v @ m @ v + s * v.size

    s = jnp.array(2.0)
    v = jnp.ones((5, 3))
    m = jnp.ones((5, 3, 3))
    np.testing.assert_allclose(foo(s, v, m), np.full(5, 15.0))
    np.testing.assert_allclose(autovmap(0, 1, 2)(foo.__wrapped__)(s, v, m), np.full(5, 15.0))


def test_seed_pytree_ranks():
    v = jnp.ones((5, 3))
    m = jnp.ones((5, 3, 3))

    @auto_vmap({"s": 0, "v": 1, "m": 2})
    def foo(inputs):
        return inputs["v"] @ inputs["m"] @ inputs["v"]

    np.testing.assert_allclose(foo(dict(s=2.0, v=v, m=m)), np.full(5, 9.0))


def test_jax_autovmap_basic_suite():
    """The cases of jax-autovmap 0.3.0's own `test_basic`."""

    def foo(x, y, val=1):
        assert jnp.ndim(x) == 2 and jnp.ndim(y) == 0
        return val

    for args, kwargs in [
        ((2, 0), {}),
        ((2, 0, None), {}),
        ((), {"x": 2, "y": 0}),
        ((), {"x": 2, "y": 0, "val": None}),
    ]:
        f = autovmap(*args, **kwargs)(foo)
        assert f(jnp.zeros((3, 3)), 0.0) == 1
        np.testing.assert_array_equal(f(jnp.zeros((3, 3)), jnp.array([0.0, 1.0, 2.0])), np.ones(3))
        np.testing.assert_array_equal(f(jnp.zeros((5, 3, 3)), 0), np.ones(5))
        np.testing.assert_array_equal(f(jnp.zeros((5, 3, 3)), 0, val=0), np.zeros(5))
        np.testing.assert_array_equal(f(jnp.zeros((5, 3, 3)), 0, 0), np.zeros(5))
        np.testing.assert_array_equal(f(jnp.zeros((5, 3, 3)), jnp.zeros(5), 3), np.full(5, 3))
        np.testing.assert_array_equal(
            f(jnp.zeros((2, 5, 3, 3)), jnp.zeros(5), 3), np.full((2, 5), 3)
        )
        np.testing.assert_array_equal(
            f(jnp.zeros((3, 3, 3)), jnp.zeros((4, 3)), 7), np.full((4, 3), 7)
        )


def test_jax_autovmap_varargs():
    @autovmap(x=1, b=0)
    def foo(x, *args, b=0, c=1):
        return jnp.sum(x) + sum(args) + b + c

    np.testing.assert_array_equal(foo(jnp.ones((3, 3)), 1, 2, 3, b=jnp.zeros((3,))), np.full(3, 10))


def test_jax_autovmap_pytree_suite():
    def sum_ranks(objects, offset):
        total = offset
        for key in objects:
            total += objects[key].ndim
        return total

    ranks = [2, 5, 1, 2, 3]
    obj = {n: np.ones((2,) * r) for r, n in zip(ranks, "abcde")}
    total = autovmap(1, 0)(sum_ranks)(obj, 0)
    assert total.ndim == max(ranks) - 1
    np.testing.assert_array_equal(total, len(ranks))

    ranks = [2, 5, 3, 2]
    obj = {n: np.ones((2,) * r) for r, n in zip(ranks, "abcd")}
    arg_ranks = {"a": 1, "b": 2, "c": 1, "d": 0}
    total = autovmap(arg_ranks, 0)(sum_ranks)(obj, 0)
    np.testing.assert_array_equal(total, 1 + 2 + 1 + 0)
    assert total.ndim == max(r - arg_ranks[n] for r, n in zip(ranks, "abcd"))


def test_no_ranks_on_an_unannotated_function_is_the_identity():
    def foo(x):
        return x

    # Unchanged, as in jax-autovmap, but with a warning: a silent no-op looks like success.
    with pytest.warns(NothingToBatchWarning):
        assert autovmap()(foo) is foo
