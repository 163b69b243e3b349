"""Per-example gradients of a small MLP, and of an ensemble of them.

`loss` is written for one example (`x` a vector, `y` a scalar) and one set of parameters.
`jax.grad(loss)` inside `auto_vmap` gives one gradient per example, with the parameters shared
(rank `None`: passed through untouched). With pytree ranks for the parameters, the same
function gives gradients for every (model, example) pair of an ensemble. Checked against a plain
loop of `jax.grad` calls and against hand-written `jax.vmap`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from autovmap import auto_vmap

N_IN, N_HIDDEN = 4, 16
PARAM_RANKS = {"w1": 2, "b1": 1, "w2": 1, "b2": 0}  # the rank of each leaf of one model


def init(rng):
    return {
        "w1": jnp.asarray(rng.normal(size=(N_IN, N_HIDDEN)) / np.sqrt(N_IN), jnp.float32),
        "b1": jnp.zeros(N_HIDDEN),
        "w2": jnp.asarray(rng.normal(size=N_HIDDEN) / np.sqrt(N_HIDDEN), jnp.float32),
        "b2": jnp.zeros(()),
    }


def predict(params, x):
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def loss(params, x, y):
    return (predict(params, x) - y) ** 2


# One gradient per example; the parameters are shared.
per_example_grads = jax.jit(auto_vmap(params=None, x=1, y=0)(jax.grad(loss)))
# One gradient per (model, example): parameters with a batch dim too.
ensemble_grads = jax.jit(auto_vmap(params=PARAM_RANKS, x=1, y=0)(jax.grad(loss)))


@jax.jit
def clipped_mean_grad(params, x, y, max_norm):
    """DP-SGD style: clip each example's gradient to `max_norm`, then average."""
    grads = per_example_grads(params, x, y)
    sq = sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in jax.tree.leaves(grads))
    scale = jnp.minimum(1.0, max_norm / jnp.sqrt(sq))  # (batch,)
    return jax.tree.map(lambda g: jnp.tensordot(scale, g, axes=1) / len(scale), grads), sq


def main() -> None:
    rng = np.random.default_rng(0)
    params = init(rng)
    x = jnp.asarray(rng.normal(size=(32, N_IN)), jnp.float32)
    y = jnp.sin(x.sum(axis=1))

    grads = per_example_grads(params, x, y)
    for name, g in grads.items():
        assert g.shape == (32, *params[name].shape), (name, g.shape)

    # Oracle: a plain loop, one jax.grad call per example.
    grad_one = jax.jit(jax.grad(loss))
    looped = [grad_one(params, x[i], y[i]) for i in range(len(x))]
    for name in params:
        np.testing.assert_allclose(
            grads[name], np.stack([g[name] for g in looped]), rtol=1e-5, atol=1e-6
        )

    # The mean of the per-example gradients is the gradient of the mean loss.
    def mean_loss(p):
        return jnp.mean(jax.vmap(loss, in_axes=(None, 0, 0))(p, x, y))

    mean_grad = jax.jit(jax.grad(mean_loss))(params)
    for name in params:
        np.testing.assert_allclose(grads[name].mean(0), mean_grad[name], rtol=1e-4, atol=1e-6)

    clipped, sq_norms = clipped_mean_grad(params, x, y, max_norm=1.0)
    n_clipped = int(jnp.sum(jnp.sqrt(sq_norms) > 1.0))
    looped_np = [{k: np.asarray(v) for k, v in g.items()} for g in looped]
    norms = [np.sqrt(sum((v.astype(np.float64) ** 2).sum() for v in g.values())) for g in looped_np]
    for name in params:
        expected = np.mean([min(1.0, 1.0 / n) * g[name] for g, n in zip(looped_np, norms)], axis=0)
        np.testing.assert_allclose(clipped[name], expected, rtol=1e-4, atol=1e-6)

    # An ensemble of 3 models: every model on every example, batch (32, 1) with (3,).
    models = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[init(rng) for _ in range(3)])
    egrads = ensemble_grads(models, x[:, None], y[:, None])
    assert egrads["w1"].shape == (32, 3, N_IN, N_HIDDEN) and egrads["b2"].shape == (32, 3)
    by_hand = jax.vmap(  # over the 32 examples; the models are closed over
        jax.vmap(jax.grad(loss), in_axes=(0, None, None)),  # over the 3 models
        in_axes=(None, 0, 0),
    )(models, x, y)
    for name in params:
        np.testing.assert_allclose(egrads[name], by_hand[name], rtol=1e-5, atol=1e-6)

    print(f"per-example grads: {', '.join(f'{k} {v.shape}' for k, v in grads.items())}")
    print("  match a loop of 32 jax.grad calls; mean equals the grad of the mean loss")
    print(
        f"  clipped to norm 1.0: {n_clipped}/32 examples clipped, "
        f"clipped mean grad |w1| = {float(jnp.linalg.norm(clipped['w1'])):.4f}"
    )
    print(
        f"ensemble grads (3 models x 32 examples): w1 {egrads['w1'].shape}; "
        "match hand-written jax.vmap"
    )


if __name__ == "__main__":
    main()
