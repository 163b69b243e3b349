"""Lennard-Jones energies and forces between batches of particle sets.

`pair_energy` is written for one pair of particle sets: `a` of shape (n, 3) and `b` of shape
(m, 3), so positions have rank 2. `auto_vmap` evaluates it for every combination of 8
configurations of `a` with 5 configurations of `b`, and for a sweep of 3 values of `sigma`,
without materialising any broadcast copy of the positions. The results are checked against a
plain NumPy loop and a hand-written `jax.vmap`.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from autovmap import auto_vmap


def pair_energy(a, b, sigma, epsilon):
    """Total Lennard-Jones energy between particle sets a (n, 3) and b (m, 3)."""
    d2 = jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)  # (n, m) squared distances
    s6 = (sigma**2 / d2) ** 3
    return jnp.sum(4.0 * epsilon * (s6**2 - s6))


RANKS = dict(a=2, b=2, sigma=0, epsilon=0)
energy = jax.jit(auto_vmap(**RANKS)(pair_energy))


def forces(a, b, sigma, epsilon):
    """Forces on the particles of a and of b: minus the gradients of the pair energy."""
    ga, gb = jax.grad(pair_energy, argnums=(0, 1))(a, b, sigma, epsilon)
    return -ga, -gb


batched_forces = jax.jit(auto_vmap(**RANKS)(forces))


def numpy_pair_energy(a, b, sigma, epsilon):
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    s6 = (sigma**2 / d2) ** 3
    return (4.0 * epsilon * (s6**2 - s6)).sum()


def main() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0.0, 3.0, size=(8, 1, 16, 3))  # 8 configurations of 16 particles
    b = rng.uniform(0.0, 3.0, size=(5, 12, 3)) + np.array([4.0, 0.0, 0.0])  # 5 of 12, shifted
    sigmas = np.array([0.9, 1.0, 1.1])[:, None, None]  # a sweep, batch shape (3, 1, 1)
    epsilon = 0.5  # one value: rank 0, no batch dims

    a32, b32 = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    e = energy(a32, b32, 1.0, epsilon)  # batch (8, 1) with (5,) -> (8, 5)
    assert e.shape == (8, 5)
    e_sweep = energy(a32, b32, jnp.asarray(sigmas, jnp.float32), epsilon)
    assert e_sweep.shape == (3, 8, 5)

    # The oracle: a plain loop over every combination, in float64 NumPy.
    expected = np.empty((3, 8, 5))
    for k, i, j in itertools.product(range(3), range(8), range(5)):
        expected[k, i, j] = numpy_pair_energy(a[i, 0], b[j], sigmas[k, 0, 0], epsilon)
    np.testing.assert_allclose(e_sweep, expected, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(e, expected[1], rtol=2e-4, atol=1e-6)

    # Forces for every (a, b) pair, against hand-written nested jax.vmap.
    fa, fb = batched_forces(a32, b32, 1.0, epsilon)
    assert fa.shape == (8, 5, 16, 3) and fb.shape == (8, 5, 12, 3)
    by_hand = jax.vmap(  # over the 8 configurations of a; b is closed over
        jax.vmap(forces, in_axes=(None, 0, None, None)),  # over the 5 configurations of b
        in_axes=(0, None, None, None),
    )(a32[:, 0], b32, 1.0, epsilon)
    np.testing.assert_allclose(fa, by_hand[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fb, by_hand[1], rtol=1e-5, atol=1e-6)

    # Newton's third law: the total force of b on a balances the total force of a on b.
    net = fa.sum(axis=-2) + fb.sum(axis=-2)
    np.testing.assert_allclose(net, 0.0, atol=1e-4 * float(jnp.abs(fa).max()))

    i, j = np.unravel_index(int(e.argmin()), e.shape)
    print(f"energies: {e.shape} for 8 x 5 configuration pairs, {e_sweep.shape} over 3 sigmas")
    print(f"  lowest pair energy {float(e.min()):.4f}, for a[{i}] with b[{j}]")
    print(
        f"forces:   a {fa.shape}, b {fb.shape}; "
        f"net force per pair ~0 (max {float(jnp.abs(net).max()):.1e})"
    )
    print("matches a NumPy loop and hand-written jax.vmap")


if __name__ == "__main__":
    main()
