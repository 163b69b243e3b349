"""Named core dims for `auto_vmap`: `signature=`, dim strings, and how they combine with
explicit ranks and annotations. The rules are in docs/ranks.md, "Named core dims"."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from jaxtyping import Array, Float
from oracle import loop

from autovmap import (
    AnnotationCheckError,
    BatchShapeError,
    CoreDimError,
    OutputSignatureError,
    RankSpecError,
    auto_vmap,
    plan,
    vectorize,
)


@auto_vmap(signature="(),(n),(n,n)->()")
def quad(s, v, m):
    return v @ m @ v + s * v.size


def test_signature_gives_the_ranks():
    s, v, m = jnp.array(2.0), jnp.ones((7, 1, 3)), jnp.ones((5, 3, 3))
    assert quad(s, v, m).shape == (7, 5)
    assert [leaf.source for leaf in plan(quad, s, v, m).leaves] == ["signature"] * 3
    assert [leaf.rank for leaf in plan(quad, s, v, m).leaves] == [0, 1, 2]


def test_signature_is_the_same_program_as_explicit_ranks():
    explicit = auto_vmap(s=0, v=1, m=2)(quad.__wrapped__)
    args = (jnp.array(2.0), jnp.ones((7, 1, 3)), jnp.ones((5, 3, 3)))
    assert str(jax.make_jaxpr(quad)(*args)) == str(jax.make_jaxpr(explicit)(*args))


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_named_dim_mismatch_names_both_arguments(transform):
    with pytest.raises(CoreDimError) as info:
        transform(quad)(2.0, jnp.ones((4, 3)), jnp.ones((4, 2, 2)))
    message = str(info.value)
    for needle in [
        "auto_vmap(quad)",
        "core dim `n` has size 3 in argument `v`",
        "size 2 in argument `m`",
        "(4, 3)",
        "(4, 2, 2)",
        "n=3",
        "n=2",
        "'(),(n),(n,n)->()'",
    ]:
        assert needle in message, (needle, message)
    assert isinstance(info.value, BatchShapeError) and isinstance(info.value, ValueError)


def test_size_one_core_dim_never_stretches():
    # `v @ m` would silently broadcast a size-1 `v`: the check stops it, before `jax.vmap`.
    with pytest.raises(CoreDimError, match="A size-1 core dim does not stretch"):
        quad(2.0, jnp.ones((4, 1)), jnp.ones((3, 3)))
    # also when nothing is batched: the fast path for unbatched calls does not skip the check
    with pytest.raises(CoreDimError):
        quad(2.0, jnp.ones(1), jnp.ones((3, 3)))


def test_mismatch_within_one_argument():
    trace = auto_vmap(a="n n")(jnp.trace)
    with pytest.raises(CoreDimError, match="sizes 2 and 3 within argument `a`") as info:
        trace(jnp.ones((4, 2, 3)))
    assert "n=2 n=3" in str(info.value)


def test_check_runs_before_broadcasting():
    # batch dims that do not broadcast AND a core mismatch: the core dims are reported.
    with pytest.raises(CoreDimError):
        quad(2.0, jnp.ones((4, 3)), jnp.ones((5, 2, 2)))


def test_plan_reports_core_dim_errors_too():
    with pytest.raises(CoreDimError):
        plan(quad, 2.0, jnp.ones((4, 3)), jnp.ones((4, 2, 2)))


@given(
    batch_v=st.lists(st.integers(0, 2), max_size=2),
    batch_m=st.lists(st.integers(0, 2), max_size=2),
    n=st.integers(1, 3),
)
def test_signature_matches_the_loop(batch_v, batch_m, n):
    try:
        batch = np.broadcast_shapes(tuple(batch_v), tuple(batch_m))
    except ValueError:
        return
    rng = np.random.default_rng(0)
    v = rng.normal(size=(*batch_v, n)).astype(np.float32)
    m = rng.normal(size=(*batch_m, n, n)).astype(np.float32)
    out = quad(np.float32(2.0), v, m)
    expected = loop(quad.__wrapped__, (np.float32(2.0), v, m), (0, 1, 2), batch)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


# --- outputs ------------------------------------------------------------------------------


def test_several_outputs_are_a_tuple():
    @auto_vmap(signature="(n)->(),(n)")
    def center(x):
        mean = x.mean()
        return mean, x - mean

    mean, centred = center(jnp.arange(6.0).reshape(2, 3))
    assert mean.shape == (2,) and centred.shape == (2, 3)


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
@pytest.mark.parametrize(
    "signature, body, needles, builtin",
    [
        (
            "(n)->(),(n)",
            lambda x: x,
            ["must return a tuple of 2", "it returned a float32 array of shape (3,)"],
            TypeError,
        ),
        ("(n)->(),(n)", lambda x: [x.sum(), x], ["must return a tuple of 2", "`list`"], TypeError),
        ("(n)->()", lambda x: (x.sum(), x), ["declares 1 output(s)", "tuple of 2"], TypeError),
        ("(n)->()", lambda x: x, ["output 0 of one example has shape (3,)", "()"], ValueError),
        (
            "(n)->(n)",
            lambda x: x[:2],
            ["core dim `n` has size 2", "`n` = 3 from argument `x`"],
            ValueError,
        ),
        ("(n)->(k),(k)", lambda x: (x, x[:2]), ["output 1", "`k` = 3 from output 0"], ValueError),
        ("(n)->(3)", lambda x: x[:2], ["fixes a dim of it to size 3"], ValueError),
    ],
)
def test_outputs_are_checked(transform, signature, body, needles, builtin):
    f = auto_vmap(signature=signature)(body)
    with pytest.raises(OutputSignatureError) as info:
        transform(f)(jnp.ones((4, 3)))
    for needle in ["auto_vmap(<lambda>)", signature, *needles]:
        assert needle in str(info.value), (needle, str(info.value))
    assert isinstance(info.value, builtin)


_SCALAR, _VECTOR, _PAIR = jnp.ones(()), jnp.ones(3), jnp.ones(2)


@pytest.mark.parametrize(
    "signature, out",
    [
        ("(n)->(n)", _VECTOR),
        ("(n)->(n)", _PAIR),
        ("(n)->(n)", np.ones(3)),
        ("(n)->(n)", "text"),
        ("(n)->(n)", jnp.ones((1, 3))),
        ("(n)->()", _PAIR),
        ("(n)->()", 1.0),
        ("(n)->()", (_SCALAR,)),
        ("(n)->()", {"a": _SCALAR, "b": _SCALAR}),
        ("(n)->()", {"a": _PAIR}),
        ("(n)->(),(n)", (_SCALAR, _VECTOR)),
        ("(n)->(),(n)", (_SCALAR, _PAIR)),
        ("(n)->(),(n)", [_SCALAR, _VECTOR]),
        ("(n)->(),(n)", (_SCALAR, _VECTOR, _VECTOR)),
        ("(n)->(k),(k)", (_PAIR, _PAIR)),
        ("(n)->(k),(k)", (_VECTOR, _PAIR)),
        ("(n)->(3)", _VECTOR),
        ("(n)->(3)", _PAIR),
    ],
)
def test_the_output_fast_path_agrees_with_the_full_check(signature, out):
    """One array per output is told without the full check (`OutputChecker._fits`): it must
    never accept what the full check refuses, and a call raises exactly when the full check
    does."""
    f = auto_vmap(signature=signature)(lambda x: out)
    checker = f.__autovmap__.outputs
    x = jnp.ones(3)
    fits = checker._fits(out, {"n": 3})
    try:
        checker._check(out, {"n": 3}, (x,), {})
        passes = True
    except OutputSignatureError:
        passes = False
    assert passes or not fits
    for call in (f, jax.vmap(f)):  # one example, and each example of a batch
        if passes:
            call(x if call is f else x[None])
        else:
            with pytest.raises(OutputSignatureError):
                call(x if call is f else x[None])


def test_outputs_checked_once_per_trace_under_jit():
    traces = []

    @jax.jit
    @auto_vmap(signature="(n)->()")
    def total(x):
        traces.append(x.shape)
        return x.sum()

    total(jnp.ones((5, 3)))
    total(jnp.ones((5, 3)))
    assert traces == [(3,)]


def test_pytree_outputs_with_one_signature_output():
    # every leaf of the one output has the output's core dims
    f = auto_vmap(signature="(n)->(n)")(lambda x: {"a": x, "b": 2 * x})
    assert f(jnp.ones((4, 3)))["b"].shape == (4, 3)
    g = auto_vmap(signature="(n)->(n)")(lambda x: {"a": x, "b": x.sum()})
    with pytest.raises(OutputSignatureError):
        g(jnp.ones((4, 3)))


# --- matching the signature to parameters ---------------------------------------------------


def test_self_and_parameters_ranked_none_take_no_entry():
    class Metric:
        scale = 2.0

        @auto_vmap(signature="(n),(n)->()")
        def dist(self, a, b):
            return self.scale * jnp.linalg.norm(a - b)

        @classmethod
        @auto_vmap(signature="(n)->()")
        def norm(cls, a):
            return jnp.linalg.norm(a)

    assert Metric().dist(jnp.ones((4, 3)), jnp.zeros(3)).shape == (4,)
    assert Metric.norm(jnp.ones((4, 3))).shape == (4,)

    @auto_vmap(signature="(n),(n)->()", config=None)
    def scaled(a, config, b):
        assert config == {"k": 2}
        return config["k"] * a @ b

    assert scaled(jnp.ones((4, 3)), {"k": 2}, jnp.ones(3)).shape == (4,)


def test_fewer_entries_than_parameters():
    # entries go to the first parameters; `precision` (keyword-only) is not batched
    matvec = auto_vmap(signature="(n,m),(m)->(n)")(jnp.dot)
    out = matvec(jnp.ones((4, 2, 3)), jnp.ones(3), precision=jax.lax.Precision.HIGHEST)
    assert out.shape == (4, 2)


def test_keyword_arguments_take_their_entry():
    out = quad(m=jnp.ones((5, 3, 3)), v=jnp.ones((3,)), s=jnp.arange(5.0))
    assert out.shape == (5,)
    with pytest.raises(CoreDimError):
        quad(m=jnp.ones((5, 3, 3)), v=jnp.ones((2,)), s=2.0)


@pytest.mark.parametrize(
    "options, needles",
    [
        ({"signature": "(n),(n),(n)->()"}, ["has 3 inputs", "only 2 parameters", "`a`, `b`"]),
        ({"signature": "(n),(n)"}, ["not a gufunc signature", "no `->`"]),
        ({"signature": "(n),(n)->()", "a": 2}, ["parameter `a` is given 2", "(n)"]),
        ({"signature": "(n),(n)->()", "a": "m"}, ["parameter `a` is given (m)", "(n)"]),
        ({"signature": "(n),(n)->()", "a": {"x": 1}}, ["parameter `a`", "contradicts"]),
        ({"signature": "(n),(n)->()", "b": "n n"}, ["parameter `b` is given (n, n)"]),
        ({"a": "(n)"}, ["dim string '(n)'", "`signature=`"]),
        ({"a": "*b n"}, ["dim string '*b n'", "variadic"]),
    ],
)
def test_spec_errors_name_the_parameter(options, needles):
    def dist(a, b):
        return jnp.linalg.norm(a - b)

    with pytest.raises(RankSpecError) as info:
        auto_vmap(**options)(dist)
    for needle in ["auto_vmap(dist)", *needles]:
        assert needle in str(info.value), (needle, str(info.value))


def test_explicit_ranks_that_agree_with_the_signature():
    f = auto_vmap(1, signature="(n),(n)->()", b="n")(lambda a, b: a @ b)
    assert f(jnp.ones((4, 3)), jnp.ones(3)).shape == (4,)
    with pytest.raises(CoreDimError):
        f(jnp.ones((4, 3)), jnp.ones(2))


def test_annotation_must_agree_with_the_signature():
    with pytest.raises(RankSpecError, match=r"annotated `Float\[Array, 'n'\]` \(rank 1\)"):

        @auto_vmap(signature="(n,n)->()")
        def f(a: Float[Array, "n"]):
            return a.sum()

    @auto_vmap(signature="(n)->()")  # a variadic annotation: the signature pins the rank
    def g(a: Float[Array, "*b"]):
        return a.sum()

    assert g(jnp.ones((4, 3))).shape == (4,)


# --- dim strings ----------------------------------------------------------------------------


def test_dim_strings_give_ranks_and_names():
    @auto_vmap(s="", v="n", m="n n")
    def quad_named(s, v, m):
        return v @ m @ v + s * v.size

    assert quad_named(2.0, jnp.ones((7, 1, 3)), jnp.ones((5, 3, 3))).shape == (7, 5)
    with pytest.raises(CoreDimError, match="`n` has size 3 in argument `v`"):
        quad_named(2.0, jnp.ones((7, 3)), jnp.ones((2, 2)))
    # unbatched calls take a fast path, which compares the dims too
    assert quad_named(2.0, jnp.ones(3), jnp.ones((3, 3))).shape == ()
    with pytest.raises(CoreDimError, match="`n` has size 3 in argument `v`"):
        quad_named(2.0, jnp.ones(3), jnp.ones((2, 2)))
    with pytest.raises(CoreDimError, match="size 2 in argument `v` but size 3 in argument `m`"):
        quad_named(2.0, jnp.ones(2), jnp.ones((2, 3)))
    positional = auto_vmap("", "n", "n n")(quad_named.__wrapped__)
    with pytest.raises(CoreDimError):
        positional(2.0, jnp.ones((7, 3)), jnp.ones((2, 2)))


def test_dim_string_kinds():
    @auto_vmap(a="3 n", b="_ n", c="#n")
    def f(a, b, c):
        return a.sum() + b.sum() + c.sum()

    assert f(jnp.ones((3, 4)), jnp.ones((9, 4)), jnp.ones(1)).shape == ()  # `#n`: size 1 is fine
    assert f(jnp.ones((2, 3, 4)), jnp.ones((5, 4)), jnp.ones(4)).shape == (2,)
    with pytest.raises(CoreDimError, match="fix a size of 3, but the size there is 2"):
        f(jnp.ones((2, 4)), jnp.ones((9, 4)), jnp.ones(4))
    with pytest.raises(CoreDimError, match="`n`"):
        f(jnp.ones((3, 4)), jnp.ones((9, 4)), jnp.ones(2))


def test_dim_strings_in_pytree_ranks():
    @auto_vmap(p={"w": "n m", "b": "m", "name": None}, x="n")
    def layer(p, x):
        return x @ p["w"] + p["b"]

    params = {"w": jnp.ones((4, 3, 2)), "b": jnp.zeros(2), "name": "dense"}
    assert layer(params, jnp.ones((5, 1, 3))).shape == (5, 4, 2)
    with pytest.raises(CoreDimError) as info:
        layer({**params, "b": jnp.zeros(3)}, jnp.ones((5, 1, 3)))
    assert "p['b']" in str(info.value) and "p['w']" in str(info.value)


def test_dim_strings_for_var_positional_and_var_keyword():
    @auto_vmap(vs="n", ws="n")
    def total(*vs, **ws):
        return sum(v.sum() for v in vs) + sum(w.sum() for w in ws.values())

    assert total(jnp.ones((4, 3)), jnp.ones(3), a=jnp.ones(3)).shape == (4,)
    with pytest.raises(
        CoreDimError,
        match=r"argument `\*vs\[0\]` but size 2 in argument "
        r"`\*\*ws\['a'\]`",
    ):
        total(jnp.ones((4, 3)), a=jnp.ones(2))


# --- annotations ----------------------------------------------------------------------------


@pytest.mark.parametrize("check, error", [(True, AnnotationCheckError), (False, CoreDimError)])
def test_annotation_names_are_always_compared(check, error):
    @auto_vmap(check=check)
    def add(a: Float[Array, "n"], b: Float[Array, "n"]) -> Float[Array, "n"]:
        return a + b

    with pytest.raises(error):
        add(jnp.ones((2, 3)), jnp.ones((2, 1)))


def test_int_ranks_name_nothing():
    @auto_vmap(a=1, b=1, check=False)
    def add(a: Float[Array, "n"], b: Float[Array, "n"]):
        return a + b

    assert add(jnp.ones((2, 3)), jnp.ones((2, 1))).shape == (2, 3)


def test_annotation_names_shared_with_a_signature_are_compared_by_shape():
    @auto_vmap(signature="(n)->()")  # `a` from the signature, `b` from its annotation
    def f(a, b: Float[Array, "n"]):
        return a @ b

    with pytest.raises(CoreDimError, match="argument `a` but size 2 in argument `b`"):
        f(jnp.ones((4, 3)), jnp.ones(2))


def test_no_names_no_cost():
    # nothing to check: the spec carries no core dims, so calls take the usual path
    f = auto_vmap(a=1, b=1)(lambda a, b: a + b)
    assert f.__autovmap__.spec.core is None
    assert quad.__autovmap__.spec.core is not None


def test_repr_shows_the_signature():
    assert repr(auto_vmap(signature="(n)->()")) == "auto_vmap(signature='(n)->()')"


def test_redecorating_keeps_the_signature_and_dim_strings():
    chunked = auto_vmap(chunk_size=2)(quad)  # reads the original: its signature still applies
    args = (2.0, jnp.ones((5, 3)), jnp.ones((5, 3, 3)))
    np.testing.assert_allclose(chunked(*args), quad(*args))
    with pytest.raises(CoreDimError, match="signature"):
        chunked(2.0, jnp.ones((4, 3)), jnp.ones((4, 2, 2)))
    named = auto_vmap(s="", v="n", m="n n")(quad.__wrapped__)
    with pytest.raises(CoreDimError):
        auto_vmap(check=False)(named)(2.0, jnp.ones(3), jnp.ones((2, 2)))
    replaced = auto_vmap(signature="(),(n),(k,k)->()")(quad)
    assert replaced.__autovmap__.spec.gufunc.text == "(),(n),(k,k)->()"


def test_outputs_are_checked_in_chunks_too():
    f = auto_vmap(signature="(n)->()", chunk_size=2)(lambda x: x)
    with pytest.raises(OutputSignatureError, match="output 0 of one example has shape"):
        f(jnp.ones((5, 3)))


@pytest.mark.parametrize("shape", [(3,), (4, 3), (2, 1, 3)], ids=str)
@pytest.mark.parametrize(
    "make",
    [auto_vmap(signature="(n)->(n)"), lambda f: vectorize(f, signature="(n)->(n)")],
    ids=["auto_vmap", "vectorize"],
)
def test_a_call_reads_its_named_sizes_once(monkeypatch, make, shape):
    """The sizes of a call's named dims are read once (unbatched or not) and each example's
    outputs are compared with them: not read again for the outputs."""
    from autovmap._signature import CoreDims

    reads = []
    read = CoreDims.sizes
    monkeypatch.setattr(CoreDims, "sizes", lambda self, args: reads.append(1) or read(self, args))
    f = make(jnp.sin)
    np.testing.assert_allclose(f(jnp.ones(shape)), np.sin(np.ones(shape)))
    assert len(reads) == 1


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_names_only_outputs_give_agree_over_every_example_and_chunk(chunk_size):
    """`k` is given by output 0 of each example; output 1 must agree with it, in every chunk."""
    ok = auto_vmap(signature="(n)->(k),(k)", chunk_size=chunk_size)(lambda x: (x[:2], 2 * x[:2]))
    first, second = ok(jnp.arange(15.0).reshape(5, 3))
    np.testing.assert_array_equal(second, 2 * first)
    bad = auto_vmap(signature="(n)->(k),(k)", chunk_size=chunk_size)(lambda x: (x[:2], x[:1]))
    with pytest.raises(OutputSignatureError, match="`k` = 2 from output 0"):
        bad(jnp.ones((5, 3)))
