"""`chunk_size` on a sharded batch: compiled temp memory per device and run time of
`autovmap._run.map_batch` against hand-written `jax.shard_map` + `jax.lax.map`, on 8
simulated CPU devices. Targets (issue 12): equal memory, run time within 1.1x.

```bash
.venv/bin/python benchmarks/sharded_chunks.py            # ~1 min on 2 cores
.venv/bin/python benchmarks/sharded_chunks.py --quick    # smoke run
```

The script re-runs itself with `XLA_FLAGS=--xla_force_host_platform_device_count=8` when it
was not given that flag (it must be set before JAX is imported). Times are interleaved
(`_timing.compare`): the ratio is the median over blocks of ours / hand-written in the same
block. Simulated devices share the host's cores, so absolute times mean little; the ratios and
the memory do. Measurements only: nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys

N_DEVICES = 8
FLAG = f"--xla_force_host_platform_device_count={N_DEVICES}"
HERE = pathlib.Path(__file__).resolve().parent
COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")


def _reexec_with_devices() -> None:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {FLAG}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    command = [sys.executable, __file__, *sys.argv[1:]]
    sys.exit(subprocess.run(command, env=env, check=False).returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--chunk-size", type=int, default=8, help="examples per device per step")
    options = parser.parse_args()

    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    sys.path.insert(0, str(HERE))
    from _timing import Contender, compare, format_seconds, loop

    from autovmap._run import map_batch

    assert len(jax.devices()) == N_DEVICES, jax.devices()
    chunk = options.chunk_size

    def outer(v):  # a (d, d) temporary per example: what chunking bounds
        return ((v[:, None] * v[None, :]) @ v).sum()

    # name: (mesh shape, mesh axes, global shape of v, PartitionSpec of v)
    layouts = {
        "1 level, 1-D mesh": ((8,), ("b",), (1024, 64), P("b")),
        "1 level, 2-D mesh, batch over x": ((4, 2), ("x", "y"), (1024, 64), P("x")),
        "2 levels, 2-D mesh": ((4, 2), ("x", "y"), (32, 32, 64), P("x", "y")),
    }
    lines = [
        f"chunk_size={chunk} per device, {N_DEVICES} simulated CPU devices, jax {jax.__version__}",
        "",
        (
            "| layout | mesh | temp/device ours | hand-written | unchunked | ours/hand memory "
            "| time ours | hand-written | ours/hand time | collectives (ours) |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, (mesh_shape, names, shape, spec) in layouts.items():
        for kind in ("Auto", "Explicit"):
            mesh = jax.make_mesh(
                mesh_shape, names, axis_types=(getattr(jax.sharding.AxisType, kind),) * len(names)
            )
            rng = np.random.default_rng(0)
            v = jax.device_put(
                rng.standard_normal(shape).astype(np.float32) / 8, NamedSharding(mesh, spec)
            )
            batch = shape[:-1]
            levels = tuple((0,) for _ in batch)

            def ours(v, batch=batch, levels=levels):
                return map_batch(outer, [v], levels, batch, chunk_size=chunk)

            def whole(v, batch=batch, levels=levels):
                return map_batch(outer, [v], levels, batch)

            def hand_body(block):  # what a user writes per device: flatten, loop, unflatten
                local = block.shape[:-1]
                flat = block.reshape((-1, block.shape[-1]))
                return jax.lax.map(outer, flat, batch_size=chunk).reshape(local)

            hand = jax.shard_map(hand_body, mesh=mesh, in_specs=spec, out_specs=spec)
            jitted = {"ours": jax.jit(ours), "hand": jax.jit(hand), "whole": jax.jit(whole)}
            compiled = {k: f.lower(v).compile() for k, f in jitted.items()}
            temp = {k: c.memory_analysis().temp_size_in_bytes for k, c in compiled.items()}
            found = [op for op in COLLECTIVES if op in compiled["ours"].as_text()]
            np.testing.assert_allclose(jitted["ours"](v), jitted["hand"](v), rtol=2e-5, atol=1e-6)

            def call(fn, v=v):  # binds this layout's array, not the loop's last one
                return lambda: fn(v).block_until_ready()

            rows = compare(
                f"{name} [{kind}]",
                [
                    Contender("hand", loop(call(jitted["hand"]))),
                    Contender("ours", loop(call(jitted["ours"]))),
                ],
                reps=3 if options.quick else 15,
                target_s=0.05 if options.quick else 0.2,
            )
            by = {r.contender: r for r in rows}
            lines.append(
                f"| {name} | {kind} {mesh_shape} | {temp['ours'] / 1024:.0f} KiB "
                f"| {temp['hand'] / 1024:.0f} KiB | {temp['whole'] / 1024:.0f} KiB "
                f"| {temp['ours'] / temp['hand']:.2f} "
                f"| {format_seconds(by['ours'].median_s)} ± {by['ours'].spread:.0%} "
                f"| {format_seconds(by['hand'].median_s)} ± {by['hand'].spread:.0%} "
                f"| {by['ours'].ratio:.2f} | {', '.join(found) or 'none'} |"
            )
            print(lines[-1], flush=True)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    if FLAG not in os.environ.get("XLA_FLAGS", ""):
        _reexec_with_devices()
    main()
