"""Run-time checks of every example against the jaxtyping annotations."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import typeguard
from jaxtyping import Array, Float, Int, TypeCheckError, jaxtyped

from autovmap import AnnotationCheckError, CoreDimError, auto_vmap


@auto_vmap
def add(a: Float[Array, "n"], b: Float[Array, "n"]) -> Float[Array, "n"]:
    return a + b  # a size-1 `b` would silently broadcast here


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_named_dim_must_agree_across_arguments(transform):
    with pytest.raises(AnnotationCheckError) as info:
        transform(add)(jnp.ones((2, 3)), jnp.ones((2, 1)))
    message = "\n".join([str(info.value), *info.value.__notes__])  # the batch shape is a note
    for needle in [
        "auto_vmap(add)",
        "argument `b`",
        "a float32 array of shape (1,)",
        "Float[Array, 'n']",
        "n=3",
        "batch shape (2,)",
        "dimension n",
    ]:
        assert needle in message, (needle, message)
    assert isinstance(info.value, TypeCheckError)


def test_valid_calls_pass():
    np.testing.assert_allclose(add(jnp.ones((2, 3)), jnp.ones(3)), np.full((2, 3), 2.0))
    np.testing.assert_allclose(jax.jit(add)(jnp.ones((4, 2, 3)), jnp.ones((2, 3))), 2.0)


def test_matrix_dims_must_agree_with_vector():
    @auto_vmap
    def quad(v: Float[Array, "n"], m: Float[Array, "n n"]) -> Float[Array, ""]:
        return v @ m @ v

    with pytest.raises(
        AnnotationCheckError, match=r"argument `m` is a float32 array of shape \(3, 4\)"
    ):
        quad(jnp.ones((5, 3)), jnp.ones((3, 4)))


def test_wrong_dtype_is_caught():
    @auto_vmap
    def f(i: Int[Array, "n"], x: Float[Array, "n"]) -> Float[Array, "n"]:
        return x * i

    with pytest.raises(
        AnnotationCheckError, match=r"argument `i` is a float32 array of shape \(3,\).*dtype"
    ):
        f(jnp.ones((2, 3)), jnp.ones((2, 3)))
    assert f(jnp.ones((2, 3), jnp.int32), jnp.ones(3)).shape == (2, 3)


def test_wrong_return_shape_is_caught():
    @auto_vmap
    def f(x: Float[Array, "n"]) -> Float[Array, ""]:
        return x * 2  # claims a scalar, returns a vector

    with pytest.raises(
        AnnotationCheckError, match=r"the return value is a float32 array of shape \(3,\)"
    ) as info:
        f(jnp.ones((4, 3)))
    assert (
        "The call has batch shape (4,); the shape above is of one example." in info.value.__notes__
    )
    with pytest.raises(
        AnnotationCheckError, match="return value"
    ):  # unbatched calls are checked too
        f(jnp.ones(3))


def test_check_false_turns_per_example_checks_off():
    @auto_vmap(check=False)
    def loose(i: Int[Array, "n"], x: Float[Array, "n"]) -> Float[Array, ""]:
        return x * i  # claims a scalar, returns a vector

    # dtypes and the return value are no longer checked ...
    assert loose(jnp.ones((2, 3)), jnp.ones((2, 3))).shape == (2, 3)


def test_check_false_still_compares_named_dims_by_shape():
    # ... but like-named dims still are, by shape, before `jax.vmap`: a size-1 `b` would
    # otherwise silently broadcast (see docs/ranks.md, "Named core dims").
    @auto_vmap(check=False)
    def loose(a: Float[Array, "n"], b: Float[Array, "n"]) -> Float[Array, "n"]:
        return a + b

    with pytest.raises(
        CoreDimError, match=r"`n` has size 3 in argument `a` but size 1 in argument `b`"
    ):
        loose(jnp.ones((2, 3)), jnp.ones((2, 1)))

    @auto_vmap(check=False)
    def anonymous(a: Float[Array, "_n"], b: Float[Array, "#n"]) -> Float[Array, "n"]:
        return a + b  # `_n` is anonymous; `#n` accepts size 1: nothing to compare

    assert anonymous(jnp.ones((2, 3)), jnp.ones((2, 1))).shape == (2, 3)


def test_checks_also_apply_with_explicit_ranks():
    @auto_vmap(a=1, b=1)
    def f(a: Float[Array, "n"], b: Float[Array, "n"]):
        return a + b

    with pytest.raises(AnnotationCheckError):
        f(jnp.ones((2, 3)), jnp.ones((2, 1)))


def test_checks_run_once_per_trace_under_jit():
    traces = []

    @auto_vmap
    def f(x: Float[Array, "n"]) -> Float[Array, ""]:
        traces.append(x.shape)
        return x.sum()

    g = jax.jit(f)
    g(jnp.ones((5, 3)))
    g(jnp.ones((5, 3)))
    assert traces == [(3,)]


def _check_call(fn, *args):
    """What an outer `jaxtyped` check of the wrapper does: every argument against the
    wrapper's signature, in one memo scope."""
    bound = inspect.signature(fn).bind(*args)
    with jaxtyped("context"):
        for name, value in bound.arguments.items():
            typeguard.check_type(value, inspect.signature(fn).parameters[name].annotation)


def test_batched_signature_accepts_batched_arguments_and_catches_core_mismatch():
    params = inspect.signature(add).parameters
    assert params["a"].annotation.dim_str == "*#batch n"
    assert inspect.signature(add).return_annotation.dim_str == "*#batch n"
    _check_call(add, jnp.ones((7, 1, 3)), jnp.ones((5, 3)))  # broadcastable batches pass
    with pytest.raises(typeguard.TypeCheckError):
        _check_call(add, jnp.ones((7, 3)), jnp.ones((7, 4)))  # core dim n differs


def test_a_remembered_pass_never_hides_a_failure():
    # Passing checks are remembered by the abstract arguments and result (types, shapes,
    # dtypes): every change that could make a check fail gives a new key, and a fresh check.
    @auto_vmap
    def head(x: Float[Array, "n"], y: Float[Array, "n"], k) -> Float[Array, "n"]:
        return x[:k] + y[:k]

    x = jnp.ones((2, 3))
    head(x, x, 3)
    head(x, x, 3)  # remembered
    with pytest.raises(AnnotationCheckError, match="argument `y`"):
        head(x, jnp.ones((2, 4)), 3)  # a new shape: n differs
    with pytest.raises(AnnotationCheckError, match="argument `y`"):
        head(x, x.astype(jnp.int32), 3)  # a new dtype
    with pytest.raises(AnnotationCheckError, match="the return value"):
        head(x, x, 2)  # same arguments' shapes, but `k` (unchecked) changes the result's shape
    head(x, x, 3)  # and the remembered pass still holds

    @auto_vmap(x=1)
    def labelled(x: Float[Array, "n"], label: str) -> Float[Array, ""]:
        return x.sum()

    labelled(x, "fine")
    with pytest.raises(AnnotationCheckError, match="argument `label`"):
        labelled(x, 3)  # values that are not arrays are checked every time
