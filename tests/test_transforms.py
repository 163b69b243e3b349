"""Composition with jit/grad/vmap/nesting, zero-cost tracing, memory, and threads."""

import re
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from oracle import assert_trees_close, loop

from autovmap import BroadcastError, auto_vmap


def quad(s, v, m):
    return v @ m @ v + s * v.size


batched_quad = auto_vmap(s=0, v=1, m=2)(quad)


def _hlo(fn, *args):
    text = jax.jit(fn).lower(*args).as_text()
    return re.sub(r"module @\S+", "module @M", text)


@pytest.mark.parametrize("k", [1, 3, 12])
def test_same_program_as_hand_written_nested_vmap(k):
    """`v` is mapped at every level, `m` only at the innermost, `s` at none."""
    s = jnp.float32(0.5)
    v = jax.ShapeDtypeStruct((2,) * k + (3,), jnp.float32)
    m = jax.ShapeDtypeStruct((2, 3, 3), jnp.float32)

    def nested(s, v, m):
        f = jax.vmap(quad, in_axes=(None, 0, 0))
        for _ in range(k - 1):
            f = jax.vmap(f, in_axes=(None, 0, None))
        return f(s, v, m)

    assert _hlo(batched_quad, s, v, m) == _hlo(nested, s, v, m)


def test_size_one_dims_lower_to_a_squeeze_not_a_broadcast():
    v = jax.ShapeDtypeStruct((5, 3), jnp.float32)
    m = jax.ShapeDtypeStruct((1, 3, 3), jnp.float32)
    hand = lambda s, v, m: jax.vmap(quad, in_axes=(None, 0, None))(s, v, jnp.squeeze(m, 0))
    assert _hlo(batched_quad, 1.0, v, m) == _hlo(hand, 1.0, v, m)


def test_one_matrix_against_many_vectors_is_never_copied():
    v = jax.ShapeDtypeStruct((20000, 256), jnp.float32)
    m = jax.ShapeDtypeStruct((1, 256, 256), jnp.float32)
    compiled = jax.jit(auto_vmap(v=1, m=2)(lambda v, m: v @ m @ v)).lower(v, m).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    # A broadcast copy of `m` would need 20000 * 256 * 256 * 4 bytes = 5.2 GB.
    assert temp < 64 * 2**20, f"{temp / 2**20:.0f} MiB of temporaries"


def test_jit_matches_eager():
    v = jnp.arange(24.0).reshape(2, 4, 3)
    m = jnp.eye(3)
    assert_trees_close(jax.jit(batched_quad)(1.0, v, m), batched_quad(1.0, v, m))


def test_grad_matches_loop():
    v = jnp.arange(12.0).reshape(4, 3) / 10
    m = jnp.arange(9.0).reshape(3, 3) / 10
    grad = jax.grad(lambda v: batched_quad(1.0, v, m).sum())(v)
    expected = np.stack([jax.grad(quad, argnums=1)(1.0, v[i], m) for i in range(4)])
    assert_trees_close(grad, expected)


def test_under_vmap():
    v = jnp.arange(24.0).reshape(2, 4, 3)
    m = jnp.ones((4, 3, 3))
    out = jax.vmap(batched_quad, in_axes=(None, 0, None))(1.0, v, m)
    assert_trees_close(out, loop(quad, [1.0, v, m], [0, 1, 2], (2, 4)))


def test_nesting():
    @auto_vmap(x=0)
    def softplus(x):
        return jnp.log1p(jnp.exp(x))

    @auto_vmap(v=1)
    def energy(v):
        assert v.ndim == 1
        return softplus(v).sum()  # the inner call batches over the vector's entries

    v = jnp.arange(12.0).reshape(2, 2, 3)
    assert_trees_close(energy(v), np.log1p(np.exp(np.asarray(v))).sum(-1))


def test_shape_errors_raised_the_same_under_jit():
    with pytest.raises(BroadcastError, match=r"v +1 +explicit +\(7, 4, 3\) +\(7, 4\)"):
        jax.jit(batched_quad)(1.0, jnp.ones((7, 4, 3)), jnp.ones((5, 3, 3)))


def test_eight_threads_at_once():
    rng = np.random.default_rng(0)
    shapes = [((i % 4) + 1, 2) for i in range(8)]
    inputs = [(rng.normal(size=b + (3,)), rng.normal(size=(3, 3))) for b in shapes]
    results = [None] * 8
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait()
        for _ in range(3):
            results[i] = batched_quad(1.0, *inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (v, m), b, out in zip(inputs, shapes, results):
        assert_trees_close(out, loop(quad, [1.0, v, m], [0, 1, 2], b), rtol=1e-4)


def centred(x):
    return x - jax.lax.pmean(x, "b")


def test_named_routes_are_the_program_written_by_hand():
    """`axis_name` over one batch dim is one named vmap; over several, one named vmap over
    their product, between two reshapes."""
    x1 = jax.ShapeDtypeStruct((6, 3), jnp.float32)
    x2 = jax.ShapeDtypeStruct((2, 6, 3), jnp.float32)
    named = auto_vmap(x=1, axis_name="b")(centred)
    assert _hlo(named, x1) == _hlo(jax.vmap(centred, axis_name="b"), x1)

    def by_hand(x):
        return jax.vmap(centred, axis_name="b")(x.reshape(12, 3)).reshape(2, 6, 3)

    assert _hlo(named, x2) == _hlo(by_hand, x2)


def test_one_chunk_is_the_nested_vmap_written_by_hand():
    v = jax.ShapeDtypeStruct((4, 2, 3), jnp.float32)
    m = jax.ShapeDtypeStruct((2, 3, 3), jnp.float32)
    one_chunk = auto_vmap(s=0, v=1, m=2, chunk_size=8)(quad)
    hand = jax.vmap(jax.vmap(quad, in_axes=(None, 0, 0)), in_axes=(None, 0, None))
    assert _hlo(one_chunk, 1.0, v, m) == _hlo(hand, 1.0, v, m)


def test_one_nested_vmap_builder_and_one_concreteness_test():
    """Every route maps its examples through `_vmap.nested_vmap` (the chunk loop's gather of a
    chunk, a vmap over indices, is the one other `jax.vmap`); whether a value is traced is
    asked in one place, `_vmap.is_concrete`."""
    import ast
    import pathlib

    import autovmap

    calls: dict[str, list[str]] = {}
    for path in sorted(pathlib.Path(autovmap.__file__).parent.glob("_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in ("jax.vmap", "isinstance") and "Tracer" in ast.unparse(node) + name:
                    calls.setdefault(path.name, []).append("isinstance Tracer")
                elif name == "jax.vmap":
                    calls.setdefault(path.name, []).append(ast.unparse(node.args[0]))
    assert calls == {
        "_vmap.py": ["isinstance Tracer", "fn"],
        "_chunks.py": ["one"],
    }, calls


def test_no_module_is_over_500_lines():
    """Core v3: each module keeps to one concern; past 500 lines it holds more than one."""
    import pathlib

    import autovmap

    sizes = {
        path.name: len(path.read_text().splitlines())
        for path in pathlib.Path(autovmap.__file__).parent.glob("*.py")
    }
    assert sizes and max(sizes.values()) <= 500, {n: s for n, s in sizes.items() if s > 500}
