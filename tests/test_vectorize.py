"""`autovmap.vectorize` as a drop-in for `jnp.vectorize`.

Part 1 ports every case of JAX's own `tests/lax_numpy_vectorize_test.py` (jax-v0.10.2, the
installed jax) to `autovmap.vectorize`: 35 cases. JAX runs its tests with
`jax_numpy_rank_promotion="raise"` except where a test says "allow"; so do these. Where JAX
checks an exception type and message, these check that `jnp.vectorize` still raises that type
for the same call, that ours is an instance of it, and what ours says.

Part 2 compares both on random signatures and broadcastable shapes (hypothesis); part 3 runs
the per-example functions that `jax.scipy` vectorizes through `autovmap.vectorize`.
"""

from __future__ import annotations

import math
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from jax._src.scipy import linalg as scipy_linalg, special as scipy_special
from jax._src.scipy.spatial import transform
from oracle import loop

import autovmap
from autovmap import (
    AutoVmapError,
    BatchShapeError,
    BroadcastError,
    CoreDimError,
    OutputSignatureError,
    RankSpecError,
    RankTooLargeError,
    vectorize,
)


@pytest.fixture
def jax_test_config():
    """The rank-promotion setting JAX's test suite runs with."""
    with jax.numpy_rank_promotion("raise"):
        yield


ported = pytest.mark.usefixtures("jax_test_config")


def raises_like_jnp(jnp_fn, ours_fn, *args, **kwargs):
    """Call both; both must raise; ours must be an instance of jnp's exception type and one of
    autovmap's own errors. Returns (our exception, jnp's exception)."""
    with pytest.raises(Exception) as theirs:
        jnp_fn(*args, **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        ours_fn(*args, **kwargs)
    return ours.value, theirs.value


# ---------------------------------------------------------------------------------------------
# Part 1: JAX's tests/lax_numpy_vectorize_test.py


@ported
@pytest.mark.parametrize(
    "left_shape, right_shape, result_shape",
    [
        ((2, 3), (3, 4), (2, 4)),
        ((2, 3), (1, 3, 4), (1, 2, 4)),
        ((1, 2, 3), (1, 3, 4), (1, 2, 4)),
        ((5, 2, 3), (1, 3, 4), (5, 2, 4)),
        ((6, 5, 2, 3), (3, 4), (6, 5, 2, 4)),
    ],
)
def test_matmat(left_shape, right_shape, result_shape):
    matmat = vectorize(jnp.dot, signature="(n,m),(m,k)->(n,k)")
    left = jnp.arange(math.prod(left_shape), dtype=jnp.float32).reshape(left_shape)
    right = jnp.arange(math.prod(right_shape), dtype=jnp.float32).reshape(right_shape)
    with jax.numpy_rank_promotion("allow"):
        out = matmat(left, right)
        expected = jnp.vectorize(jnp.dot, signature="(n,m),(m,k)->(n,k)")(left, right)
    assert out.shape == result_shape
    np.testing.assert_array_equal(out, expected)


@ported
@pytest.mark.parametrize(
    "left_shape, right_shape, result_shape",
    [
        ((2, 3), (3,), (2,)),
        ((2, 3), (1, 3), (1, 2)),
        ((4, 2, 3), (1, 3), (4, 2)),
        ((5, 4, 2, 3), (1, 3), (5, 4, 2)),
    ],
)
def test_matvec(left_shape, right_shape, result_shape):
    matvec = vectorize(jnp.dot, signature="(n,m),(m)->(n)")
    left = jnp.arange(math.prod(left_shape), dtype=jnp.float32).reshape(left_shape)
    right = jnp.arange(math.prod(right_shape), dtype=jnp.float32).reshape(right_shape)
    with jax.numpy_rank_promotion("allow"):
        out = matvec(left, right)
    assert out.shape == result_shape
    np.testing.assert_array_equal(out, jnp.einsum("...nm,...m->...n", left, right))


@ported
@pytest.mark.parametrize(
    "left_shape, right_shape, result_shape",
    [
        ((3,), (3,), ()),
        ((2, 3), (3,), (2,)),
        ((4, 2, 3), (3,), (4, 2)),
    ],
)
def test_vecmat(left_shape, right_shape, result_shape):
    vecvec = vectorize(jnp.dot, signature="(m),(m)->()")
    left = jnp.arange(math.prod(left_shape), dtype=jnp.float32).reshape(left_shape)
    right = jnp.arange(3.0)
    with jax.numpy_rank_promotion("allow"):
        out = vecvec(left, right)
    assert out.shape == result_shape
    np.testing.assert_array_equal(out, left @ right)


@ported
@pytest.mark.parametrize("shape, result_shape", [((3,), ()), ((2, 3), (2,)), ((1, 2, 3), (1, 2))])
def test_magnitude(shape, result_shape):
    inputs = jnp.arange(math.prod(shape)).reshape(shape)

    @partial(vectorize, signature="(n)->()")
    def magnitude(x):
        return jnp.dot(x, x)

    out = magnitude(inputs)
    assert out.shape == result_shape
    np.testing.assert_array_equal(out, (inputs * inputs).sum(-1))


@ported
@pytest.mark.parametrize(
    "shape, result_shape", [((3,), ()), ((2, 3), (2,)), ((1, 2, 3, 4), (1, 2, 3))]
)
def test_mean(shape, result_shape):
    mean = vectorize(jnp.mean, signature="(n)->()")
    x = jnp.arange(math.prod(shape), dtype=jnp.float32).reshape(shape)
    assert mean(x).shape == result_shape
    np.testing.assert_allclose(mean(x), x.mean(-1))


@ported
@pytest.mark.parametrize("shape, result_shape", [((), (2,)), ((3,), (3, 2))])
def test_stack_plus_minus(shape, result_shape):
    @partial(vectorize, signature="()->(n)")
    def stack_plus_minus(x):
        return jnp.stack([x, -x])

    x = jnp.ones(shape)
    assert stack_plus_minus(x).shape == result_shape
    np.testing.assert_array_equal(stack_plus_minus(x), jnp.stack([x, -x], axis=-1))


@ported
def test_center():
    @partial(vectorize, signature="(n)->(),(n)")
    def center(array):
        bias = jnp.mean(array)
        debiased = array - bias
        return bias, debiased

    b, a = center(jnp.arange(3.0))
    assert a.shape == (3,) and b.shape == ()
    np.testing.assert_allclose(b, 1.0)

    b, a = center(jnp.arange(6.0).reshape(2, 3))
    assert a.shape == (2, 3) and b.shape == (2,)
    np.testing.assert_allclose(b, [1.0, 4.0])


@ported
def test_exclude_first():
    @partial(vectorize, excluded={0})
    def f(x, y):
        assert x == "foo"
        assert y.ndim == 0
        return y

    x = jnp.arange(3)
    np.testing.assert_array_equal(f("foo", x), x)
    np.testing.assert_array_equal(jax.jit(f, static_argnums=0)("foo", x), x)
    assert f("foo", x).dtype == x.dtype


@ported
def test_exclude_second():
    @partial(vectorize, excluded={1})
    def f(x, y):
        assert x.ndim == 0
        assert y == "foo"
        return x

    x = jnp.arange(3)
    np.testing.assert_array_equal(f(x, "foo"), x)
    np.testing.assert_array_equal(jax.jit(f, static_argnums=1)(x, "foo"), x)


@ported
def test_exclude_kwargs():
    @partial(np.vectorize, excluded=(2, "func"))
    def f_np(x, y, func=np.add):
        assert np.ndim(x) == np.ndim(y) == 0
        return func(x, y)

    @partial(vectorize, excluded=(2, "func"))
    def f_ours(x, y, func=jnp.add):
        assert x.ndim == y.ndim == 0
        return func(x, y)

    x = np.arange(4, dtype="int32")
    y = np.int32(2)
    for args, kwargs in [((), {}), ((np.power,), {}), ((), {"func": np.power})]:
        ours_args = tuple(jnp.power for _ in args)
        ours_kwargs = {k: jnp.power for k in kwargs}
        expected = f_np(x, y, *args, **kwargs)
        out = f_ours(x, y, *ours_args, **ours_kwargs)
        np.testing.assert_array_equal(out, expected)
        assert out.dtype == expected.dtype


@ported
def test_exclude_errors():
    with pytest.raises(TypeError, match="can only exclude integer or string arguments"):
        vectorize(lambda x: x, excluded={1.5})
    with pytest.raises(TypeError):  # as jnp.vectorize
        jnp.vectorize(lambda x: x, excluded={1.5})

    with pytest.raises(ValueError, match=r"excluded=\{-1\} contains negative numbers"):
        vectorize(lambda x: x, excluded={-1})
    with pytest.raises(ValueError):
        jnp.vectorize(lambda x: x, excluded={-1})


@ported
def test_bad_inputs():
    matmat = vectorize(jnp.dot, signature="(n,m),(m,k)->(n,k)")
    theirs = jnp.vectorize(jnp.dot, signature="(n,m),(m,k)->(n,k)")

    ours, _ = raises_like_jnp(theirs, matmat, jnp.zeros((3, 2)))
    assert isinstance(ours, TypeError)
    assert "wrong number of positional arguments" in str(ours)
    assert "vectorize(dot)" in str(ours) and "2 inputs" in str(ours)

    ours, _ = raises_like_jnp(theirs, matmat, jnp.zeros((2,)), jnp.zeros((2, 2)))
    assert isinstance(ours, RankTooLargeError)  # a ValueError
    assert "argument `a` has shape (2,)" in str(ours) and "rank is 2" in str(ours)

    ours, _ = raises_like_jnp(theirs, matmat, jnp.zeros((2, 3)), jnp.zeros((4, 5)))
    assert isinstance(ours, CoreDimError)  # a ValueError
    message = str(ours)
    for needle in [
        "vectorize(dot)",
        "core dim `m`",
        "size 3 in argument `a`",
        "size 4 in argument `b`",
        "(2, 3)",
        "(4, 5)",
        "m=3",
        "m=4",
    ]:
        assert needle in message, (needle, message)


@ported
def test_wrong_output_type():
    f = vectorize(jnp.dot, signature="(n,m),(m,k)->(n,k),()")
    theirs = jnp.vectorize(jnp.dot, signature="(n,m),(m,k)->(n,k),()")
    ours, _ = raises_like_jnp(theirs, f, jnp.zeros((2, 2)), jnp.zeros((2, 2)))
    assert isinstance(ours, OutputSignatureError) and isinstance(ours, TypeError)
    assert "must return a tuple of 2" in str(ours)


@ported
def test_wrong_num_outputs():
    f = vectorize(lambda *args: args, signature="(),()->(),(),()")
    theirs = jnp.vectorize(lambda *args: args, signature="(),()->(),(),()")
    ours, _ = raises_like_jnp(theirs, f, 1, 2)
    assert isinstance(ours, OutputSignatureError)
    assert "declares 3 output(s)" in str(ours) and "tuple of 2" in str(ours)


@ported
def test_wrong_output_shape():
    f = vectorize(jnp.dot, signature="(n,m),(m,k)->(n)")
    theirs = jnp.vectorize(jnp.dot, signature="(n,m),(m,k)->(n)")
    ours, _ = raises_like_jnp(theirs, f, jnp.zeros((2, 2)), jnp.zeros((2, 2)))
    assert isinstance(ours, OutputSignatureError) and isinstance(ours, ValueError)
    assert "output 0 of one example has shape (2, 2)" in str(ours)


@ported
def test_inconsistent_output_size():
    f = vectorize(jnp.dot, signature="(n,m),(m,k)->(n,n)")
    theirs = jnp.vectorize(jnp.dot, signature="(n,m),(m,k)->(n,n)")
    ours, _ = raises_like_jnp(theirs, f, jnp.zeros((2, 3)), jnp.zeros((3, 4)))
    assert isinstance(ours, OutputSignatureError) and isinstance(ours, ValueError)
    assert "core dim `n` has size 4" in str(ours) and "`n` = 2 from argument `a`" in str(ours)


@ported
def test_expand_dims_multiple_outputs_no_signature():
    f = vectorize(lambda x: (x, x))
    x = jnp.arange(1)
    xx = f(x)
    assert isinstance(xx, tuple)
    np.testing.assert_array_equal(xx[0], x)
    np.testing.assert_array_equal(xx[1], x)


@ported
def test_none_arg():
    f = vectorize(lambda x, y: x if y is None else x + y)
    x = jnp.arange(10)
    np.testing.assert_array_equal(f(x, None), x)

    y = jnp.arange(10, 20)
    np.testing.assert_array_equal(f(x, y), x + y)


@ported
def test_none_arg_bad_signature():
    fn = lambda x, y: x if y is None else x + y  # noqa: E731
    f = vectorize(fn, signature="(k),(k)->(k)")
    theirs = jnp.vectorize(fn, signature="(k),(k)->(k)")
    ours, _ = raises_like_jnp(theirs, f, jnp.arange(10), None)
    assert isinstance(ours, BatchShapeError)  # a ValueError
    assert "argument `y` is None" in str(ours) and "(k)" in str(ours)


@ported
def test_rank_promotion_error():
    f = vectorize(jnp.add, signature="(),()->()")
    rank2 = jnp.zeros((10, 10))
    rank1 = jnp.zeros(10)
    rank0 = jnp.zeros(())
    msg = "operands with shapes .* require rank promotion|arguments .* require rank promotion"
    with jax.numpy_rank_promotion("raise"):
        with pytest.raises(ValueError, match=msg):
            f(rank2, rank1)
    with jax.numpy_rank_promotion("warn"):
        with pytest.warns(UserWarning, match=msg):
            f(rank2, rank1)

    # no warning for scalar rank promotion
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mode in ("raise", "warn"):
            with jax.numpy_rank_promotion(mode):
                f(rank2, rank0)
                f(rank1, rank0)

        # No warning when broadcasted ranks match.
        f2 = vectorize(jnp.add, signature="(n),()->(n)")
        for mode in ("raise", "warn"):
            with jax.numpy_rank_promotion(mode):
                f2(rank2, rank1)


@ported
def test_non_scalar_outputs_and_default_signature():
    out_dim = 5

    def f(x):
        assert np.shape(x) == ()
        return x + jnp.linspace(-1, 1, out_dim)

    assert vectorize(f)(0.5).shape == (out_dim,)
    assert vectorize(f)(jnp.ones(3)).shape == (3, out_dim)


# ---------------------------------------------------------------------------------------------
# Beyond the port: what autovmap.vectorize adds, and its own errors


def test_rank_promotion_is_our_broadcast_error_naming_the_arguments():
    f = vectorize(jnp.add, signature="(),()->()")
    with jax.numpy_rank_promotion("raise"):
        with pytest.raises(BroadcastError) as info:
            f(jnp.zeros((10, 10)), jnp.zeros(10))
    assert "vectorize(add)" in str(info.value) and "(10, 10)" in str(info.value)


def test_size_one_core_dim_never_stretches():
    # jnp.vectorize and autovmap agree: `n` is 3 and 1, an error, not a broadcast.
    dot = vectorize(jnp.dot, signature="(n),(n)->()")
    with pytest.raises(CoreDimError, match="A size-1 core dim does not stretch"):
        dot(jnp.ones((4, 3)), jnp.ones((4, 1)))


def test_fixed_size_in_signature_is_checked():
    # jnp.vectorize reads "3" as a name; NumPy, and autovmap, as a fixed size.
    cross = vectorize(jnp.cross, signature="(3),(3)->(3)")
    assert cross(jnp.ones((5, 3)), jnp.ones(3)).shape == (5, 3)
    with pytest.raises(CoreDimError, match="fix a size of 3, but the size there is 2"):
        cross(jnp.ones((5, 2)), jnp.ones(2))


def test_keyword_arguments_are_batched():
    def scaled_norm(x, scale=1.0, *, shift=0.0):
        return scale * jnp.linalg.norm(x) + shift

    ours = vectorize(scaled_norm, signature="(n)->()")
    x, scale, shift = jnp.ones((4, 3)), jnp.arange(4.0), jnp.arange(2.0)[:, None]
    out = ours(x, scale=scale, shift=shift)  # batch (4,) with (4,) with (2, 1) -> (2, 4)
    expected = np.array(
        [[scaled_norm(x[j], scale[j], shift=shift[i, 0]) for j in range(4)] for i in range(2)]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    # a positional parameter passed by keyword fills its signature input
    dot = vectorize(jnp.dot, signature="(n),(n)->()")
    np.testing.assert_allclose(dot(x, b=jnp.arange(3.0)), x @ jnp.arange(3.0))


def test_excluded_names_a_parameter_however_it_is_passed():
    def f(x, op):
        return op(x, 2.0)

    for ours in (vectorize(f, excluded={"op"}), vectorize(f, excluded={1})):
        np.testing.assert_array_equal(ours(jnp.arange(3.0), jnp.power), jnp.arange(3.0) ** 2)
        np.testing.assert_array_equal(ours(jnp.arange(3.0), op=jnp.power), jnp.arange(3.0) ** 2)


def test_non_array_argument_not_excluded():
    f = vectorize(lambda x, op: op(x))
    with pytest.raises(TypeError, match=r"argument `op` is not an array.*`excluded`"):
        f(jnp.ones(3), jnp.sin)


def test_invalid_signature_is_raised_when_vectorizing():
    for bad in ["(n)", "(n)->", "(n->()", "(n,,m)->()", "(n)(m)->()", "(n?)->()"]:
        with pytest.raises(RankSpecError, match="not a gufunc signature") as info:
            vectorize(jnp.sum, signature=bad)
        assert isinstance(info.value, ValueError)  # as jnp.vectorize's, at call time
    # whitespace is ignored, as in NumPy
    assert vectorize(jnp.dot, signature=" (n) , (n) -> () ")(jnp.ones(3), jnp.ones(3)) == 3.0


def test_too_many_and_repeated_arguments():
    dot = vectorize(jnp.dot, signature="(n),(n)->()")
    with pytest.raises(TypeError, match="wrong number of positional arguments"):
        dot(jnp.ones(3), jnp.ones(3), jnp.ones(3))
    with pytest.raises(TypeError, match="multiple values for argument `a`"):
        dot(jnp.ones(3), a=jnp.ones(3))
    with pytest.raises(TypeError, match="unexpected keyword"):
        vectorize(lambda x: x)(jnp.ones(3), y=1.0)


def test_never_copies_to_broadcast():
    dot = vectorize(jnp.dot, signature="(n,n),(n)->(n)")
    jaxpr = str(jax.make_jaxpr(dot)(jnp.eye(3), jnp.ones((2000, 3))))
    assert "2000,3,3" not in jaxpr


def test_same_program_as_jnp_vectorize_under_jit():
    sig = "(n,n),(n)->(n)"
    args = (jnp.ones((5, 1, 3, 3)), jnp.ones((4, 3)))
    with jax.numpy_rank_promotion("allow"):
        ours = str(jax.make_jaxpr(vectorize(jnp.dot, signature=sig))(*args))
        theirs = str(jax.make_jaxpr(jnp.vectorize(jnp.dot, signature=sig))(*args))
    assert ours == theirs


def test_composes_with_transforms():
    norm = vectorize(jnp.linalg.norm, signature="(n)->()")
    x = jnp.arange(1.0, 13.0).reshape(4, 3)
    grad = jax.grad(lambda x: norm(x).sum())(x)
    np.testing.assert_allclose(grad, x / jnp.linalg.norm(x, axis=-1, keepdims=True), rtol=1e-6)
    assert jax.vmap(norm)(jnp.ones((2, 4, 3))).shape == (2, 4)
    assert jax.jit(norm)(jnp.ones((2, 0, 3))).shape == (2, 0)
    nested = autovmap.auto_vmap(signature="(n,k)->(n)")(lambda m: norm(m))
    np.testing.assert_allclose(nested(jnp.ones((5, 2, 3))), np.full((5, 2), np.sqrt(3.0)))


def test_errors_are_ours():
    for cls in (CoreDimError, OutputSignatureError):
        assert issubclass(cls, AutoVmapError)
    assert autovmap.vectorize is vectorize


# ---------------------------------------------------------------------------------------------
# Part 2: property tests against jnp.vectorize

NAMES = "abc"


@st.composite
def signatures(draw):
    n_inputs = draw(st.integers(1, 3))
    inputs = [tuple(draw(st.lists(st.sampled_from(NAMES), max_size=2))) for _ in range(n_inputs)]
    used = sorted({d for entry in inputs for d in entry})
    n_outputs = draw(st.integers(1, 2))
    outputs = [
        tuple(draw(st.lists(st.sampled_from(used), max_size=2))) if used else ()
        for _ in range(n_outputs)
    ]
    return inputs, outputs


def signature_text(inputs, outputs):
    fmt = lambda entries: ",".join("(" + ",".join(e) + ")" for e in entries)  # noqa: E731
    return f"{fmt(inputs)}->{fmt(outputs)}"


def example_fn(inputs, outputs):
    """One example -> outputs of the declared core shapes, depending on every input value."""

    def fn(*xs):
        sizes = {d: s for x, entry in zip(xs, inputs) for d, s in zip(entry, x.shape)}
        total = sum((i + 1.0) * jnp.sum(x) for i, x in enumerate(xs))
        outs = tuple(
            total
            + jnp.arange(math.prod(sizes[d] for d in entry), dtype=jnp.float32).reshape(
                tuple(sizes[d] for d in entry)
            )
            for entry in outputs
        )
        return outs if len(outs) > 1 else outs[0]

    return fn


@st.composite
def calls(draw):
    """A signature and argument shapes whose batch shapes broadcast (sizes 0 and 1 too)."""
    inputs, outputs = draw(signatures())
    sizes = {d: draw(st.integers(0, 3)) for d in NAMES}
    batch = draw(st.lists(st.integers(0, 3), max_size=3))
    shapes = []
    for entry in inputs:
        keep = draw(st.integers(0, len(batch)))
        own = [draw(st.sampled_from([s, 1])) for s in batch[len(batch) - keep :]]
        shapes.append(tuple(own) + tuple(sizes[d] for d in entry))
    return inputs, outputs, shapes


def arrays(shapes):
    return [jnp.arange(math.prod(s), dtype=jnp.float32).reshape(s) / 7 for s in shapes]


@given(calls())
def test_same_results_as_jnp_vectorize(case):
    inputs, outputs, shapes = case
    sig = signature_text(inputs, outputs)
    fn = example_fn(inputs, outputs)
    args = arrays(shapes)
    expected = jnp.vectorize(fn, signature=sig)(*args)
    out = vectorize(fn, signature=sig)(*args)
    assert type(out) is type(expected)
    for o, e in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(expected)):
        assert o.shape == e.shape and o.dtype == e.dtype
        np.testing.assert_allclose(o, e, rtol=1e-6)


def broken(draw, inputs, shapes):
    """Shapes made wrong one way: a named core dim changed in one argument, batch dims that do
    not broadcast (5 against 4), too few dims, or an argument missing."""

    def count(name):
        return sum(d == name for entry in inputs for d in entry)

    repeated = [n for n in NAMES if count(n) > 1]
    kinds = (["core"] if repeated else []) + (["batch"] if len(inputs) > 1 else [])
    kinds += ["ndim"] if any(inputs) else []
    kind = draw(st.sampled_from(kinds + ["count"]))
    shapes = [list(s) for s in shapes]
    if kind == "count":
        del shapes[draw(st.integers(0, len(shapes) - 1))]
    elif kind == "core":
        name = draw(st.sampled_from(repeated))
        i, j = draw(
            st.sampled_from(
                [(i, j) for i, entry in enumerate(inputs) for j, d in enumerate(entry) if d == name]
            )
        )
        at = len(shapes[i]) - len(inputs[i]) + j
        shapes[i][at] += draw(st.integers(1, 2))
    elif kind == "batch":
        i, k = draw(st.permutations(range(len(inputs))))[:2]
        batch = {x: shapes[x][: len(shapes[x]) - len(inputs[x])] for x in (i, k)}
        rank = max(map(len, batch.values()))
        for x, lead in ((i, 5), (k, 4)):
            padded = [1] * (rank - len(batch[x])) + batch[x]
            shapes[x] = [lead] + padded + shapes[x][len(batch[x]) :]
    else:
        i = draw(st.sampled_from([i for i, entry in enumerate(inputs) if entry]))
        shapes[i] = shapes[i][len(shapes[i]) - len(inputs[i]) + 1 :]
    return [tuple(s) for s in shapes]


@given(st.data())
def test_same_error_types_as_jnp_vectorize(data):
    inputs, outputs, shapes = data.draw(calls())
    bad = broken(data.draw, inputs, shapes)
    sig = signature_text(inputs, outputs)
    fn = example_fn(inputs, outputs)
    args = arrays(bad)
    try:
        jnp.vectorize(fn, signature=sig)(*args)
    except Exception as e:
        theirs = e
    else:
        theirs = None
    assert theirs is not None, (sig, bad)
    with pytest.raises(type(theirs)) as ours:
        vectorize(fn, signature=sig)(*args)
    # binding mistakes are plain `TypeError`s, as for any decorated function; the rest ours
    assert isinstance(ours.value, AutoVmapError) or type(ours.value) is TypeError, ours.value
    assert "vectorize(fn)" in str(ours.value)


@given(calls(), st.sampled_from(["raise", "warn"]))
def test_rank_promotion_like_jnp_vectorize(case, mode):
    inputs, outputs, shapes = case
    sig = signature_text(inputs, outputs)
    fn = example_fn(inputs, outputs)
    args = arrays(shapes)
    results = []
    for impl in (jnp.vectorize, vectorize):
        with jax.numpy_rank_promotion(mode), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                impl(fn, signature=sig)(*args)
            except ValueError:
                results.append("raised")
            else:
                results.append(len([w for w in caught if "rank promotion" in str(w.message)]))
    assert results[0] == results[1]


@given(st.lists(st.lists(st.integers(0, 3), max_size=3), min_size=1, max_size=3))
def test_no_signature_like_jnp_vectorize(batch_shapes):
    try:
        np.broadcast_shapes(*batch_shapes)
    except ValueError:
        fn = lambda *xs: sum(xs)  # noqa: E731
        with pytest.raises(ValueError):
            jnp.vectorize(fn)(*arrays(batch_shapes))
        with pytest.raises(BroadcastError):
            vectorize(fn)(*arrays(batch_shapes))
        return

    def fn(*xs):
        assert all(x.shape == () for x in xs)
        return sum((i + 1) * x for i, x in enumerate(xs)), xs[0] * 2

    out = vectorize(fn)(*arrays(batch_shapes))
    expected = jnp.vectorize(fn)(*arrays(batch_shapes))
    for o, e in zip(out, expected):
        assert o.shape == e.shape
        np.testing.assert_allclose(o, e, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Part 3: jnp.vectorize's call sites in jax.scipy


def quaternions(*batch, seed=0):
    q = np.random.default_rng(seed).normal(size=(*batch, 4)).astype(np.float32)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def normal(*shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def matrices(*batch):
    return np.asarray(transform._as_matrix(quaternions(*batch, seed=2)))


AXES = np.array([0, 2, 1], np.int32)

# name: (signature, arguments with broadcasting batch shapes (sizes 0 and 1 included), the
# core rank of each argument). The signatures are the ones jax.scipy passes to jnp.vectorize.
SCIPY_SITES = {
    "transform._apply": (
        "(m,m),(m),()->(m)",
        lambda: [matrices(4, 1), normal(5, 3), np.arange(5) % 2 == 0],
        [2, 1, 0],
    ),
    "transform._as_matrix": ("(m)->(n,n)", lambda: [quaternions(2, 3)], [1]),
    "transform._as_mrp": ("(m)->(n)", lambda: [quaternions(0)], [1]),
    "transform._as_rotvec": (
        "(m),()->(n)",
        lambda: [quaternions(3, 1), np.array([False, True])],
        [1, 0],
    ),
    "transform._compose_quat": (
        "(n),(n)->(n)",
        lambda: [quaternions(3, 1), quaternions(1, 5, seed=3)],
        [1, 1],
    ),
    "transform._compute_euler_from_quat": (
        "(m),(l),(),()->(n)",
        lambda: [quaternions(3), AXES, np.array([[True], [False]]), np.bool_(False)],
        [1, 1, 0, 0],
    ),
    "transform._elementary_quat_compose": (
        "(m),(m),(),()->(n)",
        lambda: [normal(4, 3), AXES, np.bool_(True), np.bool_(True)],
        [1, 1, 0, 0],
    ),
    "transform._from_matrix": ("(m,m)->(n)", lambda: [matrices(2, 1, 3)], [2]),
    "transform._from_mrp": ("(m)->(n)", lambda: [normal(5, 3)], [1]),
    "transform._from_rotvec": ("(m),()->(n)", lambda: [normal(2, 3), np.bool_(False)], [1, 0]),
    "transform._inv": ("(n)->(n)", lambda: [quaternions(2, 1, 2)], [1]),
    "transform._magnitude": ("(n)->()", lambda: [quaternions(6)], [1]),
    "transform._make_canonical": ("(n)->(n)", lambda: [quaternions(2, 3)], [1]),
    "transform._make_elementary_quat": ("(),()->(n)", lambda: [AXES, normal(2, 1)], [0, 0]),
    "transform._normalize_quaternion": ("(n)->(n)", lambda: [normal(3, 4)], [1]),
    "transform._vector_norm": ("(n)->()", lambda: [normal(1, 4, 3)], [1]),
    "linalg._toeplitz": ("(m),(n)->(m,n)", lambda: [normal(2, 1, 3), normal(4, 2)], [1, 1]),
}


@pytest.mark.parametrize("name", sorted(SCIPY_SITES))
def test_jax_scipy_call_sites(name):
    module, attr = name.split(".")
    vectorized = getattr({"transform": transform, "linalg": scipy_linalg}[module], attr)
    one = vectorized.__wrapped__  # the per-example function, under jnp.vectorize's wraps
    sig, make_args, cores = SCIPY_SITES[name]
    args = make_args()
    batch = np.broadcast_shapes(*(np.shape(a)[: np.ndim(a) - c] for a, c in zip(args, cores)))
    assert batch != () or name.endswith("_as_mrp"), "each site is called with batch dims"

    ours = vectorize(one, signature=sig)(*args)
    theirs = vectorized(*args)  # jax.scipy's own, through jnp.vectorize
    # the loop passes each example as a jax array, as jnp.vectorize does
    expected = loop(lambda *xs: one(*map(jnp.asarray, xs)), args, cores, batch)
    assert ours.shape == theirs.shape == expected.shape and ours.shape[: len(batch)] == batch
    np.testing.assert_array_equal(ours, theirs)  # identical to jnp.vectorize
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)  # and to the plain loop


def test_jax_scipy_multivariate_normal_triangular_solve():
    # multivariate_normal.logpdf vectorizes a `partial` of `lax.linalg.triangular_solve`
    solve = partial(jax.lax.linalg.triangular_solve, lower=True, transpose_a=True)
    rng = np.random.default_rng(1)
    L = np.tril(rng.normal(size=(3, 1, 4, 4))).astype(np.float32) + 4 * np.eye(4, dtype=np.float32)
    y = rng.normal(size=(5, 4)).astype(np.float32)
    ours = vectorize(solve, signature="(n,n),(n)->(n)")(L, y)
    theirs = jnp.vectorize(solve, signature="(n,n),(n)->(n)")(L, y)
    np.testing.assert_array_equal(ours, theirs)
    expected = loop(solve, [L, y], [2, 1], (3, 5))
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


SPECIAL_ARGS = {
    "expn": [np.array([[1], [2], [3]], np.int32), np.linspace(0.5, 2.0, 4, dtype=np.float32)],
    "hyp1f1": [
        np.float32(0.5),
        np.array([[1.5], [2.5]], np.float32),
        np.linspace(0.1, 0.5, 3, dtype=np.float32),
    ],
}


@pytest.mark.parametrize("name", sorted(SPECIAL_ARGS))
def test_jax_scipy_special_elementwise(name):
    # special functions vectorized with no signature: every argument is a scalar
    fn = getattr(scipy_special, name)
    while hasattr(fn, "__wrapped__") or hasattr(fn, "fun"):  # custom_jvp, jit, vectorize
        fn = getattr(fn, "__wrapped__", None) or fn.fun
    args = SPECIAL_ARGS[name]
    ours = vectorize(fn)(*args)
    theirs = jnp.vectorize(fn)(*args)
    np.testing.assert_array_equal(ours, theirs)
    batch = np.broadcast_shapes(*(np.shape(a) for a in args))
    assert ours.shape == batch
    expected = loop(jax.jit(fn), args, [0] * len(args), batch)  # jit: one compile, not eager
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_plan_of_a_vectorized_function():
    dot = vectorize(jnp.dot, signature="(n),(n)->()")
    p = autovmap.plan(dot, jnp.ones((4, 1, 3)), jnp.ones((5, 3)))
    assert p.function == "vectorize(dot)" and p.batch_shape == (4, 5)
    assert [(leaf.argument, leaf.source) for leaf in p.leaves] == [
        ("a", "signature"),
        ("b", "signature"),
    ]
    with pytest.raises(CoreDimError, match="vectorize"):
        autovmap.plan(dot, jnp.ones((4, 3)), jnp.ones(2))
