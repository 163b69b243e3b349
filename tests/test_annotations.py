"""Ranks read from jaxtyping annotations, one test per annotation form."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from typing import Annotated, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree, Scalar
from oracle import assert_trees_close, loop

from autovmap import (
    BatchShapeError,
    NothingToBatchWarning,
    RankSpecError,
    TreeStructureError,
    auto_vmap,
)


def ranks_of(fn):
    return {p.name: p.rank for p in fn.__autovmap__.spec.params}


def test_every_dim_kind_counts_one():
    @auto_vmap
    def f(a: Float[Array, "n n"], b: Float[Array, ""], c: Float[Array, "3 _ #k n+1"], d: Scalar):
        return a.sum() + b + c.sum() + d

    assert ranks_of(f) == {"a": 2, "b": 0, "c": 4, "d": 0}


def test_all_decorator_forms_read_annotations():
    def quad(s: Float[Array, ""], v: Float[Array, "n"], m: Float[Array, "n n"]) -> Float[Array, ""]:
        return v @ m @ v + s * v.size

    s, v, m = jnp.ones((2, 1)), jnp.ones((2, 5, 3)), jnp.ones((3, 3))
    expected = loop(quad, [s, v, m], [0, 1, 2], (2, 5))
    for decorated in (auto_vmap(quad), auto_vmap()(quad), auto_vmap(check=False)(quad)):
        assert_trees_close(decorated(s, v, m), expected)


def test_explicit_rank_overrides_the_annotation_parameter_by_parameter():
    @auto_vmap(x=None)
    def f(x: Float[Array, "n"], y: Float[Array, "n"]):
        return x * y

    assert ranks_of(f) == {"x": None, "y": 1}
    out = f(jnp.ones(3), jnp.ones((4, 3)))
    assert out.shape == (4, 3)


def test_pytree_annotation_gives_every_leaf_the_rank():
    @auto_vmap
    def f(p: PyTree[Float[Array, "n"]]) -> Float[Array, ""]:
        return p["a"] @ p["b"]

    assert ranks_of(f) == {"p": 1}
    assert f({"a": jnp.ones((4, 3)), "b": jnp.ones(3)}).shape == (4,)


def test_optional_and_union_annotations():
    @auto_vmap
    def f(
        x: Float[Array, "n"],
        y: Optional[Float[Array, "n"]] = None,
        z: Float[Array, "n"] | None = None,
    ):
        return x.sum() + (0.0 if y is None else y.sum()) + (0.0 if z is None else z.sum())

    assert ranks_of(f) == {"x": 1, "y": 1, "z": 1}
    assert f(jnp.ones((4, 3))).shape == (4,)
    np.testing.assert_allclose(f(jnp.ones((4, 3)), z=jnp.ones((2, 1, 3))), np.full((2, 4), 6.0))


def test_array_or_numpy_and_arraylike_annotations():
    @auto_vmap
    def f(x: Float[Array | np.ndarray, "n"], s: Float[ArrayLike, ""]):
        return s * x.sum()

    assert ranks_of(f) == {"x": 1, "s": 0}
    np.testing.assert_allclose(f(np.ones((2, 3), np.float32), 2.0), np.full(2, 6.0))
    np.testing.assert_allclose(f(np.ones(3, np.float32), jnp.array([1.0, 2.0])), [3.0, 6.0])


def test_plain_and_missing_annotations_are_not_batched():
    marker = object()

    @auto_vmap
    def f(x: Float[Array, "n"], k: int, name: str, fn: callable, other, obj: object = marker):
        assert obj is marker and name == "n" and k == 2
        return fn(x) * k

    assert ranks_of(f) == {"x": 1, "k": None, "name": None, "fn": None, "other": None, "obj": None}
    np.testing.assert_allclose(f(jnp.ones((4, 3)), 2, "n", jnp.sum, None), np.full(4, 6.0))


def test_no_array_annotations_and_no_ranks_is_the_function_itself_with_a_warning():
    def f(x: int, y) -> int:
        return x

    with pytest.warns(NothingToBatchWarning, match=r"auto_vmap\(f\).*nothing is batched"):
        assert auto_vmap(f) is f

    def g(x, y):  # no annotations at all: a silent no-op would look like success
        return x

    with pytest.warns(NothingToBatchWarning, match=r"auto_vmap\(g\).*nothing is batched"):
        assert auto_vmap(g) is g


def test_string_annotations_resolve_with_local_names():
    # This module uses `from __future__ import annotations`: every annotation is a string.
    Vector = Float[Array, "n"]

    @auto_vmap
    def f(v: Vector) -> Float[Array, ""]:
        return v.sum()

    assert ranks_of(f) == {"v": 1}


def test_unresolvable_annotation_says_which_parameter():
    with pytest.raises(RankSpecError, match=r"`v`.*NameError.*auto_vmap\(v=RANK\)"):

        @auto_vmap
        def f(v: NoSuchName):  # noqa: F821
            return v

    @auto_vmap(v=1)  # an explicit rank needs no annotation
    def g(v: NoSuchName):  # noqa: F821
        return v.sum()

    assert g(jnp.ones((2, 3))).shape == (2,)


@pytest.mark.parametrize("dims", ["*b n", "...", "n *rest"])
def test_variadic_annotation_fails_at_decoration_with_the_fix(dims):
    def f(x: Float[Array, dims]):  # noqa: F821
        return x

    f.__annotations__ = {"x": Float[Array, dims]}
    with pytest.raises(
        RankSpecError, match=r"`x`.*variadic.*auto_vmap\(x=RANK\).*auto_vmap\(x=None\)"
    ):
        auto_vmap(f)
    assert auto_vmap(x=1)(f)(jnp.ones((2, 3))).shape == (2, 3)


def test_union_of_different_ranks_needs_an_explicit_rank():
    def f(x: Float[Array, "n"] | Float[Array, "n n"]):
        return x

    with pytest.raises(RankSpecError, match="`x`.*no single rank"):
        auto_vmap(f)


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Params:
    w: Float[Array, "n m"]
    b: Float[Array, "m"]
    name: str = dataclasses.field(default="layer", metadata=dict(static=True))


def layer(p: Params, x: Float[Array, "n"]) -> Float[Array, "m"]:
    return jnp.tanh(x @ p.w + p.b)


def test_dataclass_fields_give_a_pytree_of_ranks():
    step = auto_vmap(layer)
    rng = np.random.default_rng(0)
    w, b, x = rng.normal(size=(4, 1, 3, 2)), rng.normal(size=(5, 2)), rng.normal(size=(4, 5, 3))
    out = step(Params(jnp.asarray(w), jnp.asarray(b)), jnp.asarray(x))
    expected = np.stack(
        [np.stack([layer(Params(w[i, 0], b[j]), x[i, j]) for j in range(5)]) for i in range(4)]
    )
    assert_trees_close(out, expected, rtol=1e-4)


def test_dataclass_that_is_not_a_pytree_is_a_clear_error():
    @dataclasses.dataclass
    class Plain:
        w: Float[Array, "n"]

    @auto_vmap
    def f(p: Plain) -> Float[Array, ""]:
        return p.w.sum()

    with pytest.raises(TreeStructureError, match="register_dataclass"):
        f(Plain(jnp.ones((2, 3))))


def test_equinox_module_fields_give_a_pytree_of_ranks():
    eqx = pytest.importorskip("equinox")

    class Linear(eqx.Module):
        w: Float[Array, "n m"]
        b: Float[Array, "m"]
        scale: float = 1.0

        def __call__(self, x: Float[Array, "n"]) -> Float[Array, "m"]:
            return self.scale * (x @ self.w + self.b)

    @auto_vmap
    def apply(model: Linear, x: Float[Array, "n"]) -> Float[Array, "m"]:
        return model(x)

    model = Linear(jnp.ones((6, 3, 2)), jnp.zeros(2))  # 6 models sharing a bias
    out = apply(model, jnp.ones((4, 1, 3)))
    assert out.shape == (4, 6, 2)
    np.testing.assert_allclose(out, np.full((4, 6, 2), 3.0))


# Reading through wrappers: `Annotated`, type aliases, single-field pytrees, dtype unions.


def _dot(a, b):
    return jnp.dot(a, b)


@pytest.mark.parametrize("check", [True, False])
def test_annotated_is_read_as_what_it_wraps(check):
    def dot(a: Annotated[Float[Array, "n"], "meta"], b: Annotated[Float[Array, "n"], 1]):
        return jnp.dot(a, b)

    batched = auto_vmap(check=check)(dot)
    assert ranks_of(batched) == {"a": 1, "b": 1}
    a, b = np.arange(12.0).reshape(4, 3), np.ones((4, 3))
    out = batched(a, b)
    assert out.shape == (4,)  # not (4, 4): the rows are dotted pairwise
    assert_trees_close(out, loop(_dot, [a, b], [1, 1], (4,)))


def test_type_alias_is_read_as_its_value():
    typing_extensions = pytest.importorskip("typing_extensions")
    Vec = typing_extensions.TypeAliasType("Vec", Float[Array, "n"])

    def dot(a: Vec, b: Vec):
        return jnp.dot(a, b)

    batched = auto_vmap(check=False)(dot)
    a, b = np.arange(12.0).reshape(4, 1, 3), np.ones((5, 3))
    assert_trees_close(batched(a, b), loop(_dot, [a, b], [1, 1], (4, 5)))
    with pytest.raises(Exception, match="Vec|Float"):  # checked through the alias too
        auto_vmap(dot)(np.ones((4, 3)), np.ones((4, 3), dtype=np.int32))


@pytest.mark.skipif(sys.version_info < (3, 12), reason="`type X = ...` is Python 3.12+")
def test_pep_695_type_alias_is_read_as_its_value():
    code = textwrap.dedent(
        """
        import jax.numpy as jnp, numpy as np
        from jaxtyping import Array, Float
        from autovmap import auto_vmap
        type Vec = Float[Array, "n"]

        @auto_vmap(check=False)
        def dot(a: Vec, b: Vec):
            return jnp.dot(a, b)

        a = np.arange(12.0).reshape(4, 3)
        out = dot(a, np.ones((4, 3)))
        assert out.shape == (4,), out.shape
        np.testing.assert_allclose(out, a.sum(-1))
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="`type X = ...` is Python 3.12+")
def test_an_alias_that_refers_to_itself_is_refused_at_decoration():
    """Ranked or not (`k=None`), a parameter annotated `type A = A` is refused when decorating,
    naming it: following the alias to check against it never ended."""
    code = textwrap.dedent(
        """
        import pytest
        from jaxtyping import Array, Float
        from autovmap import RankSpecError, auto_vmap
        type A = A

        def f(x: Float[Array, "n"], k: A):
            return x

        for decorate in (auto_vmap, auto_vmap(k=None), auto_vmap(k=0)):
            with pytest.raises(RankSpecError, match="`k` is annotated `A`"):
                decorate(f)
        assert auto_vmap(k=None, check=False)(f) is not f
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="`type X = ...` is Python 3.12+")
def test_a_recursive_alias_is_refused_unranked_and_checked_when_ranked():
    """`type Tree = dict[str, Tree | Float[Array, "n"]]` refers to itself through a container:
    reading its rank never ended (a `RecursionError` from inside the library). It now gives no
    rank (refused, naming the parameter); ranked explicitly or left unbatched, it is checked."""
    code = textwrap.dedent(
        """
        import jax.numpy as jnp, numpy as np, pytest
        from jaxtyping import Array, Float
        from autovmap import AnnotationCheckError, RankSpecError, auto_vmap
        type Tree = dict[str, Tree | Float[Array, "n"]]
        type Nested = list[Nested]

        def f(x: Float[Array, "n"], k: Tree):
            return x + k["a"]

        def g(x: Float[Array, "n"], k: Nested):
            return x

        for fn in (f, g):
            with pytest.raises(RankSpecError, match="`k` is annotated .*refers to itself"):
                auto_vmap(fn)
        x = np.arange(6.0).reshape(2, 3)
        unbatched = auto_vmap(k=None)(f)
        np.testing.assert_allclose(unbatched(x, {"a": jnp.ones(3)}), x + 1)
        with pytest.raises(AnnotationCheckError, match="argument `k`"):
            unbatched(x, {"a": jnp.ones(4)})
        ranked = auto_vmap(k=1)(f)
        out = ranked(x, {"a": np.arange(15.0).reshape(5, 1, 3)})
        expected = x + np.arange(15.0).reshape(5, 1, 3)
        np.testing.assert_allclose(out, expected)
        with pytest.raises(AnnotationCheckError, match="argument `k`"):
            ranked(x, {"a": np.ones((5, 1, 4))})
        assert auto_vmap(k=None)(g)(x, [[]]).shape == (2, 3)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


class _Weights(eqx.Module):
    w: Float[Array, "n"]


@dataclasses.dataclass
class _Registered:
    w: Float[Array, "n"]


jax.tree_util.register_dataclass(_Registered, data_fields=["w"], meta_fields=[])


@pytest.mark.parametrize("cls", [_Weights, _Registered])
def test_a_registered_class_with_one_array_leaf_is_batched(cls):
    @auto_vmap
    def norm(p: cls) -> Float[Array, ""]:  # type: ignore[valid-type]
        return jnp.sum(p.w**2)

    w = np.arange(12.0).reshape(4, 3)
    assert_trees_close(norm(cls(w)), loop(lambda w: jnp.sum(w**2), [w], [1], (4,)))


def test_prng_key_array_takes_its_rank_from_the_dtype_of_each_call():
    @auto_vmap
    def draw(key: PRNGKeyArray, scale: Float[Array, ""]) -> Float[Array, ""]:
        return scale * jax.random.normal(key)

    scale = np.array([1.0, 2.0, 3.0])
    for keys in (
        jax.random.split(jax.random.key(0), 4),
        jax.random.split(jax.random.PRNGKey(0), 4),
    ):
        out = draw(keys[:, None], scale)  # typed keys: rank 0; raw uint32[2] keys: rank 1
        expected = np.array(
            [[float(s * jax.random.normal(keys[i])) for s in scale] for i in range(4)]
        )
        assert out.shape == (4, 3)
        np.testing.assert_allclose(out, expected, rtol=1e-6)
    with pytest.raises(BatchShapeError, match=r"argument `key` has dtype float32.*rank 0 for"):
        auto_vmap(check=False)(draw.__wrapped__)(np.ones((4, 2), np.float32), scale[0])


def test_a_union_of_ranks_that_no_dtype_decides_is_refused_when_decorating():
    with pytest.raises(
        RankSpecError, match=r"different ranks \[1, 2\], and the dtype \w+ fits members of both"
    ):

        @auto_vmap
        def f(x: Float[Array, "n"] | Float[Array, "n n"]):
            return x

    with pytest.raises(RankSpecError, match="different ranks"):

        @auto_vmap
        def g(x: Float[Array, "n"] | Int[Array, "n n"] | Float[Array, ""]):
            return x


def test_a_function_with_nothing_to_batch_warns_and_is_returned_unchanged():
    fn = lambda x: jnp.sum(x**2)  # noqa: E731
    with pytest.warns(NothingToBatchWarning, match="nothing is batched"):
        assert auto_vmap()(fn) is fn
    with pytest.warns(NothingToBatchWarning):

        @auto_vmap(x=None)
        def h(x: Float[Array, "n"]):
            return x


def test_real_code_through_annotated_aliases_and_a_key_union():
    # jax.scipy's logpdf, annotated through `Annotated` and an alias, with a key per example.
    typing_extensions = pytest.importorskip("typing_extensions")
    Matrix = typing_extensions.TypeAliasType("Matrix", Float[Array, "n n"])

    @auto_vmap(chunk_size=3)
    def noisy_logpdf(
        key: PRNGKeyArray,
        x: Annotated[Float[Array, "n"], "a point"],
        cov: Matrix,
    ) -> Float[Array, ""]:
        noise = 1e-3 * jax.random.normal(key, x.shape)
        return jax.scipy.stats.multivariate_normal.logpdf(x + noise, jnp.zeros_like(x), cov)

    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 3, 3))
    covs = jnp.asarray(a @ np.swapaxes(a, -1, -2) + 3 * np.eye(3), jnp.float32)
    xs = jnp.asarray(rng.normal(size=(4, 1, 3)), jnp.float32)
    keys = jax.random.split(jax.random.key(1), 4)[:, None]
    out = noisy_logpdf(keys, xs, covs)
    assert out.shape == (4, 5)
    expected = np.array(
        [
            [noisy_logpdf.__wrapped__(keys[i, 0], xs[i, 0], covs[j]) for j in range(5)]
            for i in range(4)
        ]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
