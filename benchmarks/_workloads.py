"""The workloads and their contenders. Each builder returns `(workload name, contenders)`.

The first contender of every workload is its reference: the ratios in the table are
`median time / reference median time`. Before anything is timed, every contender's result is
compared with the reference's, so a table can never time a wrong answer.
"""

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _timing import Contender, loop
from jaxtyping import Array, Float

from autovmap import auto_vmap

try:
    import jax_autovmap
except ImportError:  # optional: `pip install -e '.[bench]'`
    jax_autovmap = None

BATCH = 4096  # examples per call in the `quad` workloads, split over k batch dims
REF_FLAT = "jax.vmap, flattened (reference)"
NESTED = "jax.vmap, nested (one per batch dim)"
VECTORIZE = "jnp.vectorize(signature=...)"
AUTOVMAP = "autovmap.auto_vmap"
JAX_AUTOVMAP = "jax_autovmap.autovmap 0.3.0"


def quad(s, v, m):
    """The workload of the design doc: one example is a scalar, a 3-vector and a 3x3 matrix."""
    return v @ m @ v + s * v.size


def batch_shape(k: int) -> tuple[int, ...]:
    """4096 = 2**12 split over `k` dims as evenly as possible: k=3 -> (16, 16, 16)."""
    exponents = [12 // k + (1 if i < 12 % k else 0) for i in range(k)]
    return tuple(2**e for e in exponents)


def shape_label(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def quad_inputs(k: int, m_batched: bool) -> tuple[Any, Any, Any]:
    """`s` a 0-d array (never batched), `v` of shape (*batch, 3), `m` (3, 3) or (*batch, 3, 3)."""
    shape = batch_shape(k)
    rng = np.random.default_rng(k)
    s = jnp.asarray(2.0, jnp.float32)
    v = jnp.asarray(rng.standard_normal((*shape, 3)), jnp.float32)
    m_shape = (*shape, 3, 3) if m_batched else (3, 3)
    m = jnp.asarray(rng.standard_normal(m_shape), jnp.float32)
    return s, v, m


def quad_contenders(m_batched: bool) -> dict[str, Callable[..., Any]]:
    """The batched versions of `quad`, each a function of `(s, v, m)` with any batch shape of v."""
    m_axis = 0 if m_batched else None

    def flattened(s, v, m):  # the hand-written reference: reshape to one batch dim and back
        batch = v.shape[:-1]
        v1 = v.reshape(-1, 3)
        m1 = m.reshape(-1, 3, 3) if m_batched else m
        return jax.vmap(quad, in_axes=(None, 0, m_axis))(s, v1, m1).reshape(batch)

    def nested(s, v, m):  # what the library emits under tracing: one vmap per batch dim
        fn = quad
        for _ in range(v.ndim - 1):
            fn = jax.vmap(fn, in_axes=(None, 0, m_axis))
        return fn(s, v, m)

    found = {
        REF_FLAT: flattened,
        NESTED: nested,
        VECTORIZE: jnp.vectorize(quad, signature="(),(n),(n,n)->()"),
        AUTOVMAP: auto_vmap(s=0, v=1, m=2)(quad),
    }
    if jax_autovmap is not None:
        found[JAX_AUTOVMAP] = jax_autovmap.autovmap(s=0, v=1, m=2)(quad)
    return found


def _check_same(workload: str, results: dict[str, Any]) -> None:
    (ref_name, ref), *others = results.items()
    for name, out in others:
        for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(out), strict=True):
            if np.shape(a) != np.shape(b) or not np.allclose(a, b, rtol=1e-4, atol=1e-4):
                raise AssertionError(f"{workload}: {name} disagrees with {ref_name}")


def _block(x: Any) -> Any:
    return jax.block_until_ready(x)


def eager_workload(k: int, m_batched: bool) -> tuple[str, list[Contender]]:
    s, v, m = quad_inputs(k, m_batched)
    fns = quad_contenders(m_batched)
    name = f"eager, m {'batched' if m_batched else 'shared'}, k={k} {shape_label(batch_shape(k))}"
    _check_same(name, {n: f(s, v, m) for n, f in fns.items()})
    return name, [Contender(n, loop(lambda f=f: _block(f(s, v, m)))) for n, f in fns.items()]


def jit_run_workload(k: int, m_batched: bool) -> tuple[str, list[Contender]]:
    s, v, m = quad_inputs(k, m_batched)
    fns = {n: jax.jit(f) for n, f in quad_contenders(m_batched).items()}
    name = f"jit run, m {'batched' if m_batched else 'shared'}, k={k} {shape_label(batch_shape(k))}"
    _check_same(name, {n: f(s, v, m) for n, f in fns.items()})
    return name, [Contender(n, loop(lambda f=f: _block(f(s, v, m)))) for n, f in fns.items()]


def fresh_compile(
    fn: Callable[..., Any], *args: Any, compile: bool = True
) -> Callable[[int], dict[str, float]]:
    """Trace (`.lower`) and compile a *fresh* `jax.jit` each time: a new function object, so
    no tracing or compilation cache of JAX can answer. The decorated function itself is
    reused, as a user's would be (its decoration-time work is not counted)."""

    def measure(number: int) -> dict[str, float]:
        assert number == 1
        fresh = jax.jit(lambda *a: fn(*a))
        start = time.perf_counter()
        lowered = fresh.lower(*args)
        traced = time.perf_counter()
        if not compile:
            return {"lower": traced - start}
        lowered.compile()
        done = time.perf_counter()
        return {"lower": traced - start, "lower+compile": done - start}

    return measure


def compile_workload(k: int, m_batched: bool) -> tuple[str, list[Contender]]:
    s, v, m = quad_inputs(k, m_batched)
    fns = quad_contenders(m_batched)
    name = f"trace, m {'batched' if m_batched else 'shared'}, k={k} {shape_label(batch_shape(k))}"
    return name, [Contender(n, fresh_compile(f, s, v, m), calibrate=False) for n, f in fns.items()]


def passthrough_workload() -> tuple[str, list[Contender]]:
    """One example, no batch dims: what decorating costs a call that needs no vmap."""
    s, v, m = quad_inputs(1, False)
    v, m = v[0], m
    fns = {"quad, undecorated (reference)": quad}
    fns.update({n: f for n, f in quad_contenders(False).items() if n not in (REF_FLAT, NESTED)})
    name = "passthrough, eager, no batch dims"
    _check_same(name, {n: f(s, v, m) for n, f in fns.items()})
    return name, [Contender(n, loop(lambda f=f: _block(f(s, v, m)))) for n, f in fns.items()]


PYTREE_LEAVES = 512
PYTREE_BATCH = 16


def concat_leaves(tree):
    """Per example: 512 vectors of 4 -> one vector of 2048, in one primitive (so the time is
    the cost of handling 512 leaves, not of 512 dispatched operations)."""
    return jax.lax.concatenate(jax.tree.leaves(tree), 0)


def pytree_inputs() -> dict[str, Any]:
    return {
        f"w{i:03d}": jnp.full((PYTREE_BATCH, 4), float(i), jnp.float32)
        for i in range(PYTREE_LEAVES)
    }


def pytree_contenders() -> dict[str, Callable[..., Any]]:
    fns = {
        "jax.vmap (reference)": jax.vmap(concat_leaves),
        AUTOVMAP: auto_vmap(tree=1)(concat_leaves),
    }
    if jax_autovmap is not None:
        fns[JAX_AUTOVMAP] = jax_autovmap.autovmap(tree=1)(concat_leaves)
    return fns


def pytree_eager_workload() -> tuple[str, list[Contender]]:
    tree = pytree_inputs()
    fns = pytree_contenders()
    name = f"pytree of {PYTREE_LEAVES} leaves, eager, batch ({PYTREE_BATCH},)"
    _check_same(name, {n: f(tree) for n, f in fns.items()})
    return name, [Contender(n, loop(lambda f=f: _block(f(tree)))) for n, f in fns.items()]


def pytree_compile_workload() -> tuple[str, list[Contender]]:
    tree = pytree_inputs()
    name = f"pytree of {PYTREE_LEAVES} leaves, trace, batch ({PYTREE_BATCH},)"
    # XLA's compile of the 512-operand concatenate takes ~0.4 s and is the same program for
    # every contender; only the trace is timed.
    return name, [
        Contender(n, fresh_compile(f, tree, compile=False), calibrate=False)
        for n, f in pytree_contenders().items()
    ]


# --- check=True vs check=False (annotation-driven ranks + run-time jaxtyping checks) ----------


def quad_typed(
    s: Float[Array, ""], v: Float[Array, "n"], m: Float[Array, "n n"]
) -> Float[Array, ""]:
    """`quad` with jaxtyping annotations: ranks 0, 1, 2 and the named dim `n` shared by v, m."""
    return v @ m @ v + s * v.size


def check_support() -> tuple[bool, str]:
    """Whether `auto_vmap` reads ranks from annotations and takes `check=`; why not, if not."""
    s, v, m = quad_inputs(1, False)
    v = v[:8]
    try:
        checked = auto_vmap(quad_typed)
        unchecked = auto_vmap(check=False)(quad_typed)
        for f in (checked, unchecked):
            out = f(s, v, m)
            if np.shape(out) != (8,):
                return False, (
                    f"an annotated function called with v {v.shape} returned"
                    f" {np.shape(out)}, not (8,): ranks are not read from annotations yet"
                )
    except Exception as e:  # noqa: BLE001 - any failure means "not supported yet"
        return False, f"`auto_vmap` on an annotated function failed: {type(e).__name__}: {e}"
    try:
        checked(s, v.astype(jnp.int32), m)  # Float[...] must reject an int array
    except Exception:  # noqa: BLE001
        return True, ""
    return True, "note: check=True did not reject an int array for a `Float` parameter"


def check_contenders() -> dict[str, Callable[..., Any]]:
    return {
        "jax.vmap, no checks (reference)": jax.vmap(quad_typed, in_axes=(None, 0, None)),
        f"{AUTOVMAP}(check=False)": auto_vmap(check=False)(quad_typed),
        f"{AUTOVMAP}(check=True)": auto_vmap(check=True)(quad_typed),
    }


def check_eager_workload() -> tuple[str, list[Contender]]:
    s, v, m = quad_inputs(1, False)
    fns = check_contenders()
    name = f"annotated, eager, m shared, batch ({BATCH},)"
    _check_same(name, {n: f(s, v, m) for n, f in fns.items()})
    return name, [Contender(n, loop(lambda f=f: _block(f(s, v, m)))) for n, f in fns.items()]


def check_compile_workload() -> tuple[str, list[Contender]]:
    s, v, m = quad_inputs(1, False)
    name = f"annotated, trace, m shared, batch ({BATCH},)"
    return name, [
        Contender(n, fresh_compile(f, s, v, m), calibrate=False)
        for n, f in check_contenders().items()
    ]


# --- diagnostics (not timings) ----------------------------------------------------------------


def eager_vmap_levels(k: int) -> int:
    """How many nested `jax.vmap` levels `auto_vmap` uses eagerly for a k-dim batch (k without
    merging of adjacent levels, 1 with it: from k=4 on, where merging pays). Counted from the
    nesting of the batch tracers the per-example function receives."""
    depths = []

    def probe(v):
        depth, x = 0, v
        while type(x).__name__ == "BatchTracer" and hasattr(x, "val"):
            depth, x = depth + 1, x.val
        depths.append(depth)
        return v.sum()

    auto_vmap(v=1)(probe)(jnp.ones((*batch_shape(k), 3)))
    return depths[0]


def same_jaxpr_as_nested(k: int, m_batched: bool) -> bool:
    """Under tracing the design promises the program of hand-written nested vmaps."""
    s, v, m = quad_inputs(k, m_batched)
    fns = quad_contenders(m_batched)
    return str(jax.make_jaxpr(fns[AUTOVMAP])(s, v, m)) == str(jax.make_jaxpr(fns[NESTED])(s, v, m))
