"""Every parameter kind, and untouched pass-through of everything that is not ranked."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autovmap import NothingToBatchWarning, auto_vmap

V = jnp.arange(12.0).reshape(4, 3)  # a batch of 4 vectors
W = jnp.ones(3)


def dot(v, w):
    return v @ w


EXPECTED = np.asarray(V) @ np.ones(3)


def test_positional_and_keyword_arguments():
    f = auto_vmap(v=1, w=1)(dot)
    for out in (f(V, W), f(V, w=W), f(v=V, w=W), f(w=W, v=V)):
        np.testing.assert_allclose(out, EXPECTED)


def test_positional_ranks_with_none_gaps_and_mixed_with_keywords():
    def f(v, label, w):
        assert label == "same"
        return v @ w

    for decorator in (
        auto_vmap(1, None, 1),
        auto_vmap(1, w=1),
        auto_vmap(None, None, 1),
        auto_vmap(v=1, w=1),
    ):
        np.testing.assert_allclose(decorator(f)(V, "same", W), EXPECTED)


def test_keyword_only_and_defaults():
    @auto_vmap(v=1, scale=0)
    def f(v, *, w=W, scale=1.0):
        return scale * (v @ w)

    np.testing.assert_allclose(f(V), EXPECTED)
    np.testing.assert_allclose(f(V, scale=jnp.array([1.0, 2.0, 3.0, 4.0])), EXPECTED * [1, 2, 3, 4])
    np.testing.assert_allclose(f(V, w=2 * W), 2 * EXPECTED)


def test_var_positional_rank_applies_to_every_extra_argument():
    @auto_vmap(v=1, vs=1)
    def total(v, *vs):
        return v @ sum(vs)

    out = total(V, W, jnp.ones((4, 3)), W)
    np.testing.assert_allclose(out, 3 * EXPECTED)


def test_var_keyword_rank_applies_to_every_extra_keyword():
    @auto_vmap(v=1, extra=0)
    def f(v, **extra):
        assert set(extra) == {"a", "b"}
        return v.sum() * extra["a"] + extra["b"]

    out = f(V, a=jnp.array([1.0, 2.0, 3.0, 4.0]), b=1.0)
    np.testing.assert_allclose(out, np.asarray(V).sum(1) * [1, 2, 3, 4] + 1)


def test_unranked_and_non_array_arguments_reach_the_function_as_the_same_objects():
    marker, callback, table = object(), (lambda x: x * 2), {"k": [1, 2]}
    seen = []

    @auto_vmap(v=1)
    def f(v, tag, fn, obj, maybe=None, *, lookup):
        seen.append((tag, fn, obj, maybe, lookup))
        return fn(v.sum())

    out = f(V, "name", callback, marker, None, lookup=table)
    np.testing.assert_allclose(out, 2 * np.asarray(V).sum(1))
    assert all(s[0] == "name" and s[1] is callback and s[2] is marker for s in seen)
    assert all(s[3] is None and s[4] is table for s in seen)


def test_non_array_leaves_inside_a_ranked_pytree_pass_through():
    @auto_vmap(p=1)
    def f(p):
        assert p["name"] == "layer"
        return p["w"].sum()

    np.testing.assert_allclose(f({"name": "layer", "w": V}), np.asarray(V).sum(1))


def test_none_rank_inside_a_pytree_rank_passes_that_subtree_untouched():
    table = np.ones((5, 5))

    @auto_vmap({"w": 1, "table": None})
    def f(p):
        assert p["table"] is table
        return p["w"].sum()

    np.testing.assert_allclose(f({"w": V, "table": table}), np.asarray(V).sum(1))


class Model:
    def __init__(self, scale):
        self.scale = scale

    @auto_vmap(None, 1)
    def method(self, v):
        return self.scale * v.sum()

    @auto_vmap(v=1)
    @staticmethod
    def static_inner(v):
        return v.sum()

    @staticmethod
    @auto_vmap(v=1)
    def static_outer(v):
        return v.sum()

    @auto_vmap(v=1)
    @classmethod
    def class_inner(cls, v):
        assert cls is Model
        return v.sum()

    @classmethod
    @auto_vmap(v=1)
    def class_outer(cls, v):
        assert cls is Model
        return v.sum()


@pytest.mark.parametrize("name", ["static_inner", "static_outer", "class_inner", "class_outer"])
def test_static_and_class_methods_in_either_decorator_order(name):
    expected = np.asarray(V).sum(1)
    np.testing.assert_allclose(getattr(Model, name)(V), expected)
    np.testing.assert_allclose(getattr(Model(1.0), name)(V), expected)


def test_methods_bind_self():
    np.testing.assert_allclose(Model(2.0).method(V), 2 * np.asarray(V).sum(1))


def test_wrapper_keeps_name_doc_and_wrapped():
    def documented(v):
        """Sum a vector."""
        return v.sum()

    f = auto_vmap(v=1)(documented)
    assert f.__name__ == "documented" and f.__doc__ == "Sum a vector."
    assert f.__wrapped__ is documented


def test_no_ranks_and_no_annotations_returns_the_function_itself_with_a_warning():
    for decorate in (auto_vmap(), auto_vmap, auto_vmap(v=None)):
        with pytest.warns(NothingToBatchWarning, match=r"auto_vmap\(dot\).*nothing is batched"):
            assert decorate(dot) is dot


def test_no_batch_dims_calls_the_function_once_with_ranked_leaves_as_jax_arrays():
    seen = []

    @auto_vmap(x=2, y=0)
    def f(x, y, val=1, label=None):
        seen.append((x, y, val, label))
        return val

    x = jnp.zeros((3, 3))
    label = object()
    assert f(x, jnp.float32(0.0), label=label) == 1  # the function's own result, not an array
    assert seen[-1][0] is x and seen[-1][2] == 1 and seen[-1][3] is label  # the very same objects
    # NumPy arrays and Python scalars with a rank reach the function as JAX arrays, as in a
    # batched call, so what the function sees never depends on whether the call is batched.
    np_x = np.zeros((3, 3))
    f(np_x, 0.0, label=label)
    assert isinstance(seen[-1][0], jax.Array) and isinstance(seen[-1][1], jax.Array)
    np.testing.assert_array_equal(seen[-1][0], np_x)
    assert seen[-1][3] is label


def test_bad_call_arguments_raise_the_usual_type_error_naming_the_function():
    f = auto_vmap(v=1)(dot)
    with pytest.raises(TypeError, match=r"auto_vmap\(dot\).*unexpected keyword"):
        f(V, W, u=1)
    with pytest.raises(TypeError, match=r"auto_vmap\(dot\).*too many positional"):
        f(V, W, W)
    with pytest.raises(TypeError, match=r"auto_vmap\(dot\).*multiple values"):
        f(V, W, v=V)


def test_an_unpassed_ranked_default_is_batched_like_a_passed_argument():
    """As in jax-autovmap, which applies defaults before batching."""

    @auto_vmap(x=1, y=1)
    def f(x, y=jnp.ones((4, 3))):  # noqa: B008 - a ranked array default
        return x @ y

    np.testing.assert_allclose(f(jnp.ones((4, 3))), np.full(4, 3.0))
    np.testing.assert_allclose(f(jnp.ones((4, 3)), y=jnp.ones(3)), np.full(4, 3.0))


def test_a_missing_required_argument_is_reported_before_batching():
    f = auto_vmap(v=1)(dot)
    with pytest.raises(TypeError, match=r"auto_vmap\(dot\).*missing a required argument: 'w'"):
        f(V)

    @auto_vmap(x=1)
    def g(x, *rest, key):
        return x

    with pytest.raises(TypeError, match=r"auto_vmap\(g\).*'key'"):
        g(V, 1, 2)


def test_a_keyword_only_ranked_default_with_batch_dims_is_batched():
    """A call giving every positional argument at its exact rank can still be batched, by a
    keyword-only default: the unbatched fast path must not take it."""

    @auto_vmap(x=1, w=1)
    def f(x, *, w=jnp.ones((4, 3))):  # noqa: B008 - a ranked array default
        return x @ w

    np.testing.assert_allclose(f(jnp.ones(3)), np.full(4, 3.0))
