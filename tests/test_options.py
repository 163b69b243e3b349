"""The options of `auto_vmap` (everything but ranks): validated when decorating, never confused
with ranks, kept by re-decoration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from oracle import assert_trees_close

from autovmap import RankSpecError, auto_vmap


@pytest.mark.parametrize(
    "options, error, needle",
    [
        ({"check": 1}, TypeError, "check"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"chunk_size": True}, TypeError, "chunk_size"),
        ({"axis_name": 0}, TypeError, "axis_name"),
        ({"axis_name": "batch", "chunk_size": 2}, ValueError, "chunk at a time"),
        ({"spmd_axis_name": 3}, TypeError, "spmd_axis_name"),
        ({"signature": ["(n)->()"]}, TypeError, "signature"),
    ],
)
def test_bad_options_are_refused_when_written(options, error, needle):
    with pytest.raises(error, match=needle) as info:
        auto_vmap(x=1, **options)
    assert not isinstance(info.value, RankSpecError)  # an option is not a rank


@pytest.mark.parametrize(
    "option", ["check", "chunk_size", "axis_name", "spmd_axis_name", "signature"]
)
def test_an_option_named_like_a_parameter_is_ambiguous(option):
    value = {
        "check": False,
        "chunk_size": 2,
        "axis_name": "b",
        "spmd_axis_name": "x",
        "signature": "(n),()->()",
    }[option]
    namespace: dict = {}
    exec(f"def f(x, {option}):\n    return x", namespace)
    with pytest.raises(RankSpecError, match=rf"`{option}` is both a parameter.*positionally"):
        auto_vmap(x=1, **{option: value})(namespace["f"])
    assert auto_vmap(1, 0)(namespace["f"])(jnp.ones((4, 3)), jnp.ones(4)).shape == (4, 3)


def centred(x, w):
    return w * (x - jax.lax.pmean(x, "batch"))


@pytest.mark.parametrize(
    "x_shape, w_shape", [((8,), (8,)), ((2, 4), (4,)), ((2, 1), (4,))], ids=str
)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_axis_name_covers_every_batch_dim(x_shape, w_shape, jit):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
    w = jnp.asarray(rng.normal(size=w_shape), jnp.float32)
    f = auto_vmap(x=0, w=0, axis_name="batch")(centred)
    out = (jax.jit(f) if jit else f)(x, w)
    xb = np.broadcast_to(np.asarray(x), np.broadcast_shapes(x_shape, w_shape))
    assert_trees_close(out, np.asarray(w) * (xb - xb.mean()))


def test_axis_name_is_bound_in_an_unbatched_call():
    f = auto_vmap(x=0, axis_name="batch")(lambda x: x + jax.lax.psum(1, "batch"))
    assert f(jnp.float32(1.0)) == 2.0


def test_re_decoration_keeps_options_and_adds_new_ones():
    f = auto_vmap(x=0, axis_name="batch")(centred)
    g = auto_vmap(spmd_axis_name=P(None))(f)
    assert g.__autovmap__.options.axis_name == "batch"
    assert g.__autovmap__.options.spmd_axis_name == P(None)
    with pytest.raises(ValueError, match="chunk at a time"):
        auto_vmap(chunk_size=2)(f)
