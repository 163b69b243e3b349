"""`autovmap.vectorize` against `jnp.vectorize`, and the cost of checking named core dims.

    python benchmarks/vectorize.py            # full run, a few minutes on 2 cores
    python benchmarks/vectorize.py --quick    # smoke run
    python benchmarks/vectorize.py --out vectorize.md

1. Eager calls of `quad` (a scalar, a 3-vector, a 3x3 matrix per example; 4096 examples split
   over k = 1..12 batch dims, `m` shared or batched) through `jnp.vectorize(quad, signature=
   "(),(n),(n,n)->()")` (the reference) and `autovmap.vectorize` with the same signature.
2. The per-call cost of the named-dim checks, on shapes only: binding and planning a call
   (`bind`, then `BatchedCall.plan`: rank checks, core-dim checks, cached vmap plan; nothing
   runs) for `auto_vmap(signature=...)` against `auto_vmap(s=0, v=1, m=2)`, the same call with
   and without the check; and unbatched calls (dim strings and a signature keep the fast path
   for unbatched calls; a signature's outputs are checked in the one callback).

Every contender of a workload runs interleaved with the others (`_timing.compare`): medians
over blocks, and the median of per-block ratios to the reference. Results are compared before
timing. Measurements only: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _timing import Contender, compare, loop, markdown_table  # noqa: E402
from _workloads import (  # noqa: E402
    _block,
    _check_same,
    batch_shape,
    quad,
    quad_inputs,
    shape_label,
)

import autovmap  # noqa: E402
from autovmap._bind import bind  # noqa: E402  (private: to time the checks alone)

SIGNATURE = "(),(n),(n,n)->()"
JNP = "jnp.vectorize (reference)"
OURS = "autovmap.vectorize"


def prepare(fn, args):
    """What a batched call does before any JAX work: bind, then plan (with the checks)."""
    call = fn.__autovmap__
    return call.plan(bind(call.spec, args, {}))


def eager_rows(k: int, m_batched: bool, reps: int, target_s: float):
    s, v, m = quad_inputs(k, m_batched)
    fns = {
        JNP: jnp.vectorize(quad, signature=SIGNATURE),
        OURS: autovmap.vectorize(quad, signature=SIGNATURE),
    }
    name = f"eager, m {'batched' if m_batched else 'shared'}, k={k} {shape_label(batch_shape(k))}"
    _check_same(name, {n: f(s, v, m) for n, f in fns.items()})
    contenders = [Contender(n, loop(lambda f=f: _block(f(s, v, m)))) for n, f in fns.items()]
    return compare(name, contenders, reps=reps, target_s=target_s)


def check_cost_rows(reps: int, target_s: float):
    explicit = autovmap.auto_vmap(s=0, v=1, m=2)(quad)
    named = autovmap.auto_vmap(signature=SIGNATURE)(quad)
    rows = []
    for k in (1, 4):
        args = quad_inputs(k, m_batched=True)
        _check_same("prepare", {"a": explicit(*args), "b": named(*args)})
        rows += compare(
            f"prepare a batched call, k={k}: bind, rank checks, [core-dim checks], cached plan",
            [
                Contender(
                    "auto_vmap(s=0, v=1, m=2) (reference)",
                    loop(lambda a=args: prepare(explicit, a)),
                ),
                Contender(
                    "auto_vmap(signature=...)",
                    loop(lambda a=args: prepare(named, a)),
                ),
            ],
            reps=reps,
            target_s=target_s,
        )

    def first(s, v, m):  # trivial: the time is the decorator's own
        return v

    s, v, m = quad_inputs(1, m_batched=True)
    one = (s, v[0], m[0])
    fns = {
        "auto_vmap(s=0, v=1, m=2) (reference)": autovmap.auto_vmap(s=0, v=1, m=2)(first),
        'auto_vmap(s="", v="n", m="n n")': autovmap.auto_vmap(s="", v="n", m="n n")(first),
        "auto_vmap(signature=...)": autovmap.auto_vmap(signature="(),(n),(n,n)->(n)")(first),
    }
    rows += compare(
        "unbatched call of a trivial function: the decorator's own cost",
        [Contender(name, loop(lambda f=f: f(*one))) for name, f in fns.items()],
        reps=reps,
        target_s=target_s,
    )
    rows += compare(
        "unbatched call (no vmap), quad itself",
        [
            Contender("auto_vmap(s=0, v=1, m=2) (reference)", loop(lambda: _block(explicit(*one)))),
            Contender("auto_vmap(signature=...)", loop(lambda: _block(named(*one)))),
            Contender("undecorated quad", loop(lambda: _block(quad(*one)))),
        ],
        reps=reps,
        target_s=target_s,
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="k in 1, 4, 12; fewer blocks")
    parser.add_argument("--out", type=pathlib.Path, help="also write the table here")
    args = parser.parse_args()
    reps, target_s = (5, 0.02) if args.quick else (15, 0.05)
    ks = (1, 4, 12) if args.quick else range(1, 13)
    rows = []
    for m_batched in (False, True):
        for k in ks:
            rows += eager_rows(k, m_batched, reps, target_s)
            print(f"  {rows[-1].workload}: ratio {rows[-1].ratio:.2f}", file=sys.stderr)
    rows += check_cost_rows(reps, target_s)
    header = (
        f"jax {jax.__version__}, {jax.default_backend()}, Python {platform.python_version()}, "
        f"{platform.machine()}; {reps} interleaved blocks per workload"
    )
    report = f"{header}\n\n{markdown_table(rows)}\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
