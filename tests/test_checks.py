"""Run-time checks of every example against the jaxtyping annotations."""

import dataclasses
import functools
import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import typeguard
from jaxtyping import Array, Float, Float64, Int, TypeCheckError, jaxtyped
from oracle import assert_trees_close, loop

from autovmap import AnnotationCheckError, CoreDimError, auto_vmap

# `jax.enable_x64` is newer than the jax floor (0.5.3), which has `jax.experimental.enable_x64`.
enable_x64 = jax.enable_x64 if hasattr(jax, "enable_x64") else jax.experimental.enable_x64


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


# --------------------------------------------------------------------------------------------
# What `check=True` covers: dataclass fields, every container element, `functools.partial`


class Dense(eqx.Module):
    w: Float[Array, "n m"]
    b: Float[Array, "m"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Affine:
    w: Float[Array, "n m"]
    b: Float[Array, "m"]


@pytest.mark.parametrize("layer_type", [Dense, Affine])
def test_dataclass_fields_are_checked_against_their_annotations(layer_type):
    @auto_vmap
    def apply(layer: layer_type, x: Float[Array, "n"]) -> Float[Array, "m"]:
        return x @ layer.w + layer.b

    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
    good = layer_type(w=jnp.ones((3, 2)), b=jnp.arange(2.0))
    expected = loop(lambda xi: xi @ np.ones((3, 2)) + np.arange(2.0), [x], [1], (4,))
    assert_trees_close(apply(good, x), expected)
    assert_trees_close(apply(good, x), expected)  # remembered
    bad = layer_type(w=jnp.ones((3, 2)), b=jnp.ones(1))  # `x @ w + b` would broadcast b
    with pytest.raises(AnnotationCheckError) as info:
        apply(bad, x)
    message = str(info.value)
    for needle in ["argument `layer`", "field `b`", "shape (1,)", "Float[Array, 'm']", "m=2"]:
        assert needle in message, (needle, message)
    with pytest.raises(AnnotationCheckError, match=r"argument `x`(.|\n)*n=4"):
        apply(layer_type(w=jnp.ones((4, 2)), b=jnp.ones(2)), x)  # n: 4 in w, 3 in x


def test_fields_of_nested_dataclasses_and_dataclass_elements_are_checked():
    class Stack(eqx.Module):
        layers: list[Dense]

    @auto_vmap
    def run(stack: Stack, x: Float[Array, "n"]) -> Float[Array, "m"]:
        for layer in stack.layers:
            x = x @ layer.w + layer.b
        return x

    square = Dense(w=jnp.eye(3), b=jnp.zeros(3))
    assert run(Stack([square, square]), jnp.ones((2, 3))).shape == (2, 3)
    broken = Dense(w=jnp.eye(3), b=jnp.zeros(1))
    with pytest.raises(
        AnnotationCheckError, match="field `b` of item 1 of field `layers` of Stack"
    ):
        run(Stack([square, broken]), jnp.ones((2, 3)))


def test_a_plain_typeguard_check_of_a_dataclass_is_unchanged(monkeypatch):
    # Field checks are autovmap's own: anyone else's typeguard check stays an isinstance.
    typeguard.check_type(Dense(w=jnp.ones((3, 2)), b=jnp.ones(1)), Dense)

    def message(value, annotation):
        with pytest.raises(typeguard.TypeCheckError) as info:
            typeguard.check_type(value, annotation)
        return str(info.value)

    cases = [
        ({"a": jnp.ones(2)}, dict[str, Float[Array, "n n"]]),
        ([Dense(w=jnp.ones((3, 2)), b=jnp.ones(1))], list[Affine]),
    ]
    ours = [message(*case) for case in cases]
    from typeguard import _checkers  # noqa: PLC0415

    monkeypatch.setattr(_checkers, "checker_lookup_functions", [_checkers.builtin_checker_lookup])
    assert ours == [message(*case) for case in cases]


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (dict[str, Float[Array, "n"]], {"a": jnp.ones(3), "b": jnp.ones(1)}),
        (list[Float[Array, "n"]], [jnp.ones(3), jnp.ones(3), jnp.ones(1)]),
        (tuple[Float[Array, "n"], ...], (jnp.ones(3), jnp.ones(1))),
    ],
    ids=["dict", "list", "tuple"],
)
def test_every_element_of_a_container_is_checked(annotation, value):
    def total(x, group):
        return x.sum()

    total.__annotations__ = {"x": Float[Array, "n"], "group": annotation}
    f = auto_vmap(group=None)(total)
    with pytest.raises(
        AnnotationCheckError, match=r"argument `group`(.|\n)*of shape \(1,\)(.|\n)*dimension n"
    ):
        f(jnp.ones((2, 3)), value)  # the element, and jaxtyping's reason
    ok = jax.tree_util.tree_map(lambda leaf: jnp.ones(3), value)
    assert f(jnp.ones((2, 3)), ok).tolist() == [3.0, 3.0]


def dist(a: Float[Array, "n"], b: Float[Array, "n"]) -> Float[Array, ""]:
    return jnp.linalg.norm(a - b)


def test_arguments_bound_by_partial_are_checked():
    # docs/callables.md: `b` of size 1 would broadcast against the bound `a` of size 3.
    for f, args in [
        (auto_vmap(functools.partial(dist, jnp.zeros(3))), (jnp.ones((4, 1)),)),
        (auto_vmap(dist), (jnp.zeros(3), jnp.ones((4, 1)))),
    ]:
        with pytest.raises(AnnotationCheckError, match=r"argument `b`(.|\n)*n=3"):
            f(*args)
    from_origin = auto_vmap(functools.partial(dist, jnp.zeros(3)))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 3)), jnp.float32)
    assert_trees_close(from_origin(x), loop(lambda xi: np.linalg.norm(xi), [x], [1], (4,)))
    with pytest.raises(
        AnnotationCheckError, match=r"argument `a` \(bound by `functools.partial`\)(.|\n)*dtype"
    ):
        auto_vmap(functools.partial(dist, jnp.zeros(3, jnp.int32)))(x)
    by_keyword = auto_vmap(b=1)(functools.partial(dist, b=jnp.zeros(1)))
    with pytest.raises(AnnotationCheckError, match="argument `b`"):
        by_keyword(x)  # the partial's keyword, batched as a default: n = 3 in a, 1 in b
    by_keyword_none = auto_vmap(a=1, b=None)(functools.partial(dist, b=jnp.zeros(1)))
    with pytest.raises(AnnotationCheckError, match=r"argument `b` \(bound by"):
        by_keyword_none(x)  # the partial's keyword, not passed by the call
    assert by_keyword_none(x, b=jnp.zeros(3)).shape == (4,)  # overridden by the call


# --------------------------------------------------------------------------------------------
# Messages


def test_only_the_call_that_failed_adds_its_batch_note():
    @auto_vmap
    def inner(a: Float[Array, "n"], b: Float[Array, "n"]) -> Float[Array, ""]:
        return (a * b).sum()

    @auto_vmap
    def outer(m: Float[Array, "k n"]) -> Float[Array, ""]:
        return inner(m, jnp.ones((m.shape[0], 1))).sum()  # b has n = 1: inner's check fails

    with pytest.raises(AnnotationCheckError, match="auto_vmap.inner.*argument `b`") as info:
        outer(jnp.ones((5, 4, 3)))
    notes = [n for n in getattr(info.value, "__notes__", []) if "batch shape" in n]
    assert notes == ["The call has batch shape (4,); the shape above is of one example."]


def test_the_arraylike_advice_is_given_only_where_it_applies():
    @auto_vmap(x=1, s=None)  # `s` unbatched: it reaches the function as given
    def f(x, k: int, s: Float[Array, ""]) -> Float[Array, ""]:
        return x.sum() * s

    with pytest.raises(AnnotationCheckError, match="argument `k`") as info:
        f(jnp.ones((2, 3)), 1.5, jnp.ones(()))
    assert "ArrayLike" not in str(info.value)
    with pytest.raises(AnnotationCheckError, match=r"argument `s`.*Python scalar.*ArrayLike"):
        f(jnp.ones((2, 3)), 1, 1.5)


# --------------------------------------------------------------------------------------------
# NumPy array annotations


@auto_vmap
def np_dot(a: Float[np.ndarray, "n"], b: Float[np.ndarray, "n"]) -> Float[np.ndarray, ""]:
    return a @ b  # ranked arguments arrive as JAX arrays: the annotation admits them


def test_numpy_array_annotations_check_what_the_function_receives():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 1, 3)), rng.normal(size=(5, 3))
    assert_trees_close(np_dot(a, b), loop(np.dot, [a, b], [1, 1], (4, 5)))
    assert_trees_close(np_dot(a, b), loop(np.dot, [a, b], [1, 1], (4, 5)))  # remembered
    assert np.allclose(np_dot(a[0, 0], b[0]), a[0, 0] @ b[0], rtol=1e-6)  # unbatched
    for args in [(a, np.ones((5, 2))), (a[0, 0], np.ones(2))]:  # batched, unbatched
        with pytest.raises(AnnotationCheckError) as info:
            np_dot(*args)
        message = str(info.value)
        assert "argument `b`" in message and "Float[ndarray, 'n']" in message, message
        assert "the size of dimension n is 2" in message and "x64" not in message, message


def test_numpy_dtype_annotation_message_says_what_the_function_receives():
    @auto_vmap
    def total(a: Float64[np.ndarray, "n"]) -> Float[np.ndarray, ""]:
        return a.sum()

    for x in [np.ones((4, 3)), np.ones(3)]:  # batched, unbatched
        with pytest.raises(AnnotationCheckError) as info:
            total(x)
        message = str(info.value)
        assert "argument `a` is a float32 array" in message and "Float64[ndarray" in message
        assert "reach the function as JAX arrays" in message and "jax_enable_x64" in message
    with enable_x64(True):
        assert total(np.ones((4, 3))).tolist() == [3.0] * 4


def test_a_dataclass_annotation_alone_turns_the_checks_on():
    @auto_vmap(x=1)
    def apply(layer: Dense, x):
        return x @ layer.w + layer.b

    with pytest.raises(AnnotationCheckError, match="field `b`"):
        apply(Dense(w=jnp.ones((3, 2)), b=jnp.ones(1)), jnp.ones((4, 3)))
