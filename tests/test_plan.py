"""`autovmap.plan` describes a call without running it."""

import jax
import jax.numpy as jnp
import pytest
from jaxtyping import Array, Float

from autovmap import BroadcastError, LeafPlan, auto_vmap, plan


@auto_vmap(s=0, v=1, m=2)
def quad(s, v, m):
    raise AssertionError("plan must not call the function")


def test_plan_reports_batch_shape_levels_and_in_axes():
    p = plan(quad, 2.0, jnp.ones((4, 6, 7, 3)), jnp.ones((7, 3, 3)))
    assert p.batch_shape == (4, 6, 7)
    assert p.levels == 3 and p.eager_levels == 3  # merging one level away does not pay
    assert p.leaves == (
        LeafPlan("s", 0, "explicit", (), (), (None, None, None)),
        LeafPlan("v", 1, "explicit", (4, 6, 7, 3), (4, 6, 7), (0, 0, 0)),
        LeafPlan("m", 2, "explicit", (7, 3, 3), (7,), (None, None, 0)),
    )
    text = str(p).splitlines()
    assert "batch shape (4, 6, 7)" in text[0]
    assert text[2].split() == ["s", "0", "explicit", "()", "()", "-", "-", "-"]
    assert text[4].split() == ["m", "2", "explicit", "(7,", "3,", "3)", "(7,)", "-", "-", "0"]


def test_size_one_dims_are_broadcast_not_levels():
    p = plan(quad, 2.0, jnp.ones((7, 1, 3)), jnp.ones((1, 5, 3, 3)))
    assert p.batch_shape == (7, 5) and p.levels == 2
    assert [leaf.in_axes for leaf in p.leaves] == [(None, None), (0, None), (None, 0)]


def test_annotation_sources_paths_and_chunks():
    @auto_vmap(chunk_size=8)
    def f(p: dict, x: Float[Array, "n"]) -> Float[Array, ""]:
        return x.sum()

    g = auto_vmap(p={"w": 2})(f.__wrapped__)
    p = plan(g, {"w": jnp.ones((5, 2, 2))}, jnp.ones(2))
    assert [(leaf.argument, leaf.source) for leaf in p.leaves] == [
        ("p['w']", "explicit"),
        ("x", "annotation"),
    ]
    assert "chunks of at most 8" in str(plan(f, {}, jnp.ones((9, 2))))


def test_methods_and_errors():
    class Model:
        @auto_vmap(None, 1)
        def apply(self, v):
            return v.sum()

    assert plan(Model().apply, jnp.ones((3, 2))).batch_shape == (3,)
    with pytest.raises(BroadcastError):
        plan(quad, 2.0, jnp.ones((7, 4, 3)), jnp.ones((5, 3, 3)))
    with pytest.raises(TypeError, match="auto_vmap"):
        plan(lambda x: x, 1.0)


def _routes_run(monkeypatch):
    """Record the route every call runs by (the executor's argument)."""
    import autovmap._run as run

    seen = []
    execute = run.execute

    def recording(route, example, mapped):
        seen.append(route)
        return execute(route, example, mapped)

    monkeypatch.setattr(run, "execute", recording)
    return seen


def scale(x, s):
    return x * s


@pytest.mark.parametrize(
    ("options", "x_shape", "kind", "says", "never_says"),
    [
        (
            {},
            (2, 3, 4, 5, 2, 3),
            "merged",
            "5 jax.vmap levels under tracing, merged into 1",
            "chunk",
        ),
        ({}, (2, 4, 6, 7, 3), "nested", "4 jax.vmap levels", "merged"),
        ({}, (4, 1, 3), "nested", "1 jax.vmap level", "merged"),
        ({"chunk_size": 5}, (4, 6, 3), "chunks", "chunks of at most 5 examples", "merged"),
        ({"chunk_size": 50}, (4, 6, 3), "nested", "in one chunk", "merged"),
        ({"axis_name": "b"}, (4, 6, 3), "named merged", "named 'b' over all 24", "eagerly"),
        ({"axis_name": "b"}, (4, 3), "named", "named 'b'", "merged"),
        ({"axis_name": "b"}, (3,), "named", "bound to a batch of one", "merged"),
    ],
)
def test_plan_prints_the_route_the_call_runs(monkeypatch, options, x_shape, kind, says, never_says):
    """Before routes were values, `plan()` of a chunked or `axis_name` call said its levels were
    "merged into 1 when called eagerly"; they never are. The call runs the route plan() shows."""
    f = auto_vmap(x=1, s=0, **options)(scale)
    x = jnp.ones(x_shape)
    p = plan(f, x, 2.0)
    assert p.route.kind == kind
    assert says in str(p) and never_says not in str(p)
    seen = _routes_run(monkeypatch)
    f(x, 2.0)
    assert seen == [p.route]


def test_traced_calls_take_the_nested_route_and_plan_says_so(monkeypatch):
    f = auto_vmap(x=1, s=0)(scale)
    x = jnp.ones((2, 3, 4, 5, 3))
    seen = _routes_run(monkeypatch)
    inside = []

    def traced(x):
        inside.append(plan(f, x, 2.0).route)
        return f(x, 2.0)

    jax.jit(traced)(x)
    assert inside[0].kind == "nested" and seen == inside
    assert "merged" not in str(inside[0])


_SHARDED = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from autovmap import auto_vmap, plan

mesh = jax.make_mesh((8,), ("b",), axis_types=(jax.sharding.AxisType.Auto,))
f = auto_vmap(v=1, chunk_size=2)(lambda v: jnp.sin(v).sum())
# the size-1 batch dim is squeezed before mapping: the route reads the sharding past it
y = jax.device_put(
    jnp.arange(16 * 8 * 3.0).reshape(16, 1, 8, 3), NamedSharding(mesh, P(None, None, "b"))
)
p = plan(f, y)
assert p.route.kind == "shard chunks" and p.route.shard_axes == (None, ("b",)), p.route
assert "each device loops over its own shard" in str(p), str(p)
out = f(y)
assert out.sharding.spec == P(None, None, "b"), out.sharding
np.testing.assert_allclose(out, np.sin(np.asarray(y)).sum(-1), rtol=1e-5, atol=1e-6)
print("ok")
"""


def test_plan_of_a_sharded_batch_shows_the_per_shard_route():
    import os
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    run = subprocess.run(
        [sys.executable, "-c", _SHARDED], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]
