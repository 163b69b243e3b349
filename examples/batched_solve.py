"""Batched linear solves: matrices (rank 2) against right-hand sides (rank 1), broadcast.

`jnp.linalg.solve(a, b)` guesses from `b.ndim` whether `b` is one vector or a stack of matrix
right-hand sides, and a (5, 5) matrix against ten vectors of shape (10, 5) is an error. With
ranks stated, there is nothing to guess: every matrix of the batch is solved against every
right-hand side its batch dims broadcast with. One matrix against 20,000 right-hand sides is
factorised once, not copied 20,000 times. Checked against a NumPy loop and hand-written
`jax.vmap`.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np

from autovmap import auto_vmap

N = 5


@auto_vmap(a=2, b=1)
def solve(a, b):
    return jnp.linalg.solve(a, b)


def main() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 1, N, N)) + 4 * np.eye(N)  # 6 well-conditioned systems
    b = rng.normal(size=(10, N))  # 10 right-hand sides
    a32, b32 = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)

    x = jax.jit(solve)(a32, b32)  # batch (6, 1) with (10,) -> (6, 10)
    assert x.shape == (6, 10, N)
    expected = np.stack([[np.linalg.solve(a[i, 0], b[j]) for j in range(10)] for i in range(6)])
    np.testing.assert_allclose(x, expected, rtol=1e-4, atol=1e-5)
    residual = float(jnp.abs(jnp.einsum("inm,ijm->ijn", a32[:, 0], x) - b32).max())

    # One matrix against many right-hand sides: mapped with in_axes=None, factorised once.
    many = jnp.asarray(rng.normal(size=(20_000, N)), jnp.float32)
    x_many = jax.jit(solve)(a32[0, 0], many)
    by_hand = jax.jit(jax.vmap(jnp.linalg.solve, in_axes=(None, 0)))(a32[0, 0], many)
    np.testing.assert_allclose(x_many, by_hand, rtol=1e-5, atol=1e-6)
    jaxpr = str(jax.make_jaxpr(solve)(a32[0, 0], many))
    lu = [line for line in jaxpr.splitlines() if re.search(r"= lu\b", line)]
    assert len(lu) == 1 and f"f32[{N},{N}]" in lu[0], lu  # one factorisation, of one matrix
    assert f"20000,{N},{N}" not in jaxpr  # no copy of the matrix per right-hand side

    # Broadcasting both ways: 3 regularisations of one matrix, against 4 batches of 10 rhs.
    shifts = jnp.array([0.0, 1.0, 2.0])[:, None, None, None, None] * jnp.eye(N)  # (3, 1, 1, N, N)
    x_grid = solve(a32[0, 0] + shifts, b32.reshape(2, 5, N))  # batch (3, 1, 1) with (2, 5)
    assert x_grid.shape == (3, 2, 5, N)
    np.testing.assert_allclose(
        x_grid[2, 1, 3], np.linalg.solve(a[0, 0] + 2 * np.eye(N), b[8]), rtol=1e-4, atol=1e-5
    )

    print(f"solved {x.shape[0]} x {x.shape[1]} systems of size {N}: max residual {residual:.1e}")
    print(f"1 matrix x 20000 right-hand sides: {x_many.shape}, one LU factorisation in the jaxpr")
    print(f"3 shifts x (2, 5) right-hand sides: {x_grid.shape}")
    print("matches a NumPy loop and hand-written jax.vmap")


if __name__ == "__main__":
    main()
