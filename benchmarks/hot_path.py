"""The per-call cost of `auto_vmap` on small eager calls, beside the targets it is held to.

    python benchmarks/hot_path.py            # about a minute on 2 cores
    python benchmarks/hot_path.py --quick    # smoke run

Each workload times `auto_vmap` against the hand-written alternative in one process,
interleaved (see `_timing.compare`); the table gives the median ratio and the target. These
are measurements, not tests: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jax
import jax.numpy as jnp
import numpy as np
from _timing import Contender, compare, format_seconds, loop
from jaxtyping import Array, Float

from autovmap import auto_vmap


def _block(x: Any) -> Any:
    return jax.block_until_ready(x)


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


def workloads(quick: bool) -> list[tuple[str, float, list[Contender]]]:
    """(name, target ratio, contenders): the first contender is the reference."""
    x8 = jnp.ones((8, 3))
    x1 = jnp.ones(3)
    hand = jax.vmap(tiny)
    flat_tiny = jax.vmap(tiny)
    hand_typed = jax.vmap(tiny_typed)
    checked = auto_vmap(tiny_typed)
    unchecked = auto_vmap(check=False)(tiny_typed)
    explicit = auto_vmap(x=1)(tiny)
    checked_quad = auto_vmap(quad_typed)
    s, m = jnp.float32(2.0), jnp.eye(3)
    found: list[tuple[str, float, list[Contender]]] = [
        (
            "batch (8,), one lax op, explicit ranks",
            1.06,
            [
                Contender("jax.vmap (reference)", loop(lambda: _block(hand(x8)))),
                Contender("auto_vmap(x=1)", loop(lambda: _block(explicit(x8)))),
            ],
        ),
        (
            "batch (8,), annotated, check=True",
            1.06,
            [
                Contender("jax.vmap (reference)", loop(lambda: _block(hand_typed(x8)))),
                Contender("auto_vmap (checks)", loop(lambda: _block(checked(x8)))),
                Contender("auto_vmap(check=False)", loop(lambda: _block(unchecked(x8)))),
            ],
        ),
        (
            "no batch dims, quad annotated, check=True",
            1.15,
            [
                Contender("undecorated (reference)", loop(lambda: _block(quad_typed(s, x1, m)))),
                Contender("auto_vmap (checks)", loop(lambda: _block(checked_quad(s, x1, m)))),
            ],
        ),
        (
            "no batch dims, one lax op, annotated, check=True",
            1.15,
            [
                Contender("undecorated (reference)", loop(lambda: _block(tiny_typed(x1)))),
                Contender("auto_vmap (checks)", loop(lambda: _block(checked(x1)))),
            ],
        ),
    ]
    found.append(first_seen_checked_call())
    leaves = 512 if quick else 4096
    tree = {f"w{i:04d}": jnp.full((2, 4, 3), float(i)) for i in range(leaves)}
    nested = jax.vmap(jax.vmap(concat))
    by_rank = auto_vmap(tree=1)(concat)
    found.append(
        (
            f"pytree of {leaves} leaves, batch (2, 4)",
            1.0,
            [
                Contender("jax.vmap nested (reference)", loop(lambda: _block(nested(tree)))),
                Contender("auto_vmap(tree=1)", loop(lambda: _block(by_rank(tree)))),
            ],
        )
    )
    for k in (1, 8, 16):
        shape = (2,) * k
        xs = jnp.ones((*shape, 3))

        def flattened(xs: Any = xs, shape: tuple[int, ...] = shape) -> Any:
            return flat_tiny(xs.reshape(-1, 3)).reshape(*shape, 3)

        found.append(
            (
                f"{k} batch dims {shape if k < 4 else f'(2,)*{k}'}",
                1.1,
                [
                    Contender(
                        "jax.vmap, flattened (reference)", loop(lambda f=flattened: _block(f()))
                    ),
                    Contender("auto_vmap(x=1)", loop(lambda xs=xs: _block(explicit(xs)))),
                ],
            )
        )
    found += never_seen_shapes(quick)
    return found


def never_seen_shapes(quick: bool) -> list[tuple[str, float, list[Contender]]]:
    """Eager calls whose batch shape is new each time (every op compiles): 2 to 4 batch dims.
    Each contender gets its own fresh shapes, made beforehand (making one compiles nothing)."""
    found: list[tuple[str, float, list[Contender]]] = []
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
            (
                f"{k} batch dims, batch shape never seen before",
                1.2,
                [
                    Contender(
                        "jax.vmap nested (reference)",
                        loop(lambda f=hand, xs=hand_xs: _block(f(next(xs)))),
                        calibrate=False,
                    ),
                    Contender(
                        "auto_vmap(x=1)",
                        loop(lambda f=explicit, xs=ours_xs: _block(f(next(xs)))),
                        calibrate=False,
                    ),
                ],
            )
        )
    return found


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


def first_seen_checked_call() -> tuple[str, float, list[Contender]]:
    """A checked call whose signature was not seen before (the remembered outcomes are
    forgotten before each call), against `jaxtyped(typechecker=beartype)` on the same function:
    the cost of the checks themselves."""
    from beartype import beartype  # noqa: PLC0415 - only this row needs it
    from jaxtyping import jaxtyped  # noqa: PLC0415

    s, v, m = jnp.float32(2.0), jnp.ones(3), jnp.eye(3)
    by_beartype = jaxtyped(typechecker=beartype)(quad_typed)
    checked = auto_vmap(quad_typed)
    remembered = checked.__autovmap__.passed

    def first_seen() -> Any:
        remembered._entries.clear()  # as if this signature had never been seen
        return _block(checked(s, v, m))

    return (
        "no batch dims, quad annotated, signature not seen before",
        1.0,
        [
            Contender("jaxtyped(beartype) (reference)", loop(lambda: _block(by_beartype(s, v, m)))),
            Contender("auto_vmap (checks)", loop(first_seen)),
        ],
    )


def check_results() -> None:
    """Nothing is timed unless the decorated functions compute what the reference computes."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 3)), jnp.float32)
    expected = np.sin(np.asarray(x))
    for f in (auto_vmap(x=1)(tiny), auto_vmap(tiny_typed), auto_vmap(check=False)(tiny_typed)):
        np.testing.assert_allclose(f(x), expected, rtol=1e-6)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    found = workloads(args.quick)
    check_results()
    reps, target_s = (5, 0.02) if args.quick else (15, 0.05)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; {reps} blocks per workload\n")
    print("| workload | contender | median | ratio | target |")
    print("|---|---|---:|---:|---:|")
    for name, target, contenders in found:
        jax.clear_caches()
        for row in compare(name, contenders, reps=reps, target_s=target_s):
            ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
            is_ref = row.contender == contenders[0].name
            print(
                f"| {name} | {row.contender} | {format_seconds(row.median_s)} | {ratio} "
                f"| {'' if is_ref else f'≤ {target:.2f}'} |",
                flush=True,
            )
    print(f"\n{compiles_per_new_shape()}")


if __name__ == "__main__":
    main()
