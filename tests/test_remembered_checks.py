"""Check outcomes remembered per call signature: a remembered call behaves exactly like a
checked one, the key holds everything that decides the check, and nothing a user owns."""

import gc
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import Array, Float, Float32

from autovmap import AnnotationCheckError, auto_vmap
from autovmap._bind import bind_call
from autovmap._remember import call_key

# `jax.enable_x64` is newer than the jax floor (0.5.3), which has `jax.experimental.enable_x64`.
enable_x64 = jax.enable_x64 if hasattr(jax, "enable_x64") else jax.experimental.enable_x64


def _outcome(f, *args):
    """What a call gives: its result, or the class and message of the error it raises."""
    try:
        return "returned", np.asarray(f(*args)).tolist()
    except AnnotationCheckError as e:
        return "raised", type(e).__name__, str(e)


def _remembered(f):
    return len(f.__autovmap__.passed._entries)


def assert_hit_equals_miss(make, warm_args, args):
    """The same call on a fresh decoration (nothing remembered) and on one that has passed
    `warm_args` before gives the same outcome."""
    miss = _outcome(make(), *args)
    warm = make()
    warm(*warm_args)
    assert _remembered(warm) == 1  # the warm-up passed, and was remembered
    hit = _outcome(warm, *args)
    assert hit == miss
    return miss


def test_memo_scope_is_active_on_remembered_calls():
    # `isinstance` inside the function sees the dims the call's annotations bound, on every
    # call, as under `jax.jit` (where the function runs once, checked).
    def make():
        @auto_vmap
        def same_n(x: Float[Array, "n"], y: Float[Array, "m"]) -> Float[Array, ""]:
            return jnp.asarray(float(isinstance(y, Float[Array, "n"])))

        return same_n

    f = make()
    x = jnp.ones((2, 3))
    for y, expected in [(jnp.ones(4), 0.0), (jnp.ones(3), 1.0)]:
        answers = [f(x, y).tolist() for _ in range(3)]  # the first checked, then remembered
        assert answers == [[expected] * 2] * 3
        assert jax.jit(make())(x, y).tolist() == [expected] * 2
        assert_hit_equals_miss(make, (x, y), (x, y))


def test_dims_bound_inside_the_function_do_not_leak_between_calls():
    @auto_vmap
    def binds_k(x: Float[Array, "n"]) -> Float[Array, ""]:
        first = isinstance(x[:2], Float[Array, "k"])  # binds k=2 in this call's scope
        return jnp.asarray(float(first and isinstance(x[:2], Float[Array, "k"])))

    assert [binds_k(jnp.ones((2, 3))).tolist() for _ in range(3)] == [[1.0, 1.0]] * 3


def test_x64_setting_is_part_of_the_key():
    # Without x64, a float64 NumPy argument reaches the function as float32 and passes
    # `Float32`; under x64 it stays float64, and a remembered pass must not hide that.
    def make():
        @auto_vmap
        def total(x: Float32[Array, "n"]) -> Float32[Array, ""]:
            return x.sum()

        return total

    x = np.ones((2, 3))
    f = make()
    assert f(x).dtype == jnp.float32
    with enable_x64(True):
        with pytest.raises(AnnotationCheckError, match="argument `x`.*float64"):
            f(x)
        with pytest.raises(AnnotationCheckError, match="argument `x`.*float64"):
            make()(x)  # the same as a fresh decoration
    assert f(x).dtype == jnp.float32  # and the remembered pass still holds


def test_weak_type_is_part_of_the_key():
    assert call_key((jnp.asarray(1.0),), {}) != call_key((jnp.asarray(1.0, jnp.float32),), {})


def test_dict_key_types_are_part_of_the_key():
    def make():
        @auto_vmap(d=None, x=1)
        def f(x, d: dict[int, Float[Array, ""]]) -> Float[Array, ""]:
            return x.sum()

        return f

    a, x = jnp.ones(()), jnp.ones((2, 3))
    outcome = assert_hit_equals_miss(make, (x, {1: a}), (x, {1.0: a}))
    assert outcome[0] == "raised" and "argument `d`" in outcome[2] and "key 1.0" in outcome[2]


@jax.tree_util.register_pytree_node_class
class Tagged:
    """A pytree node whose metadata is a NumPy array (its `==` is elementwise)."""

    def __init__(self, x, table):
        self.x, self.table = x, table

    def tree_flatten(self):
        return (self.x,), self.table

    @classmethod
    def tree_unflatten(cls, table, children):
        return cls(children[0], table)


def test_numpy_array_in_pytree_metadata_does_not_break_the_lookup():
    def make():
        @auto_vmap
        def f(t: Tagged, y: Float[Array, "n"]) -> Float[Array, ""]:
            return (t.x * y).sum() + t.table.sum()

        return f

    y = jnp.ones((4, 3))
    t = Tagged(jnp.arange(3.0), np.arange(3))
    assert assert_hit_equals_miss(make, (t, y), (t, y)) == ("returned", [6.0] * 4)
    # Small metadata is remembered by value (a copy), so an equal table hits ...
    f = make()
    f(t, y)
    f(Tagged(jnp.arange(3.0), np.arange(3)), y)
    assert _remembered(f) == 1
    f(Tagged(jnp.arange(3.0), np.arange(1, 4)), y)  # ... and a different one does not
    assert _remembered(f) == 2
    # Large metadata has no key: checked every time, never held.
    assert call_key((Tagged(jnp.ones(3), np.zeros(1000)),), {}) is None


def test_large_strings_are_not_remembered_by_value():
    @auto_vmap(x=1)
    def f(x, label: str) -> Float[Array, ""]:
        return x.sum()

    x = jnp.ones((2, 3))
    f(x, "small")
    assert _remembered(f) == 1
    for i in range(5):
        f(x, str(i) * 200_000)
    assert _remembered(f) == 1  # checked every time, held nowhere
    assert call_key(("a" * 256,), {}) is not None and call_key(("a" * 257,), {}) is None
    assert call_key((b"a" * 257,), {}) is None


def test_a_partial_argument_does_not_keep_its_function_alive():
    @auto_vmap(x=1)
    def apply(x, p: jax.tree_util.Partial) -> Float[Array, ""]:
        return p(x)

    def make_function():
        def total(x):
            return x.sum()

        return total

    function = make_function()
    alive = weakref.ref(function)
    p = jax.tree_util.Partial(function)
    x = jnp.ones((2, 3))
    assert apply(x, p).tolist() == [3.0, 3.0]
    assert apply(x, p).tolist() == [3.0, 3.0]
    assert _remembered(apply) == 1
    del function, p
    gc.collect()
    assert alive() is None


def test_remembered_pass_of_a_partial_is_by_identity():
    # Two different functions never share an outcome, even at the same address later on.
    @auto_vmap(x=1)
    def apply(x, p: jax.tree_util.Partial) -> Float[Array, ""]:
        return p(x)

    x = jnp.ones((2, 3))
    assert apply(x, jax.tree_util.Partial(lambda v: v.sum())).tolist() == [3.0, 3.0]
    with pytest.raises(AnnotationCheckError, match="the return value"):
        apply(x, jax.tree_util.Partial(lambda v: v))  # a vector, not the annotated scalar


@pytest.mark.parametrize(
    "value",
    [
        3,
        2.5,
        "text",
        None,
        (1, 2.0),
        {"a": 1},
        np.float32(1.5),
        jnp.ones(3),
        np.ones(3),
        jax.nn.relu,
        [jnp.ones(2), {"b": np.zeros(1)}],
    ],
)
def test_key_of_small_values_is_hashable_and_holds_no_array(value):
    key = call_key((value,), {})
    assert key is not None
    hash(key)

    def holds_array(part):
        if isinstance(part, (jax.Array, np.ndarray)):
            return True
        return isinstance(part, tuple) and any(map(holds_array, part))

    assert not holds_array(key)


def test_arbitrary_objects_have_no_key():
    class Config:
        size = 3

    assert call_key((Config(),), {}) is None
    assert call_key((), {"c": Config()}) is None


def test_real_code_gives_the_loop_answer_checked_and_remembered():
    import equinox as eqx  # noqa: PLC0415
    from oracle import assert_trees_close, loop  # noqa: PLC0415

    @auto_vmap
    def logpdf(
        x: Float[Array, "d"], mean: Float[Array, "d"], cov: Float[Array, "d d"]
    ) -> Float[Array, ""]:
        return jax.scipy.stats.multivariate_normal.logpdf(x, mean, cov)

    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 1, 3)).astype(np.float32)
    mean = rng.normal(size=(4, 3)).astype(np.float32)
    cov = np.eye(3, dtype=np.float32) * 2
    expected = loop(jax.scipy.stats.multivariate_normal.logpdf, [x, mean, cov], [1, 1, 2], (5, 4))
    for _ in range(3):  # checked, then remembered
        assert_trees_close(logpdf(x, mean, cov), expected)
    with pytest.raises(AnnotationCheckError, match="argument `cov`"):
        logpdf(x, mean, np.eye(2, dtype=np.float32))

    mlp = eqx.nn.MLP(3, 2, 8, 2, key=jax.random.key(0))

    @auto_vmap
    def predict(model: eqx.nn.MLP, x: Float[Array, "n"]) -> Float[Array, "2"]:
        return model(x)

    xs = rng.normal(size=(2, 5, 3)).astype(np.float32)
    expected = loop(mlp, [xs], [1], (2, 5))
    for _ in range(3):
        assert_trees_close(predict(mlp, xs), expected)
    assert _remembered(predict) <= 1  # once at most (some equinox versions give no key)


def test_without_jaxtyping_storage_functions_checks_run_every_time(monkeypatch):
    # Another jaxtyping layout: the public `jaxtyped("context")` opens the scopes, and since the
    # bindings cannot be copied, no outcome is remembered (never a remembered call without them).
    import autovmap._remember as remember  # noqa: PLC0415

    for name in ("_get_memo", "_push_memo", "_pop_memo"):
        monkeypatch.setattr(remember, name, None)

    @auto_vmap
    def add(a: Float[Array, "n"], b: Float[Array, "n"]) -> Float[Array, "n"]:
        return a + b

    x = jnp.ones((2, 3))
    assert add(x, x).tolist() == [[2.0] * 3] * 2
    assert _remembered(add) == 0
    with pytest.raises(AnnotationCheckError, match="argument `b`"):
        add(x, jnp.ones((2, 1)))


def test_a_remembered_call_in_a_new_thread_has_its_scope():
    import threading  # noqa: PLC0415

    @auto_vmap
    def same_n(x: Float[Array, "n"], y: Float[Array, "m"]) -> Float[Array, ""]:
        return jnp.asarray(float(isinstance(y, Float[Array, "n"])))

    x, y = jnp.ones((2, 3)), jnp.ones(4)
    assert same_n(x, y).tolist() == [0.0, 0.0]  # checked here, remembered for every thread
    answers = []
    thread = threading.Thread(target=lambda: answers.append(same_n(x, y).tolist()))
    thread.start()
    thread.join()
    assert answers == [[0.0, 0.0]]


def test_a_remembered_call_runs_as_given_exactly_where_its_first_call_did():
    """A remembered signature also remembers whether the call ran as given (every ranked
    argument a JAX array of exactly its rank): the key holds all that decides it, so a hit
    runs as the miss did. A NumPy array or a batch dim is never run as given; a tracer of its
    rank is where `bind_call` counts it a JAX array (jax 0.5.3 does, 0.10 does not)."""

    def make():
        @auto_vmap
        def scale(x: Float[Array, "n"], k: int) -> Float[Array, "n"]:
            return x * k if isinstance(x, jax.Array) else np.zeros(1)  # as given, or converted

        return scale

    f, traced_f = make(), make()
    calls = [
        ((jnp.ones(3), 2), True),
        ((jnp.ones((2, 3)), 2), False),  # a batch dim
        ((np.ones(3), 2), False),  # NumPy: converted, so not as given
        ((jnp.ones(3), 3), True),
    ]
    for args, _ in calls:
        miss = make()(*args)
        for _ in range(2):  # the first checks and remembers, the second is a hit
            hit = f(*args)
            assert type(hit) is type(miss) and hit.shape == miss.shape
            np.testing.assert_array_equal(hit, miss)
        for _ in range(2):
            traced = jax.jit(lambda x, k=args[1]: traced_f(x, k))(args[0])
            np.testing.assert_array_equal(traced, miss)
    flags = [as_given for _, as_given in f.__autovmap__.passed._entries.values()]
    assert flags == [as_given for _, as_given in calls]
    traced_flags = [as_given for _, as_given in traced_f.__autovmap__.passed._entries.values()]
    decided = []  # what `_call` decides for a tracer of exactly its rank, on this jax
    jax.jit(lambda x: decided.append(bind_call(traced_f.__autovmap__.spec, (x, 2), {}) is None))(
        jnp.ones(3)
    )
    # (3,) with k=2, (2, 3) with k=2; the NumPy (3,) traces as the first; (3,) with k=3
    assert traced_flags == [decided[0], False, decided[0]]
