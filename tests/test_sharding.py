"""Sharded batches stay sharded through an auto-vmapped function, and no collective is added.

Needs 8 devices: the checks run in a subprocess (this file run as a script) whose `XLA_FLAGS`
simulate 8 CPU devices. The flag must be set before jax is imported, so it cannot be set in
the pytest process, which keeps its own single device.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import traceback

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from autovmap import auto_vmap

N_DEVICES = 8
SHARDING_PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "sharding.md"
# A python block of the page, and the 8-device output shown after it ("On 8 devices:").
PAGE_BLOCK = re.compile(
    r"^```python\n(.*?)^```\n(?:\nOn 8 devices:\n\n```text\n(.*?)^```\n)?",
    re.DOTALL | re.MULTILINE,
)
COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")


def quad_example(s, v, m):
    return v @ m @ v + s * v.size


def quad_and_mv_example(v, m):
    return {"quad": v @ m @ v, "mv": m @ v}


quad = auto_vmap(s=0, v=1, m=2)(quad_example)
quad_and_mv = auto_vmap(v=1, m=2)(quad_and_mv_example)

# name: (mesh shape, mesh axis names, batched function, hand-written nested vmap,
#        {argument: (global shape, PartitionSpec)}, expected PartitionSpec of the output(s))
CASES = {
    "1 sharded batch dim, mesh (8,)": (
        (8,),
        ("b",),
        quad,
        jax.vmap(quad_example, in_axes=(None, 0, None)),
        {"s": ((), P()), "v": ((16, 3), P("b")), "m": ((3, 3), P())},
        P("b"),
    ),
    "1 sharded batch dim, m batched too, mesh (8,)": (
        (8,),
        ("b",),
        quad,
        jax.vmap(quad_example, in_axes=(None, 0, 0)),
        {"s": ((), P()), "v": ((16, 3), P("b")), "m": ((16, 3, 3), P("b"))},
        P("b"),
    ),
    "2 sharded batch dims, pytree output, mesh (4, 2)": (
        (4, 2),
        ("x", "y"),
        quad_and_mv,
        jax.vmap(jax.vmap(quad_and_mv_example)),
        {"v": ((8, 6, 3), P("x", "y")), "m": ((8, 6, 3, 3), P("x", "y"))},
        {"quad": P("x", "y"), "mv": P("x", "y")},
    ),
    "2 sharded batch dims, broadcast (8, 1) x (6,), mesh (4, 2)": (
        (4, 2),
        ("x", "y"),
        quad,
        lambda s, v, m: jax.vmap(
            jax.vmap(quad_example, in_axes=(None, None, 0)), in_axes=(None, 0, None)
        )(s, v[:, 0], m),
        {"s": ((), P()), "v": ((8, 1, 3), P("x")), "m": ((6, 3, 3), P("y"))},
        P("x", "y"),
    ),
}
MESH_KINDS = ("Auto", "Explicit")  # jax.sharding.AxisType of the mesh axes


def _loop_oracle(fn, args: dict[str, np.ndarray], ranks: dict[str, int]):
    """A plain Python loop over the broadcast batch shape, on NumPy copies."""
    batch_shapes = [a.shape[: a.ndim - ranks[k]] for k, a in args.items()]
    batch = np.broadcast_shapes(*batch_shapes)
    expanded = {
        k: np.broadcast_to(a, batch + a.shape[a.ndim - ranks[k] :]) for k, a in args.items()
    }
    outs = [fn(**{k: a[index] for k, a in expanded.items()}) for index in np.ndindex(batch)]
    return jax.tree.map(lambda *leaves: np.stack(leaves).reshape(batch + leaves[0].shape), *outs)


def _make_mesh(shape, names, kind):
    axis_type = getattr(jax.sharding.AxisType, kind)
    devices = np.array(jax.devices()[: int(np.prod(shape))]).reshape(shape)
    return Mesh(devices, names, axis_types=(axis_type,) * len(names))


def _run_case(name: str, kind: str) -> dict:
    mesh_shape, names, fn, by_hand, arg_specs, out_specs = CASES[name]
    mesh = _make_mesh(mesh_shape, names, kind)
    rng = np.random.default_rng(0)
    host = {k: rng.standard_normal(shape).astype(np.float32) for k, (shape, _) in arg_specs.items()}
    args = {
        k: jax.device_put(host[k], NamedSharding(mesh, spec)) for k, (_, spec) in arg_specs.items()
    }
    ranks = {"s": 0, "v": 1, "m": 2}
    example = quad_example if fn is quad else quad_and_mv_example

    jitted = jax.jit(fn)
    out = jitted(**args)
    hlo = jitted.lower(**args).compile().as_text()
    eager = fn(**args)

    def sharding_report(result):
        leaves = jax.tree.leaves(result)
        specs = jax.tree.leaves(out_specs, is_leaf=lambda x: isinstance(x, P))
        return [
            {
                "spec": str(leaf.sharding.spec) if hasattr(leaf.sharding, "spec") else None,
                "ok": leaf.sharding.is_equivalent_to(NamedSharding(mesh, spec), leaf.ndim),
                "local_shape": list(leaf.addressable_shards[0].data.shape),
                "expected_local_shape": list(NamedSharding(mesh, spec).shard_shape(leaf.shape)),
            }
            for leaf, spec in zip(leaves, specs, strict=True)
        ]

    oracle = _loop_oracle(example, host, ranks)
    hand = by_hand(*args.values())

    def max_err(a, b):
        return max(
            float(np.max(np.abs(np.asarray(x) - np.asarray(y)), initial=0.0))
            if np.shape(x) == np.shape(y)
            else float("inf")
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        )

    return {
        "jit": sharding_report(out),
        "eager": sharding_report(eager),
        "collectives": [c for c in COLLECTIVES if c in hlo],
        "partitioned": f"num_partitions={int(np.prod(mesh_shape))}" in hlo,
        "err_vs_loop": max_err(out, oracle),
        "err_vs_hand_vmap": max_err(out, hand),
        "err_eager_vs_loop": max_err(eager, oracle),
    }


def _run_page() -> list[str]:
    """What each python block of docs/sharding.md prints, run in order in one namespace."""
    namespace: dict = {"__name__": "docs_sharding"}
    printed = []
    for match in PAGE_BLOCK.finditer(SHARDING_PAGE.read_text()):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(match.group(1), SHARDING_PAGE.name, "exec"), namespace)
        printed.append(out.getvalue())
    return printed


def main() -> None:
    assert len(jax.devices()) == N_DEVICES, jax.devices()
    results = {f"{name} [{kind}]": _run_case(name, kind) for name in CASES for kind in MESH_KINDS}
    # The page is documentation for the newest JAX (its printed reprs, and its explicit-sharding
    # example, differ at the dependency floors): its failure is reported to its own test, so that
    # the library's sharding cases above still count in the floor job.
    try:
        page, page_error = _run_page(), None
    except Exception:
        page, page_error = None, traceback.format_exc()
    print(
        json.dumps(
            {
                "n_devices": len(jax.devices()),
                "cases": results,
                "page": page,
                "page_error": page_error,
            }
        )
    )


@pytest.fixture(scope="module")
def results() -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={N_DEVICES}"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    # The script's folder, not the checkout, is first on its path: import this checkout's package.
    paths = [str(SHARDING_PAGE.parent.parent), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    proc = subprocess.run(
        [sys.executable, __file__], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_subprocess_has_8_devices_and_this_process_is_untouched(results):
    assert results["n_devices"] == N_DEVICES
    assert "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", "")


@pytest.mark.parametrize("kind", MESH_KINDS)
@pytest.mark.parametrize("case", list(CASES))
def test_sharded_batches(results, case, kind):
    r = results["cases"][f"{case} [{kind}]"]
    for mode in ("jit", "eager"):
        for leaf in r[mode]:
            assert leaf["ok"], f"{mode}: output sharded as {leaf['spec']}: {r}"
            assert leaf["local_shape"] == leaf["expected_local_shape"], (mode, r)
    assert r["collectives"] == [], f"collectives in the compiled HLO: {r['collectives']}"
    assert r["partitioned"], "the compiled module is not partitioned over the mesh"
    assert r["err_vs_loop"] < 1e-4, r
    assert r["err_vs_hand_vmap"] < 1e-5, r
    assert r["err_eager_vs_loop"] < 1e-4, r


@pytest.mark.newest
def test_sharding_page_shows_real_8_device_output(results):
    """The ```text blocks after "On 8 devices:" in docs/sharding.md are what 8 devices print
    (tests/test_docs.py runs the same blocks on this process's single device)."""
    error = results["page_error"]
    assert error is None, f"docs/sharding.md failed on 8 devices:\n{error}"
    blocks = list(PAGE_BLOCK.finditer(SHARDING_PAGE.read_text()))
    assert len(blocks) == len(results["page"])
    shown = [(m.group(2), printed) for m, printed in zip(blocks, results["page"]) if m.group(2)]
    assert len(shown) >= 5
    for expected, printed in shown:
        assert printed.rstrip("\n") == expected.rstrip("\n")


if __name__ == "__main__":
    main()
