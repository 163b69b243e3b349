"""The per-call cost of `auto_vmap` on small eager calls, beside the targets it is held to.

    python benchmarks/hot_path.py                  # a few minutes on 2 cores
    python benchmarks/hot_path.py --quick          # smoke run
    python benchmarks/hot_path.py --match pytree   # only the workloads whose name has "pytree"
    python benchmarks/hot_path.py --cpu-time       # CPU time, steadier on a busy machine

Each workload times `auto_vmap` against the hand-written alternative in one process,
interleaved (see `_timing.compare`); the table gives the median ratio (± half the interquartile
range of the per-block ratios: how far apart two runs may land), the target and whether it is
met. These are measurements, not tests: nothing asserts a time. Two lines follow the table:
the XLA compilations a new batch shape costs, and what each entry point costs per call on a
function that does nothing (no JAX dispatch to vary around it: the number to compare commits
by, when a ratio's spread is as large as the change).

To add a workload, write a function `(quick) -> list[Workload]` decorated with `@workload`:
it is run in the order of definition, and its rows land in the same table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jax
import jax.numpy as jnp
import numpy as np
from _timing import Contender, compare, format_seconds, loop
from jaxtyping import Array, Float

from autovmap import auto_vmap, vectorize


@dataclasses.dataclass
class Workload:
    """One row group of the table: a reference and the contenders timed against it, each with
    its target ratio (`None`: shown for information, no target)."""

    name: str
    reference: Contender
    timed: list[tuple[Contender, float | None]]


WORKLOADS: list[Callable[[bool], list[Workload]]] = []


def workload(build: Callable[[bool], list[Workload]]) -> Callable[[bool], list[Workload]]:
    """Register a builder of workloads (called with `quick`)."""
    WORKLOADS.append(build)
    return build


def _block(x: Any) -> Any:
    return jax.block_until_ready(x)


CLOCK = [time.perf_counter]  # `--cpu-time`: `time.process_time`


def timed(name: str, fn: Callable[[], Any]) -> Contender:
    """A contender timing `fn()` (results blocked on)."""
    return Contender(name, loop(lambda: _block(fn()), clock=CLOCK[0]))


def tiny(x):
    return jnp.sin(x)  # one lax op per example: the call's overhead is all there is to time


def tiny_typed(x: Float[Array, "n"]) -> Float[Array, "n"]:
    return jnp.sin(x)


def quad_typed(
    s: Float[Array, ""], v: Float[Array, "n"], m: Float[Array, "n n"]
) -> Float[Array, ""]:
    return v @ m @ v + s * v.size  # the README's function: three small ops per example


def concat(tree):
    return jax.lax.concatenate(jax.tree.leaves(tree), 0)


X8 = jnp.ones((8, 3))  # a tiny batch
X1 = jnp.ones(3)  # one example


@workload
def tiny_batched(quick: bool) -> list[Workload]:
    """Batch (8,) of a one-op function: every rank source, and the checked call."""
    hand = jax.vmap(tiny)
    hand_typed = jax.vmap(tiny_typed)
    explicit = auto_vmap(x=1)(tiny)
    by_signature = auto_vmap(signature="(n)->(n)")(tiny)
    vectorized = vectorize(tiny, signature="(n)->(n)")
    jnp_vectorized = jnp.vectorize(tiny, signature="(n)->(n)")
    checked = auto_vmap(tiny_typed)
    unchecked = auto_vmap(check=False)(tiny_typed)
    reference = timed("jax.vmap (reference)", lambda: hand(X8))
    return [
        Workload(
            "batch (8,), one lax op, explicit ranks",
            reference,
            [(timed("auto_vmap(x=1)", lambda: explicit(X8)), 1.06)],
        ),
        Workload(
            "batch (8,), one lax op, signature=",
            reference,
            [(timed("auto_vmap(signature=...)", lambda: by_signature(X8)), 1.06)],
        ),
        Workload(
            "batch (8,), one lax op, vectorize",
            reference,
            [
                (timed("autovmap.vectorize", lambda: vectorized(X8)), 1.06),
                (timed("jnp.vectorize", lambda: jnp_vectorized(X8)), None),
            ],
        ),
        Workload(
            "batch (8,), annotated, check=True (signature seen before)",
            timed("jax.vmap (reference)", lambda: hand_typed(X8)),
            [
                (timed("auto_vmap (checks)", lambda: checked(X8)), 1.06),
                (timed("auto_vmap(check=False)", lambda: unchecked(X8)), 1.06),
            ],
        ),
    ]


@workload
def unbatched(quick: bool) -> list[Workload]:
    """No batch dims: the decorator's cost on a call that needs no `jax.vmap`."""
    explicit = auto_vmap(x=1)(tiny)
    by_signature = auto_vmap(signature="(n)->(n)")(tiny)
    vectorized = vectorize(tiny, signature="(n)->(n)")
    jnp_vectorized = jnp.vectorize(tiny, signature="(n)->(n)")
    checked = auto_vmap(tiny_typed)
    checked_quad = auto_vmap(quad_typed)
    s, m = jnp.float32(2.0), jnp.eye(3)
    reference = timed("undecorated (reference)", lambda: tiny(X1))
    return [
        Workload(
            "no batch dims, one lax op, explicit ranks",
            reference,
            [(timed("auto_vmap(x=1)", lambda: explicit(X1)), 1.15)],
        ),
        Workload(
            "no batch dims, one lax op, signature=",
            reference,
            [(timed("auto_vmap(signature=...)", lambda: by_signature(X1)), 1.15)],
        ),
        Workload(
            "no batch dims, one lax op, vectorize",
            reference,
            [
                (timed("autovmap.vectorize", lambda: vectorized(X1)), 1.15),
                (timed("jnp.vectorize", lambda: jnp_vectorized(X1)), None),
            ],
        ),
        Workload(
            "no batch dims, one lax op, annotated, check=True",
            timed("undecorated (reference)", lambda: tiny_typed(X1)),
            [(timed("auto_vmap (checks)", lambda: checked(X1)), 1.15)],
        ),
        Workload(
            "no batch dims, quad annotated, check=True",
            timed("undecorated (reference)", lambda: quad_typed(s, X1, m)),
            [(timed("auto_vmap (checks)", lambda: checked_quad(s, X1, m)), 1.15)],
        ),
    ]


@workload
def pytrees(quick: bool) -> list[Workload]:
    """A dict of arrays ranked by one int: the per-leaf cost."""
    found = []
    by_rank = auto_vmap(tree=1)(concat)
    hand = jax.vmap(concat)
    for leaves in (1, 64, 512) if quick else (1, 64, 1024, 4096):
        tree = {f"w{i:04d}": jnp.full((8, 3), float(i)) for i in range(leaves)}
        found.append(
            Workload(
                f"pytree of {leaves} leaves, batch (8,)",
                timed("jax.vmap (reference)", lambda tree=tree: hand(tree)),
                [(timed("auto_vmap(tree=1)", lambda tree=tree: by_rank(tree)), 1.03)],
            )
        )
    leaves = 512 if quick else 4096
    tree = {f"w{i:04d}": jnp.full((2, 4, 3), float(i)) for i in range(leaves)}
    nested = jax.vmap(jax.vmap(concat))
    found.append(
        Workload(
            f"pytree of {leaves} leaves, batch (2, 4)",
            timed("jax.vmap nested (reference)", lambda: nested(tree)),
            [(timed("auto_vmap(tree=1)", lambda: by_rank(tree)), 1.0)],
        )
    )
    return found


@workload
def batch_ranks(quick: bool) -> list[Workload]:
    """Many batch dims: eager cost is flat in the batch rank."""
    flat_tiny = jax.vmap(tiny)
    explicit = auto_vmap(x=1)(tiny)
    found = []
    for k in (1, 8, 16):
        shape = (2,) * k
        xs = jnp.ones((*shape, 3))

        def flattened(xs: Any = xs, shape: tuple[int, ...] = shape) -> Any:
            return flat_tiny(xs.reshape(-1, 3)).reshape(*shape, 3)

        found.append(
            Workload(
                f"{k} batch dims {shape if k < 4 else f'(2,)*{k}'}",
                timed("jax.vmap, flattened (reference)", flattened),
                [(timed("auto_vmap(x=1)", lambda xs=xs: explicit(xs)), 1.1)],
            )
        )
    return found


@workload
def never_seen_shapes(quick: bool) -> list[Workload]:
    """Eager calls whose batch shape is new each time (every op compiles): 2 to 4 batch dims.
    Each contender gets its own fresh shapes, made beforehand (making one compiles nothing)."""
    found = []
    calls = 8 if quick else 40
    for k in (2, 3, 4):
        hand = jax.vmap(tiny)
        for _ in range(k - 1):
            hand = jax.vmap(hand)
        explicit = auto_vmap(x=1)(tiny)
        sizes = iter(range(10_000 * k, 10_000 * (k + 1)))

        def fresh(n: int = calls, k: int = k, sizes: Any = sizes) -> Any:
            return iter(
                [jnp.asarray(np.ones((next(sizes),) + (2,) * (k - 1) + (3,))) for _ in range(n)]
            )

        hand_xs, ours_xs = fresh(), fresh()
        found.append(
            Workload(
                f"{k} batch dims, batch shape never seen before",
                Contender(
                    "jax.vmap nested (reference)",
                    loop(lambda f=hand, xs=hand_xs: _block(f(next(xs))), clock=CLOCK[0]),
                    calibrate=False,
                ),
                [
                    (
                        Contender(
                            "auto_vmap(x=1)",
                            loop(
                                lambda f=explicit, xs=ours_xs: _block(f(next(xs))), clock=CLOCK[0]
                            ),
                            calibrate=False,
                        ),
                        1.2,
                    )
                ],
            )
        )
    return found


@workload
def first_seen_checked_call(quick: bool) -> list[Workload]:
    """A checked call whose signature was not seen before (the remembered outcomes are
    forgotten before each call), against `jaxtyped(typechecker=beartype)` on the same function:
    the cost of the checks themselves."""
    from beartype import beartype  # only this row needs it
    from jaxtyping import jaxtyped

    s, v, m = jnp.float32(2.0), jnp.ones(3), jnp.eye(3)
    by_beartype = jaxtyped(typechecker=beartype)(quad_typed)
    checked = auto_vmap(quad_typed)
    remembered = checked.__autovmap__.passed

    def first_seen() -> Any:
        remembered._entries.clear()  # as if this signature had never been seen
        return checked(s, v, m)

    return [
        Workload(
            "no batch dims, quad annotated, signature not seen before",
            timed("jaxtyped(beartype) (reference)", lambda: by_beartype(s, v, m)),
            [(timed("auto_vmap (checks)", first_seen), 1.0)],
        )
    ]


def noop(x):
    return x


def noop_typed(x: Float[Array, "n"]) -> Float[Array, "n"]:
    return x


def layer_costs() -> str:
    """What each entry point costs per call in itself: timed on a function that does nothing,
    with one unbatched array, so no JAX dispatch (whose time varies by several µs from run to
    run) hides it. The minimum over 9 repeats of 20,000 calls, twice: a steadier number than
    any ratio above, to compare commits by."""
    x = jnp.ones(3)
    entries = {
        "bare function": noop,
        "auto_vmap(x=1)": auto_vmap(x=1)(noop),
        "auto_vmap(signature=...)": auto_vmap(signature="(n)->(n)")(noop),
        "autovmap.vectorize": vectorize(noop, signature="(n)->(n)"),
        "auto_vmap, annotated, check=True": auto_vmap(noop_typed),
    }
    best: dict[str, float] = {}
    for _ in range(2):
        for name, f in entries.items():
            f(x)
            seconds = min(timeit.repeat(lambda f=f: f(x), number=20_000, repeat=9)) / 20_000
            best[name] = min(best.get(name, seconds), seconds)
    return "Per-call cost on a function that does nothing, no batch dims: " + ", ".join(
        f"{name} {seconds * 1e9:.0f} ns" for name, seconds in best.items()
    )


def compiles_per_new_shape() -> str:
    """How many XLA compilations one eager call on a new batch shape costs (each is kept in
    jax's caches: the resident memory a new shape adds), hand nested vmap against ours."""
    count = [0]

    def listener(event: str, *args: Any, **kwargs: Any) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    parts = []
    for k in (2, 3, 4):
        hand = jax.vmap(tiny)
        for _ in range(k - 1):
            hand = jax.vmap(hand)
        for name, f, size in (("hand", hand, 20_001), ("auto_vmap", auto_vmap(x=1)(tiny), 20_002)):
            x = jnp.asarray(np.ones((size + 10 * k,) + (2,) * (k - 1) + (3,)))
            count[0] = 0
            _block(f(x))
            parts.append(f"{k} dims {name} {count[0]}")
    return "XLA compilations per call on a new batch shape: " + ", ".join(parts)


def check_results() -> None:
    """Nothing is timed unless the decorated functions compute what the reference computes."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 3)), jnp.float32)
    expected = np.sin(np.asarray(x))
    for f in (
        auto_vmap(x=1)(tiny),
        auto_vmap(signature="(n)->(n)")(tiny),
        vectorize(tiny, signature="(n)->(n)"),
        auto_vmap(tiny_typed),
        auto_vmap(check=False)(tiny_typed),
    ):
        np.testing.assert_allclose(f(x), expected, rtol=1e-6)
        np.testing.assert_allclose(f(x[0, 0]), expected[0, 0], rtol=1e-6)
    tree = {f"w{i}": x[0] + i for i in range(3)}
    np.testing.assert_allclose(auto_vmap(tree=1)(concat)(tree), jax.vmap(concat)(tree))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--match", default="", help="only workloads whose name contains this")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time CPU seconds of the process, not wall time (steadier on a busy machine)",
    )
    args = parser.parse_args(argv)
    if args.cpu_time:
        CLOCK[0] = time.process_time
    check_results()
    found = [w for build in WORKLOADS for w in build(args.quick) if args.match in w.name]
    reps, target_s = (5, 0.02) if args.quick else (15, 0.05)
    clock = "CPU time of the process" if args.cpu_time else "wall time"
    print(
        f"jax {jax.__version__}, {jax.devices()[0].platform}; {reps} blocks per workload; "
        f"{clock}; load average {os.getloadavg()[0]:.2f}\n"
    )
    print("| workload | contender | median | ratio (± half IQR of blocks) | target | met? |")
    print("|---|---|---:|---:|---:|:-:|")
    for w in found:
        jax.clear_caches()
        contenders = [w.reference, *(c for c, _ in w.timed)]
        targets = {c.name: target for c, target in w.timed}
        for row in compare(w.name, contenders, reps=reps, target_s=target_s):
            target = targets.get(row.contender)
            ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
            if row.ratio_spread is not None and row.contender in targets:
                ratio += f" ± {row.ratio_spread:.2f}"
            met = ""
            if target is not None and row.ratio is not None:
                met = "yes" if round(row.ratio, 2) <= target else "NO"  # as shown
            print(
                f"| {w.name} | {row.contender} | {format_seconds(row.median_s)} | {ratio} "
                f"| {'' if target is None else f'≤ {target:.2f}'} | {met} |",
                flush=True,
            )
    if not args.match:
        print("\n" + compiles_per_new_shape())
        print("\n" + layer_costs())


if __name__ == "__main__":
    main()
