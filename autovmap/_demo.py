"""`python -m autovmap`: the README quickstart, one function written for single examples
called on batches."""

import jax
import jax.numpy as jnp

# Imported as a user would: the demo reads like user code, and type-checks against the stub.
from autovmap import BroadcastError, auto_vmap, plan


@auto_vmap(s=0, v=1, m=2)  # a scalar, a vector and a matrix per example
def quad(s: jax.Array, v: jax.Array, m: jax.Array) -> jax.Array:
    return v @ m @ v + s * v.size


def main() -> None:
    s = jnp.array(2.0)
    print("one example:            ", quad(s, jnp.ones(3), jnp.ones((3, 3))))
    print("5 vectors, 5 matrices:  ", quad(s, jnp.ones((5, 3)), jnp.ones((5, 3, 3))))
    out = quad(s, jnp.ones((7, 1, 3)), jnp.ones((7, 5, 3, 3)))
    print("(7, 1, 3) x (7, 5, 3, 3) ->", out.shape)
    out = jax.jit(quad)(s, jnp.ones((20000, 3)), jnp.eye(3))  # one matrix, never copied
    print("20000 vectors, 1 matrix ->", out.shape, "under jax.jit")
    print("\nWhat a call does, without running it (`autovmap.plan`):")
    print(plan(quad, s, jnp.ones((7, 1, 3)), jnp.ones((7, 5, 3, 3))))
    try:
        quad(s, jnp.ones((7, 4, 3)), jnp.ones((5, 3, 3)))
    except BroadcastError as e:
        print("\nA mistake is caught before jax.vmap runs:\n" + str(e))
