"""`Batched[T, "dims"]`: a stack of `T`s, checked against a loop over the stack (every example
`isinstance`-checked by jaxtyping itself), with dims bound like any jaxtyping dim; and its ranks
in `auto_vmap`, checked against a loop over the batch."""

import dataclasses
from collections.abc import Callable
from typing import Any, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import typeguard
from beartype import beartype
from hypothesis import given, strategies as st
from jaxtyping import Array, Float, PyTree, Shaped, jaxtyped
from oracle import assert_trees_close

from autovmap import AnnotationCheckError, Batched, RankSpecError, auto_vmap, plan


class Dense(eqx.Module):
    w: Float[Array, "n m"]
    b: Float[Array, "m"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Particle:
    position: Float[Array, "3"]
    mass: Float[Array, ""]


def stack(examples: list[Any]) -> Any:
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *examples)


def dense(n: int, m: int, seed: float = 0.0) -> Dense:
    return Dense(jnp.full((n, m), seed), jnp.full((m,), seed + 1.0))


def is_dense_by_loop(w: Any, b: Any, dims: int = 1) -> bool:
    """The oracle: every array leaf has the same `dims` leading sizes, and each example of the
    stack is a `Dense` by jaxtyping's own `isinstance` of its fields, in one memo scope."""
    if w.ndim < dims or b.ndim < dims or w.shape[:dims] != b.shape[:dims]:
        return False
    for index in np.ndindex(*w.shape[:dims]):
        with jaxtyped("context"):
            if not (
                isinstance(w[index], Float[Array, "n m"])
                and isinstance(b[index], Float[Array, "m"])
            ):
                return False
    return True


sizes = st.integers(0, 3)


@given(e_w=sizes, e_b=sizes, n=st.integers(1, 3), m=sizes, m_b=sizes, extra=st.booleans())
def test_isinstance_agrees_with_a_loop_over_the_stack(e_w, e_b, n, m, m_b, extra):
    w = jnp.ones((e_w, n, m) + ((2,) if extra else ()))
    b = jnp.ones((e_b, m_b))
    expected = is_dense_by_loop(w, b)
    if e_w == e_b == 0:  # no example to loop over: one of the example's shape is checked
        expected = not extra and m == m_b
    assert isinstance(Dense(w, b), Batched[Dense, "e"]) == expected


@given(e=st.integers(0, 3), k=st.integers(1, 2), k_b=st.integers(1, 2), m=st.integers(1, 3))
def test_two_added_dims_agree_with_a_loop(e, k, k_b, m):
    w, b = jnp.ones((e, k, 2, m)), jnp.ones((e, k_b, m))
    expected = is_dense_by_loop(w, b, dims=2) or (e == 0 and k == k_b)
    assert isinstance(Dense(w, b), Batched[Dense, "e k"]) == expected


def test_an_array_annotation_stacks_like_a_longer_dim_string():
    for shape in [(4, 3), (4,), (1, 3), (0, 3), (4, 3, 3), ()]:
        x = jnp.ones(shape)
        assert isinstance(x, Batched[Float[Array, "n"], "e"]) == isinstance(
            x, Float[Array, "e n"]
        ), shape
    assert not isinstance(jnp.ones((4, 3), jnp.int32), Batched[Float[Array, "n"], "e"])


def test_every_dim_string_jaxtyping_reads():
    x = dense(2, 3)
    assert isinstance(stack([x] * 4), Batched[Dense, "4"])
    assert not isinstance(stack([x] * 5), Batched[Dense, "4"])
    assert isinstance(stack([x] * 5), Batched[Dense, "_"])
    # "#e": a leaf of size 1 broadcasts against the others.
    assert isinstance(Dense(jnp.ones((1, 2, 3)), jnp.ones((5, 3))), Batched[Dense, "#e"])
    assert not isinstance(Dense(jnp.ones((1, 2, 3)), jnp.ones((5, 3))), Batched[Dense, "e"])
    # "*b": as many leading dims as each leaf has beyond its rank in `Dense`.
    assert isinstance(stack([stack([x] * 4)] * 2), Batched[Dense, "*b"])
    assert isinstance(x, Batched[Dense, "*b"])  # no added dims at all
    mixed = Dense(jnp.ones((2, 4, 2, 3)), jnp.ones((2, 5, 3)))
    assert not isinstance(mixed, Batched[Dense, "*b"])
    assert is_dense_by_loop(mixed.w, mixed.b, dims=1) is False


def test_a_size_0_stack_checks_its_example_shape():
    empty = Dense(jnp.ones((0, 2, 3)), jnp.ones((0, 3)))
    assert isinstance(empty, Batched[Dense, "e"])
    assert not isinstance(Dense(jnp.ones((0, 2, 3)), jnp.ones((0, 4))), Batched[Dense, "e"])
    assert not isinstance(Dense(jnp.ones((0, 2, 3)), jnp.ones((2, 3))), Batched[Dense, "e"])
    # NumPy leaves get a NumPy stand-in: a `Float[np.ndarray, ...]` field still matches.
    assert isinstance(np.ones((0, 3)), Batched[Float[np.ndarray, "n"], "e"])


def test_non_array_leaves_are_left_alone():
    class WithStatic(eqx.Module):
        w: Float[Array, "n"]
        scale: float
        activation: Callable[[Array], Array]
        bias: Optional[Float[Array, "n"]] = None
        name: str = eqx.field(static=True, default="layer")

    stacked = WithStatic(jnp.ones((4, 3)), 2.0, jax.nn.relu)
    assert isinstance(stacked, Batched[WithStatic, "e"])
    assert isinstance(
        WithStatic(jnp.ones((4, 3)), 2.0, jax.nn.relu, jnp.ones((4, 3))), Batched[WithStatic, "e"]
    )
    # The fields with jaxtyping annotations are checked: `bias` has the example's `n`.
    assert not isinstance(
        WithStatic(jnp.ones((4, 3)), 2.0, jax.nn.relu, jnp.ones((4, 2))), Batched[WithStatic, "e"]
    )


def test_a_registered_dataclass_and_a_pytree():
    particles = Particle(jnp.ones((10, 3)), jnp.ones(10))
    assert isinstance(particles, Batched[Particle, "p"])
    assert not isinstance(Particle(jnp.ones((10, 2)), jnp.ones(10)), Batched[Particle, "p"])
    assert not isinstance({"a": jnp.ones((10, 3))}, Batched[Particle, "p"])  # not a Particle
    # jaxtyping issue #84: a pytree of arrays of any shape, each with a leading axis `N`.
    tree = {"a": jnp.ones((5, 2)), "b": [jnp.ones(5), jnp.ones((5, 3, 3))]}
    assert isinstance(tree, Batched[PyTree[Float[Array, "..."]], "N"])
    tree["b"][0] = jnp.ones(4)
    assert not isinstance(tree, Batched[PyTree[Float[Array, "..."]], "N"])


def test_the_mismatch_message_names_the_leaf_its_shape_and_the_dims():
    bad = Dense(jnp.ones((4, 2, 3)), jnp.ones((5, 3)))
    reason = Batched[Dense, "e"].__instancecheck_str__(bad)
    assert "`.b`" in reason and "(5, 3)" in reason and "'e'" in reason, reason
    assert "existing value of 4" in reason, reason
    reason = Batched[Dense, "e"].__instancecheck_str__(Dense(jnp.ones((4, 2, 3)), jnp.ones((4, 2))))
    assert "field `b`" in reason and "(2,)" in reason and "Float[Array, 'm']" in reason, reason
    assert Batched[Dense, "e"].__instancecheck_str__(dense(2, 3)) != ""
    assert Batched[Dense, "e"].__instancecheck_str__(stack([dense(2, 3)] * 2)) == ""


def test_dims_agree_across_arguments_and_the_return_under_typeguard():
    models = stack([dense(2, 3)] * 4)
    with jaxtyped("context"):
        typeguard.check_type(models, Batched[Dense, "e"])
        typeguard.check_type(jnp.ones(4), Float[Array, "e"])
        typeguard.check_type(jnp.ones((4, 3)), Float[Array, "e m"])  # `m` from inside Dense
        with pytest.raises(typeguard.TypeCheckError):
            typeguard.check_type(jnp.ones(5), Float[Array, "e"])
        with pytest.raises(typeguard.TypeCheckError):
            typeguard.check_type(jnp.ones(2), Float[Array, "m"])
    with jaxtyped("context"):
        typeguard.check_type(jnp.ones(5), Float[Array, "e"])
        with pytest.raises(typeguard.TypeCheckError):
            typeguard.check_type(models, Batched[Dense, "e"])


def test_a_failed_check_binds_nothing():
    torn = Dense(jnp.ones((3, 2, 3)), jnp.ones((4, 3)))  # `.w` binds e=3 before `.b` fails
    with jaxtyped("context"):
        assert not isinstance(torn, Batched[Dense, "e"])
        assert isinstance(jnp.ones(4), Float[Array, "e"])
        assert isinstance(jnp.ones(4), Float[Array, "n"])


def test_dims_agree_across_arguments_and_the_return_under_beartype():
    @jaxtyped(typechecker=beartype)
    def weigh(models: Batched[Dense, "e"], weights: Float[Array, "e"]) -> Float[Array, "e m"]:
        return models.b * weights[:, None]

    models = stack([dense(2, 3, seed=float(i)) for i in range(4)])
    assert weigh(models, jnp.ones(4)).shape == (4, 3)
    with pytest.raises(Exception, match="weights"):
        weigh(models, jnp.ones(5))
    with pytest.raises(Exception, match="models"):
        weigh(Dense(jnp.ones((4, 2, 3)), jnp.ones((4, 2))), jnp.ones(4))

    @jaxtyped(typechecker=beartype)
    def wrong(models: Batched[Dense, "e"]) -> Float[Array, "e"]:
        return models.b[:, 0][:-1]

    with pytest.raises(Exception, match="return"):
        wrong(models)


def by_loop(fn, stacked, x, batch_shape, stacked_batch_ndim):
    """`fn` per batch index: the stack's leaves and `x` indexed as broadcasting dictates."""
    outs = []
    for index in np.ndindex(*batch_shape):

        def pick(leaf, batch_ndim, index=index):
            own = index[len(index) - batch_ndim :] if batch_ndim else ()
            return leaf[tuple(0 if leaf.shape[i] == 1 else j for i, j in enumerate(own))]

        example = jax.tree.map(lambda leaf: pick(leaf, stacked_batch_ndim), stacked)
        outs.append(fn(example, pick(x, x.ndim - 1)))
    return jnp.stack(outs).reshape(*batch_shape, *outs[0].shape)


@given(
    batch_m=st.sampled_from([(), (4,), (1,), (3, 1)]),
    batch_x=st.sampled_from([(), (4,), (1, 4), (3, 4)]),
)
def test_rank_is_the_examples_plus_the_added_dims(batch_m, batch_x):
    @auto_vmap
    def apply(models: Batched[Dense, "e"], x: Float[Array, "n"]) -> Float[Array, "e m"]:
        return x @ models.w + models.b

    e, n, m = 5, 2, 3
    models = Dense(
        jnp.arange(np.prod((*batch_m, e, n, m)), dtype=jnp.float32).reshape(*batch_m, e, n, m),
        jnp.ones((*batch_m, e, m)),
    )
    x = jnp.arange(np.prod((*batch_x, n)), dtype=jnp.float32).reshape(*batch_x, n)
    batch = np.broadcast_shapes(batch_m, batch_x)
    expected = by_loop(apply.__wrapped__, models, x, batch, len(batch_m))
    assert_trees_close(apply(models, x), expected)
    assert [(leaf.argument, leaf.rank) for leaf in plan(apply, models, x).leaves] == [
        ("models.w", 3),
        ("models.b", 2),
        ("x", 1),
    ]


def test_checks_inside_auto_vmap():
    @auto_vmap
    def apply(models: Batched[Dense, "e"], x: Float[Array, "n"]) -> Float[Array, "e"]:
        return (x @ models.w + models.b).sum(-1)

    models = stack([dense(2, 3)] * 4)
    assert apply(models, jnp.ones((7, 2))).shape == (7, 4)
    assert_trees_close(jax.jit(apply)(models, jnp.ones((7, 2))), apply(models, jnp.ones((7, 2))))
    with pytest.raises(AnnotationCheckError, match=r"`models`.*field `b`.*\(2,\)"):
        apply(Dense(jnp.ones((4, 2, 3)), jnp.ones((4, 2))), jnp.ones((7, 2)))
    with pytest.raises(AnnotationCheckError, match=r"`models`.*`\.b`.*\(5, 3\).*'e'"):
        apply(Dense(jnp.ones((4, 2, 3)), jnp.ones((5, 3))), jnp.ones(2))
    # `n` from inside the stack binds `x` too, and `e` the return value.
    with pytest.raises(AnnotationCheckError, match="argument `x`"):
        apply(models, jnp.ones((7, 3)))

    @auto_vmap
    def wrong(models: Batched[Dense, "e"], x: Float[Array, "n"]) -> Float[Array, "e"]:
        return (x @ models.w + models.b).sum(-1)[:-1]

    for _ in range(2):  # a remembered call fails as the first did
        with pytest.raises(AnnotationCheckError, match=r"(?s)return value.*e=4"):
            wrong(models, jnp.ones((7, 2)))
    # The batched function's own signature takes the batch dims: outer checkers accept it.
    outer = jaxtyped(typechecker=beartype)(apply)
    assert outer(stack([models] * 3), jnp.ones((3, 2))).shape == (3, 4)


def test_variadic_added_dims_have_no_rank_for_auto_vmap():
    with pytest.raises(RankSpecError, match=r"`models`.*variadic"):

        @auto_vmap
        def apply(models: Batched[Dense, "*b"], x: Float[Array, "n"]):
            return x @ models.w

    # ... unless it is given one; the check still runs against `"*b"`.
    @auto_vmap(models=None)
    def apply(models: Batched[Dense, "*b"], x: Float[Array, "n"]):
        return x @ models.w

    assert apply(stack([dense(2, 3)] * 4), jnp.ones((5, 2))).shape == (5, 4, 3)
    with pytest.raises(AnnotationCheckError, match=r"`models`.*'\*b'"):
        apply(Dense(jnp.ones((4, 2, 3)), jnp.ones((5, 3))), jnp.ones(2))


def test_bad_subscriptions_are_refused():
    with pytest.raises(RankSpecError, match="a type and a dim string"):
        Batched[Dense]
    with pytest.raises(RankSpecError, match="a type and a dim string"):
        Batched[Dense, 3]
    with pytest.raises(RankSpecError, match="variadic"):
        Batched[Dense, "*a *b"]
    with pytest.raises(RankSpecError, match="already subscripted"):
        Batched[Dense, "e"][Dense, "k"]
    # Variadic added dims need a fixed rank somewhere in T to know where they end.
    with pytest.raises(RankSpecError, match="gives no leaf a fixed rank"):
        Batched[eqx.nn.MLP, "*b"]
    assert isinstance(RankSpecError("x"), TypeError)


def test_equal_subscriptions_are_one_type():
    assert Batched[Dense, "e"] == Batched[Dense, "e"]
    assert hash(Batched[Dense, "e"]) == hash(Batched[Dense, "e"])
    assert Batched[Dense, "e"] != Batched[Dense, "k"]
    assert Batched[Dense, "e"] != Batched[Particle, "e"]
    assert repr(Batched[Dense, "e"]) == "Batched[Dense, 'e']"
    assert repr(Batched[Float[Array, "n"], "e k"]) == "Batched[Float[Array, 'n'], 'e k']"
    assert isinstance(Batched[Shaped[Array, "n"], "e"], type)


def test_an_ensemble_of_equinox_mlps_through_auto_vmap():
    keys = jax.random.split(jax.random.key(0), 5)
    ensemble = eqx.filter_vmap(lambda key: eqx.nn.MLP(2, 4, 8, 2, key=key))(keys)
    assert isinstance(ensemble, Batched[eqx.nn.MLP, "e"])
    assert not isinstance(eqx.nn.MLP(2, 4, 8, 2, key=keys[0]), Batched[eqx.nn.MLP, "e"])

    @auto_vmap
    def predict(models: Batched[eqx.nn.MLP, "e"], x: Float[Array, "2"]) -> Float[Array, "e 4"]:
        return eqx.filter_vmap(lambda model: model(x))(models)

    x = jax.random.normal(jax.random.key(1), (3, 1, 2)) * jnp.ones((3, 6, 2))
    members = [
        jax.tree.map(lambda leaf, i=i: leaf[i] if eqx.is_array(leaf) else leaf, ensemble)
        for i in range(5)
    ]
    # The oracle: each member of the ensemble, one by one, under a hand-written vmap.
    by_hand = jax.vmap(jax.vmap(lambda x: jnp.stack([member(x) for member in members])))
    assert_trees_close(predict(ensemble, x), by_hand(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(AnnotationCheckError, match="`models`"):
        predict(members[0], x)


def test_the_cli_shows_the_stack_and_its_ranks(tmp_path, capsys):
    from autovmap._cli import main

    module = tmp_path / "ensemble_module.py"
    module.write_text(
        "import equinox as eqx\n"
        "from jaxtyping import Array, Float\n"
        "from autovmap import Batched, auto_vmap\n\n"
        "class Dense(eqx.Module):\n"
        "    w: Float[Array, 'n m']\n"
        "    b: Float[Array, 'm']\n\n"
        "@auto_vmap\n"
        "def apply(models: Batched[Dense, 'e'], x: Float[Array, 'n']) -> Float[Array, 'e m']:\n"
        "    return x @ models.w + models.b\n"
    )
    assert main(["inspect", str(module)]) == 0
    out = capsys.readouterr().out
    assert "Batched[Dense, 'e']" in out and "Dense(w=3, b=2)" in out, out
