"""Eager merging of vmap levels and chunked evaluation give the same results as nested vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from oracle import assert_trees_close, loop

from autovmap import auto_vmap
from autovmap._plan import make_plan


def quad(s, v, m):
    return v @ m @ v + s * v.size


def test_merge_levels_joins_runs_with_the_same_mapped_leaves():
    # v: (2, 3, 4, 5, 7, 6) batch, m: (6,) batch -> levels (0, None) five times, then (0, 0)
    plan = make_plan(((2, 3, 4, 5, 7, 6), (6,)))
    assert plan.levels == ((0, None),) * 5 + ((0, 0),)
    merged = plan.merged
    assert merged.levels == ((0, None), (0, 0))
    assert merged.mapped_shape == (840, 6)
    assert merged.merged_batch_shapes == ((840, 6), (6,))


def test_levels_merge_only_where_it_pays():
    """Each eager reshape compiles once per new shape: saving one or two levels is not worth
    two compilations, unless the leaves are many (one jitted reshape for them all)."""
    assert make_plan(((4, 5, 6), (6,))).merged is None  # saves 1
    assert make_plan(((4, 5, 6),)).merged is None  # saves 2
    assert make_plan(((3, 4, 5, 6),)).merged is None  # saves 3
    assert make_plan(((2, 3, 4, 5, 6),)).merged.levels == ((0,),)  # saves 4
    many = make_plan(((4, 5),) * 5)  # saves 1, five leaves
    assert many.merged.levels == ((0,) * 5,) and many.merged.mapped_shape == (20,)
    assert (
        make_plan(((3, 1, 2), (1, 4, 1))).merged is None
    )  # no two adjacent levels map the same leaves
    assert make_plan(((3, 1, 2), (1, 4, 1))).levels == ((0, None), (None, 0), (0, None))


@given(data=st.data())
def test_merged_eager_results_equal_nested_results(data):
    batch = data.draw(
        mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=6, min_side=0, max_side=3)
    )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    cores = [(), (2,), (2, 2)]
    args = [
        jnp.asarray(rng.normal(size=b + c), jnp.float32) for b, c in zip(batch.input_shapes, cores)
    ]
    batched = auto_vmap(0, 1, 2)(quad)
    eager = batched(*args)  # merged where possible
    nested = jax.jit(batched)(*args)  # traced: never merged
    assert_trees_close(eager, nested)
    assert_trees_close(eager, loop(quad, args, [0, 1, 2], batch.result_shape))


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 100])
@given(data=st.data())
def test_chunked_results_equal_the_loop(chunk_size, data):
    batch = data.draw(
        mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=4, min_side=0, max_side=3)
    )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    cores = [(), (2,), (2, 2)]
    args = [rng.normal(size=b + c).astype(np.float32) for b, c in zip(batch.input_shapes, cores)]
    batched = auto_vmap(0, 1, 2, chunk_size=chunk_size)(quad)
    expected = loop(quad, args, [0, 1, 2], batch.result_shape)
    assert_trees_close(batched(*args), expected)
    assert_trees_close(jax.jit(batched)(*args), expected)


def test_chunks_bound_compiled_memory():
    def f(v):
        return ((v[:, None] * v[None, :]) @ v).sum()

    v = jax.ShapeDtypeStruct((20000, 256), jnp.float32)

    def temp_bytes(fn):
        return jax.jit(fn).lower(v).compile().memory_analysis().temp_size_in_bytes

    whole = temp_bytes(auto_vmap(v=1)(f))
    chunked = temp_bytes(auto_vmap(v=1, chunk_size=500)(f))
    assert whole > 4 * 2**30  # 20000 outer products of 256 x 256 float32 at once
    assert chunked < 256 * 2**20, f"{chunked / 2**20:.0f} MiB"


def test_chunks_with_pytree_outputs_and_partial_leaves():
    @auto_vmap(v=1, w=1, chunk_size=4)
    def f(v, w):
        return {"dot": v @ w, "both": (v, w)}

    v, w = jnp.arange(30.0).reshape(5, 2, 3), jnp.arange(6.0).reshape(2, 3)
    out = f(v, w)
    assert_trees_close(out, loop(f.__wrapped__, [v, w], [1, 1], (5, 2)))


def test_many_leaves_merge_in_one_reshape_and_match_the_loop():
    # Past a few leaves, merged levels reshape every input (and output) in one jitted call.
    rng = np.random.default_rng(3)
    tree = {f"x{i}": jnp.asarray(rng.normal(size=(3, 4, 2)), jnp.float32) for i in range(6)}
    tree["shared"] = jnp.asarray(rng.normal(size=(2,)), jnp.float32)  # no batch dims

    def per_example(t):
        return {k: v * t["shared"] for k, v in t.items() if k != "shared"}

    batched = auto_vmap(t=1)(per_example)
    out = batched(tree)
    expected = {
        k: np.asarray(v) * np.asarray(tree["shared"]) for k, v in tree.items() if k != "shared"
    }
    assert_trees_close(out, expected)
    assert_trees_close(jax.jit(batched)(tree), expected)


@pytest.mark.parametrize("jit", [False, True])
def test_chunks_keep_weak_types(jit):
    """A Python scalar makes a weakly typed result, which adds to a bfloat16 array as
    bfloat16; chunked, the loop's buffers used to make it float32."""

    def double(x, s):
        return s * 2

    x = jnp.ones((5, 3))
    for chunk_size in (None, 2):
        f = auto_vmap(x=1, s=0, chunk_size=chunk_size)(double)
        f = jax.jit(f) if jit else f
        out = f(x, 2.0)
        assert jax.typeof(out).weak_type
        assert (out + jnp.ones(5, jnp.bfloat16)).dtype == jnp.bfloat16
        assert_trees_close(out, loop(double, [x, 2.0], [1, 0], (5,)))


@pytest.mark.parametrize("chunk_size", [1, 3, 4])
def test_chunks_over_typed_prng_keys_equal_the_loop(chunk_size):
    keys = jax.random.split(jax.random.key(0), 12).reshape(3, 4)

    def split_and_draw(k):
        a, b = jax.random.split(k)
        return {"key": a, "draw": jax.random.normal(b, (2,))}

    f = auto_vmap(k=0, chunk_size=chunk_size)(split_and_draw)
    for out in (f(keys), jax.jit(f)(keys)):
        assert out["key"].dtype == keys.dtype and out["key"].shape == (3, 4)
        expected = [split_and_draw(keys[i]) for i in np.ndindex(3, 4)]
        got_keys = jax.random.key_data(out["key"]).reshape(12, -1)
        for j, e in enumerate(expected):
            np.testing.assert_array_equal(got_keys[j], jax.random.key_data(e["key"]))
            np.testing.assert_array_equal(out["draw"].reshape(12, 2)[j], e["draw"])


def test_what_chunked_results_are_exactly():
    """Pins the promise of the docs (`chunk_size` in `auto_vmap`'s docstring): a chunked call
    gives what `jax.jit(jax.vmap(f))` gives on each chunk. Integer and PRNG results equal the
    unchunked ones bit for bit; floating-point reductions may differ in the last bits, since
    XLA may sum a chunk in another order than the whole batch (as `jax.jit(f)` may differ
    from `f`), and agree to rounding."""
    rng = np.random.default_rng(0)
    v = jnp.asarray(rng.normal(size=(301, 3)), jnp.float32)
    m = jnp.asarray(rng.normal(size=(3, 3)), jnp.float32)
    chunked = auto_vmap(0, 1, 2, chunk_size=7)(quad)(0.5, v, m)
    per_chunk = jax.jit(jax.vmap(quad, in_axes=(None, 0, None)))
    by_hand = jnp.concatenate([per_chunk(0.5, v[i : i + 7], m) for i in range(0, 301, 7)])
    np.testing.assert_array_equal(chunked, by_hand)
    unchunked = auto_vmap(0, 1, 2)(quad)(0.5, v, m)
    np.testing.assert_allclose(chunked, unchunked, rtol=1e-6, atol=1e-6)  # terms are O(1)
    ints = jnp.arange(301 * 3).reshape(301, 3)
    g = lambda x: x @ x + 3 * x.sum()  # noqa: E731
    np.testing.assert_array_equal(auto_vmap(x=1, chunk_size=7)(g)(ints), auto_vmap(x=1)(g)(ints))


_COMPILES = [0]


def _count_compiles(event, *args, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compiles)


def _compiles(fn, x):
    _COMPILES[0] = 0
    jax.block_until_ready(fn(x))
    return _COMPILES[0]


@pytest.mark.parametrize("k", [2, 3, 4])
def test_a_new_batch_shape_compiles_what_hand_written_vmap_compiles(k):
    """Eagerly, each new shape compiles each op once; a merged reshape would add two more
    executables per shape (time and resident memory), more than three saved levels are worth."""
    hand = jnp.sin
    for _ in range(k):
        hand = jax.vmap(hand)
    ours = auto_vmap(x=1)(jnp.sin)
    by_hand = _compiles(hand, jnp.asarray(np.ones((979,) + (2,) * (k - 1) + (3,))))
    assert by_hand >= 1  # the listener hears compilations
    assert _compiles(ours, jnp.asarray(np.ones((977,) + (2,) * (k - 1) + (3,)))) == by_hand


def test_the_route_of_a_call_does_not_depend_on_what_was_cached(monkeypatch):
    """The plain routes are cached on their plan: a second call (plan and route cached) runs
    exactly as the first, and as after the caches were emptied."""
    from autovmap import _plan, plan

    f = auto_vmap(0, 1, 2)(quad)
    args = (0.5, jnp.ones((2, 3, 2, 2, 2, 2)), jnp.ones((2, 2)))  # merged
    first = plan(f, *args).route
    out = f(*args)
    assert plan(f, *args).route is first  # the cached value itself
    monkeypatch.setattr(_plan, "PLANS", _plan.BoundedCache(4096))
    assert plan(f, *args).route == first
    np.testing.assert_array_equal(f(*args), out)


@pytest.mark.parametrize(
    "options", [{}, {"chunk_size": 4}, {"chunk_size": 100}, {"chunk_size": 1}], ids=str
)
def test_real_functions_on_every_unnamed_route_equal_the_loop(options):
    """jax.scipy and jax.nn per-example functions, broadcasting batch shapes, each route
    (nested, merged, one chunk, chunk loops), eagerly and under `jax.jit`."""
    rng = np.random.default_rng(7)
    a = jnp.asarray(rng.normal(size=(3, 1, 4, 4)) + 4 * np.eye(4), jnp.float32)
    b = jnp.asarray(rng.normal(size=(1, 5, 4)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(2, 3, 2, 1, 2, 2, 6)), jnp.float32)  # 5 mapped: merged

    def solve_and_score(a, b):
        y = jax.scipy.linalg.solve(a, b)
        return {"y": y, "score": jax.nn.logsumexp(y) + jnp.linalg.slogdet(a)[1]}

    def softmax_entropy(x):
        p = jax.nn.softmax(x)
        return -jnp.sum(p * jnp.log(p))

    f = auto_vmap(a=2, b=1, **options)(solve_and_score)
    g = auto_vmap(x=1, **options)(softmax_entropy)
    expected_f = loop(solve_and_score, [a, b], [2, 1], (3, 5))
    expected_g = loop(softmax_entropy, [x], [1], (2, 3, 2, 1, 2, 2))
    for run in (lambda h, *args: h(*args), lambda h, *args: jax.jit(h)(*args)):
        assert_trees_close(run(f, a, b), expected_f, rtol=1e-4, atol=1e-4)
        assert_trees_close(run(g, x), expected_g)


def test_a_named_axis_over_broadcast_batch_dims_equals_the_loop():
    """The `named merged` route: a collective over every example of a (3, 5) batch built by
    broadcasting, against the loop's mean over the whole batch."""
    rng = np.random.default_rng(8)
    a = jnp.asarray(rng.normal(size=(3, 1, 2)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)

    def centred_dot(a, b):
        d = a @ b
        return d - jax.lax.pmean(d, "batch")

    f = auto_vmap(a=1, b=1, axis_name="batch")(centred_dot)
    dots = loop(lambda a, b: a @ b, [a, b], [1, 1], (3, 5))
    assert_trees_close(f(a, b), dots - dots.mean())
    assert_trees_close(jax.jit(f)(a, b), dots - dots.mean())
