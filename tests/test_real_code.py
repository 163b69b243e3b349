"""Per-example functions from well-known JAX code, batched with broadcasting batch shapes and
compared with a plain loop over the examples."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy as jsp
import numpy as np
import pytest
from oracle import assert_trees_close, loop

from autovmap import auto_vmap

RNG = np.random.default_rng(1)


def normal(*shape):
    return jnp.asarray(RNG.normal(size=shape), jnp.float32)


def spd(*batch, n=3):
    a = RNG.normal(size=(*batch, n, n))
    return jnp.asarray(a @ np.swapaxes(a, -1, -2) + n * np.eye(n), jnp.float32)


def test_multivariate_normal_logpdf_per_example():
    # One point, one mean and one covariance per example; the covariance broadcasts.
    logpdf = auto_vmap(x=1, mean=1, cov=2)(jsp.stats.multivariate_normal.logpdf)
    x, mean, cov = normal(5, 1, 3), normal(4, 3), spd(1, 4)
    assert_trees_close(
        logpdf(x, mean, cov), loop(logpdf.__wrapped__, [x, mean, cov], [1, 1, 2], (5, 4)), rtol=1e-4
    )


def test_expm_and_logsumexp_per_example():
    expm = auto_vmap(A=2)(jsp.linalg.expm)
    a = 0.3 * normal(2, 3, 4, 4)
    assert_trees_close(expm(a), loop(jsp.linalg.expm, [a], [2], (2, 3)), rtol=1e-4, atol=1e-4)
    # `b` is a keyword argument with a default of None: it stays unbatched and untouched.
    lse = auto_vmap(a=1)(jsp.special.logsumexp)
    v = normal(6, 1, 5)
    assert_trees_close(lse(v), loop(jsp.special.logsumexp, [v], [1], (6, 1)))


def test_equinox_mlp_instance_and_its_gradients():
    mlp = eqx.nn.MLP(3, 2, width_size=8, depth=2, key=jax.random.key(0))
    # A callable object: ranks for its `__call__` parameters. Its `key: PRNGKeyArray | None`
    # annotation is a union of rank-0 (typed) and rank-1 (raw `uint32[2]`) keys: the key's
    # dtype picks the rank on each call, so a raw key's two words are never two examples.
    key_rank = auto_vmap(x=1)(mlp).__autovmap__.spec.params[1].rank
    assert repr(key_rank) == "0 or 1 by dtype"
    batched = auto_vmap(x=1, key=None)(mlp)
    x = normal(4, 1, 3) * jnp.ones((4, 5, 3))
    assert_trees_close(batched(x), loop(mlp, [x], [1], (4, 5)), rtol=1e-4, atol=1e-5)

    # Per-example gradients of a loss over the parameters (a pytree broadcast against the batch).
    @auto_vmap(model=None, x=1, y=1)
    def loss(model, x, y):
        return jnp.sum((model(x) - y) ** 2)

    grads = auto_vmap(model=None, x=1, y=1)(eqx.filter_grad(loss.__wrapped__))
    y = normal(5, 2)
    per_example = grads(mlp, x, y)
    expected = loop(
        lambda xi, yi: eqx.filter_grad(loss.__wrapped__)(mlp, xi, yi), [x, y], [1, 1], (4, 5)
    )
    for got, want in zip(jax.tree.leaves(per_example), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert loss(mlp, x, y).shape == (4, 5)


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_partial_of_a_library_function_with_chunks(chunk_size):
    # `functools.partial` fixing the axis of a library function; the rest is batched.
    norm = auto_vmap(x=1, chunk_size=chunk_size)(functools.partial(jnp.linalg.norm, ord=3))
    v = normal(2, 1, 4) * jnp.ones((2, 5, 4))
    assert_trees_close(
        norm(v), loop(lambda x: jnp.linalg.norm(x, ord=3), [v], [1], (2, 5)), rtol=1e-5
    )
