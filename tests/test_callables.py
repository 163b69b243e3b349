"""Every callable a user can hand `auto_vmap` is read correctly or refused at decoration.

Each batched result is compared with a plain loop over the examples (`oracle.loop`).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import typing
import weakref
from typing import NamedTuple, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import Array, ArrayLike, Float
from oracle import assert_trees_close, loop

from autovmap import (
    AnnotationCheckError,
    NothingToBatchWarning,
    OptionError,
    RankSpecError,
    TreeStructureError,
    auto_vmap,
    plan,
    vectorize,
)

if typing.TYPE_CHECKING:
    from collections import OrderedDict as OnlyForTypeCheckers  # never defined at run time

RNG = np.random.default_rng(0)
V = jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32)
M = jnp.asarray(RNG.normal(size=(3, 3)), jnp.float32)


def dist(a: Float[Array, "n"], b: Float[Array, "n"]) -> Float[Array, ""]:
    return jnp.sqrt(jnp.sum((a - b) ** 2))


class Summer:
    def __call__(self, x: Float[Array, "n"]) -> Float[Array, ""]:
        return x.sum()


def test_callable_object_takes_ranks_from_its_call_method():
    batched = auto_vmap(Summer())
    assert_trees_close(batched(V), loop(Summer(), [V], [1], (4,)))
    with pytest.raises(AnnotationCheckError, match=r"auto_vmap\(Summer\)"):
        batched(V.astype(jnp.int32))  # its checks run too


class Scale(eqx.Module):
    weight: Float[Array, "n n"]

    def __call__(self, x: Float[Array, "n"]) -> Float[Array, "n"]:
        return self.weight @ x


def test_equinox_module_instance_is_batched_over_its_call_arguments():
    module = Scale(M)
    out = auto_vmap(module)(V[:, None, :] * jnp.ones((4, 5, 3)))
    expected = loop(module, [np.asarray(V[:, None, :] * np.ones((4, 5, 3)))], [1], (4, 5))
    assert_trees_close(out, expected)


def test_partial_keeps_the_ranks_of_the_remaining_parameters():
    origin = jnp.zeros(3)
    batched = auto_vmap(functools.partial(dist, origin))
    assert_trees_close(batched(V), loop(lambda b: dist(origin, b), [V], [1], (4,)))
    by_keyword = auto_vmap(functools.partial(dist, b=origin))
    assert_trees_close(by_keyword(V), loop(lambda a: dist(a, origin), [V], [1], (4,)))


def test_re_decorating_reads_the_original_and_keeps_its_options():
    batched = auto_vmap(dist)
    chunked = auto_vmap(chunk_size=2)(batched)
    unchecked = auto_vmap(check=False)(chunked)
    a, b = V[:, None, :], jnp.ones((5, 3))
    expected = loop(dist, [a, b], [1, 1], (4, 5))
    for f in (chunked, unchecked):
        assert_trees_close(f(a, b), expected)
    assert chunked.__autovmap__.options.chunk_size == 2 and chunked.__autovmap__.options.check
    assert unchecked.__autovmap__.options.chunk_size == 2
    assert not unchecked.__autovmap__.options.check
    assert unchecked.__autovmap__.spec.fn is dist
    explicit = auto_vmap(b=None)(auto_vmap(a=1, b=1)(lambda a, b: a @ b))
    assert explicit.__autovmap__.spec.explicit == {"a": 1, "b": None}


def test_re_decorating_with_rank_none_or_no_signature_batches_nothing_and_warns():
    def f(x):
        return jnp.sum(x**2)

    x = np.arange(12.0).reshape(4, 3)
    for batched, new in (
        (auto_vmap(x=1)(f), auto_vmap(x=None)),
        (auto_vmap(signature="(n)->()")(f), auto_vmap(signature=None)),
    ):
        with pytest.warns(NothingToBatchWarning, match=r"auto_vmap\(f\).*nothing is batched"):
            unbatched = new(batched)
        assert unbatched is f  # the original, undecorated
        assert_trees_close(unbatched(x), np.sum(x**2))


def test_re_decorating_keeps_the_explicit_rank_over_a_variadic_annotation():
    def f(x: Float[Array, "*b n"]) -> Float[Array, ""]:
        return jnp.sum(x**2)

    chunked = auto_vmap(chunk_size=2)(auto_vmap(x=1)(f))
    assert chunked.__autovmap__.options.chunk_size == 2
    assert chunked.__autovmap__.spec.explicit == {"x": 1}
    x = np.arange(15.0).reshape(5, 3)
    assert_trees_close(chunked(x), loop(f, [x], [1], (5,)))


def test_re_decorating_a_vectorize_function_chunks_or_refuses():
    def dot(a, b):
        return a @ b

    vectorized = vectorize(dot, signature="(n),(n)->()")
    chunked = auto_vmap(chunk_size=2)(vectorized)
    assert chunked is not vectorized
    a, b = np.arange(15.0).reshape(5, 3), np.ones(3)
    assert_trees_close(chunked(a, b), loop(dot, [a, b], [1, 1], (5,)))
    assert "in chunks of at most 2" in str(plan(chunked, a, b))
    assert "chunks" not in str(plan(vectorized, a, b))
    with pytest.raises(RankSpecError, match=r"vectorize\(dot\).*gives ranks"):
        auto_vmap(a=1)(vectorized)
    with pytest.raises(OptionError, match=r"vectorize\(dot\).*signature=\.\.\.\)` does not"):
        auto_vmap(signature="(n),(n)->()")(vectorized)
    with pytest.raises(OptionError, match=r"check=\.\.\.\)` does not apply"):
        auto_vmap(check=True)(vectorized)


def test_container_annotations_give_per_leaf_ranks():
    @auto_vmap
    def pair(p: tuple[Float[Array, "n"], Float[Array, "n n"]]) -> Float[Array, ""]:
        v, m = p
        return v @ m @ v

    @auto_vmap
    def total(d: dict[str, Float[Array, "n"]], vs: list[Float[Array, "n"]]) -> Float[Array, ""]:
        return sum(x.sum() for x in d.values()) + sum(v.sum() for v in vs)

    ms = jnp.stack([M, 2 * M])[:, None]  # batch (2, 1) against V's (4,)
    assert_trees_close(pair((V, ms)), loop(lambda v, m: pair((v, m)), [V, ms], [1, 2], (2, 4)))
    out = total({"a": V, "b": jnp.ones(3)}, [V, V])
    assert_trees_close(out, 3 * V.sum(-1) + 3.0)


# The functional form keeps real annotations under `from __future__ import annotations`, which
# typeguard needs to check the fields (it resolves string field annotations in its own globals).
Point = NamedTuple("Point", [("x", Float[Array, "n"]), ("label", str)])  # noqa: UP014


def test_named_tuple_fields_give_ranks():
    @auto_vmap
    def norm(p: Point) -> Float[Array, ""]:
        assert p.label == "p"
        return jnp.linalg.norm(p.x)

    assert_trees_close(norm(Point(V, "p")), np.linalg.norm(np.asarray(V), axis=-1))


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Node:
    value: Float[Array, "n"]
    child: Optional[Node]


def test_self_referential_dataclass_does_not_recurse_forever():
    @auto_vmap
    def depth_sum(node: Node) -> Float[Array, ""]:
        total = node.value.sum()
        return total if node.child is None else total + node.child.value.sum()

    tree = Node(V, Node(2 * V, None))
    assert_trees_close(depth_sum(tree), 3 * np.asarray(V).sum(-1))


@dataclasses.dataclass
class Opaque:  # a field annotation that cannot be resolved at run time
    state: OnlyForTypeCheckers


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class HalfOpaque:
    x: Float[Array, "n"]
    state: OnlyForTypeCheckers


def test_unresolvable_field_blocks_only_a_ranked_parameter():
    @auto_vmap(v=1)
    def f(v, opaque: Opaque):  # `opaque` is not batched: its fields are never needed
        return v.sum()

    assert f(V, Opaque(None)).shape == (4,)
    with pytest.raises(RankSpecError, match=r"`h`.*field `state`.*cannot be resolved"):

        @auto_vmap
        def g(h: HalfOpaque):
            return h.x.sum()


def test_numpy_array_default_and_positional_only_default_are_batched():
    @auto_vmap(x=1, w=1)
    def f(x, w=np.ones(3)):  # noqa: B008 - an array default is the point
        return x @ w

    assert_trees_close(f(V), np.asarray(V).sum(-1))
    batched_w = jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32)

    @auto_vmap(x=1, w=1)
    def g(x, w=batched_w, /):
        return x @ w

    @auto_vmap(x=1, w=1)
    def h(x, w=batched_w):
        return x @ w

    expected = loop(lambda x, w: x @ w, [V[0], batched_w], [1, 1], (4,))
    assert_trees_close(g(V[0]), expected)  # the positional-only default is batched...
    assert_trees_close(h(V[0]), expected)  # ...exactly as the same default of a normal parameter


def test_any_parameter_name_can_be_ranked_including_self():
    def f(self, x):
        return self * x.sum()

    out = auto_vmap(self=0, x=1)(f)(jnp.arange(4.0), V)
    assert_trees_close(out, np.arange(4.0) * np.asarray(V).sum(-1))


@pytest.mark.parametrize("rank, value", [((), ()), ({}, {})])
def test_empty_containers_are_ranks_for_empty_values(rank, value):
    @auto_vmap(p=rank, x=1)
    def f(p, x):
        assert p == value
        return x.sum()

    assert f(value, V).shape == (4,)


def test_function_passed_with_its_ranks_is_refused_with_the_right_spelling():
    with pytest.raises(RankSpecError, match=r"auto_vmap\(dist\).*`auto_vmap\(a=1\)\(fn\)`"):
        auto_vmap(dist, a=1)
    with pytest.raises(RankSpecError, match=r"`auto_vmap\(1, 1\)\(fn\)`"):
        auto_vmap(dist, 1, 1)


def test_async_and_generator_functions_are_refused_at_decoration():
    async def fetch(x):
        return x

    def examples(x):
        yield x

    with pytest.raises(TypeError, match=r"auto_vmap\(fetch\).*async def"):
        auto_vmap(x=1)(fetch)
    with pytest.raises(TypeError, match=r"auto_vmap\(examples\).*generator"):
        auto_vmap(x=1)(examples)
    with pytest.raises(TypeError, match="async def"):
        auto_vmap(x=1)(functools.partial(fetch))


class Model:
    def __init__(self, weight):
        self.weight = weight

    @auto_vmap(1)  # a classic mistake: positional ranks count `self`
    def energy(self, x):
        return x @ self.weight @ x


def test_rank_on_a_value_with_no_arrays_is_refused_and_self_is_explained():
    with pytest.raises(TreeStructureError, match=r"`self`.*holds no array.*count `self`"):
        Model(M).energy(V)

    @auto_vmap(x=1, name=0)
    def f(x, name):
        return x.sum()

    with pytest.raises(TreeStructureError, match=r"`name`.*holds no array.*`str`"):
        f(V, "label")
    assert f(V, None).shape == (4,)  # None values pass through


def test_numpy_leaves_are_jax_arrays_whether_mapped_or_broadcast():
    @auto_vmap
    def quad(v: Float[Array, "n"], m: Float[Array, "n n"]) -> Float[Array, ""]:
        return v @ m @ v

    m = np.asarray(M)  # one NumPy matrix against many vectors: the headline use
    expected = loop(quad.__wrapped__, [V, m], [1, 2], (4,))
    assert_trees_close(quad(V, m), expected)
    assert_trees_close(quad(np.asarray(V), m), expected)
    assert_trees_close(quad(np.asarray(V[0]), m), expected[0])

    @auto_vmap(m=None)  # not batched: reaches the function as given
    def unranked_numpy(v: Float[Array, "n"], m: Float[Array, "n n"]):
        return v @ m @ v

    with pytest.raises(AnnotationCheckError, match=r"NumPy array.*`ArrayLike`.*jnp.asarray"):
        unranked_numpy(V, m)

    @auto_vmap(m=None)
    def array_like(v: Float[Array, "n"], m: Float[ArrayLike, "n n"]):
        return v @ m @ v

    assert_trees_close(array_like(V, m), expected)


class Payload:
    pass


def test_decorating_does_not_keep_the_callers_locals_alive():
    # Under `from __future__ import annotations` the return annotation is a string that names
    # nothing global, so decorating reads the caller's locals, and must let them go.
    refs = []

    def caller():
        big = Payload()
        refs.append(weakref.ref(big))

        @auto_vmap(x=1)
        def g(x) -> NotDefinedAnywhere:  # noqa: F821
            return x

        del big
        gc.collect()
        assert refs[0]() is None  # freed while the decorating function still runs
        return g

    assert caller()(V).shape == V.shape


def test_local_class_annotations_still_resolve():
    @jax.tree_util.register_dataclass
    @dataclasses.dataclass
    class Pair:
        a: Float[Array, "n"]
        b: Float[Array, "n"]

    @auto_vmap
    def gap(p: Pair) -> Float[Array, ""]:
        return dist(p.a, p.b)

    assert plan(gap, Pair(V, jnp.zeros(3))).batch_shape == (4,)
    assert_trees_close(gap(Pair(V, jnp.zeros(3))), np.linalg.norm(np.asarray(V), axis=-1))
