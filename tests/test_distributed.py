"""Two JAX processes on this machine, one global batch over both: an auto-vmapped function
under `jax.jit` computes every process's shards correctly, with and without `chunk_size`.

The test launches this file twice as a worker (`python test_distributed.py worker ID PORT`),
each with 4 simulated CPU devices, joined by `jax.distributed` over a loopback coordinator:
8 devices in all, 4 per process. Each worker checks the shards it can address against a NumPy
loop and prints one JSON line. Every wait is bounded; on any failure both children are killed.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

N_PROCESSES = 2
LOCAL_DEVICES = 4
TIMEOUT_S = 150  # the whole test: two jax imports and a dozen compiles on 2 shared cores
COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")
REPO = pathlib.Path(__file__).resolve().parent.parent


def quad_example(s, v, m):
    return v @ m @ v + s * v.size


def worker(process_id: int, port: int) -> dict:
    import jax  # imported here: the parent process must not initialise a backend
    import numpy as np
    from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

    from autovmap import auto_vmap
    from autovmap._compat import EXPLICIT_SPLIT as _EXPLICIT_SPLIT

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    _gloo_on_loopback(jax)
    timeouts = {  # every wait bounded; older jax bounds fewer of them
        "initialization_timeout": 60,
        "heartbeat_timeout_seconds": 30,
        "shutdown_timeout_seconds": 30,
    }
    accepted = inspect.signature(jax.distributed.initialize).parameters
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        coordinator_bind_address=f"127.0.0.1:{port}",  # never listen beyond loopback
        num_processes=N_PROCESSES,
        process_id=process_id,
        **{name: seconds for name, seconds in timeouts.items() if name in accepted},
    )
    assert jax.process_count() == N_PROCESSES, jax.process_count()
    assert jax.local_device_count() == LOCAL_DEVICES, jax.local_devices()

    # Both processes draw the same host data; each uploads only the rows it owns.
    rng = np.random.default_rng(0)
    n = 8 * 5  # 5 examples per device: chunks of 2 leave a tail of 1
    host_v = rng.standard_normal((n, 3)).astype(np.float32)
    host_m = rng.standard_normal((3, 3)).astype(np.float32)  # one matrix for every example
    s = np.float32(0.5)
    expected = np.stack([quad_example(s, host_v[i], host_m) for i in range(n)])

    report: dict = {
        "process": jax.process_index(),
        "kinds": 0,
        "checked": {},
        "collectives": {},
        "errors": {},
    }
    # jax 0.5's explicit sharding cannot carry a chunked batch (see autovmap._compat)
    for kind in ("Auto", "Explicit") if _EXPLICIT_SPLIT else ("Auto",):
        report["kinds"] += 1
        devices = np.array(jax.devices())  # every device of every process, process-major
        mesh = Mesh(devices, ("batch",), axis_types=(getattr(AxisType, kind),))
        sharding = NamedSharding(mesh, P("batch"))
        rows = [index[0] for index in sharding.addressable_devices_indices_map((n, 3)).values()]
        lo, hi = min(r.start for r in rows), max(r.stop for r in rows)
        v = jax.make_array_from_process_local_data(sharding, host_v[lo:hi], (n, 3))
        assert not v.is_fully_addressable  # really one array over both processes

        functions = {
            "auto_vmap": auto_vmap(s=0, v=1, m=2)(quad_example),
            "auto_vmap chunk_size=2": auto_vmap(s=0, v=1, m=2, chunk_size=2)(quad_example),
        }
        for name, fn in functions.items():
            key = f"{name} [{kind}]"
            jitted = jax.jit(fn)
            try:
                out = jitted(s, v, host_m)
            except ValueError as error:  # reported, so that the test says what failed
                report["errors"][key] = str(error).splitlines()[0]
                continue
            hlo = jitted.lower(s, v, host_m).compile().as_text()
            assert out.shape == (n,), out.shape
            for shard in out.addressable_shards:
                np.testing.assert_allclose(
                    np.asarray(shard.data), expected[shard.index], rtol=1e-5, atol=1e-5
                )
            report["checked"][key] = len(out.addressable_shards)
            report["collectives"][key] = [op for op in COLLECTIVES if op in hlo]
    jax.distributed.shutdown()
    return report


def _gloo_on_loopback(jax) -> None:
    """Make gloo listen on 127.0.0.1 rather than on the address the host name resolves to.

    gloo picks its address from the host name, which on some machines resolves to an
    interface the other process cannot reach; jax has no public option for it, so the
    factory it calls is given the host name explicitly (private, test-only, and skipped
    if the factory moves)."""
    import functools

    from jax._src import xla_bridge

    factory = getattr(getattr(xla_bridge, "_jax", None), "make_gloo_tcp_collectives", None)
    if factory is not None:
        xla_bridge._jax.make_gloo_tcp_collectives = functools.partial(factory, hostname="127.0.0.1")


def _free_port() -> int:
    """A port nobody listens on now: bound by the kernel's choice, then released for the
    coordinator (the window in between is tiny, and a clash fails loudly, not silently)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={LOCAL_DEVICES}"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for name in ("no_proxy", "NO_PROXY"):  # the coordinator is local: never via a proxy
        env[name] = ",".join(filter(None, [env.get(name), "127.0.0.1", "localhost"]))
    return env


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> list[dict]:
    logs = tmp_path_factory.mktemp("distributed")
    port = _free_port()
    children: list[subprocess.Popen] = []
    with contextlib.ExitStack() as files:
        try:
            for i in range(N_PROCESSES):
                # Files, not pipes: a chatty child can never block on a full pipe.
                out = files.enter_context(open(logs / f"{i}.out", "w"))
                err = files.enter_context(open(logs / f"{i}.err", "w"))
                children.append(
                    subprocess.Popen(
                        [sys.executable, __file__, "worker", str(i), str(port)],
                        env=_child_env(),
                        stdout=out,
                        stderr=err,
                    )
                )
            deadline = time.monotonic() + TIMEOUT_S
            # Poll both: when one fails, its partner would wait for it until its timeouts.
            while any(child.poll() is None for child in children):
                if any(c.returncode not in (None, 0) for c in children):
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            texts = [
                ((logs / f"{i}.out").read_text(), (logs / f"{i}.err").read_text())
                for i in range(N_PROCESSES)
            ]
            for i, child in enumerate(children):
                if child.returncode != 0:
                    why = "timed out" if child.returncode is None else f"exited {child.returncode}"
                    pytest.fail(f"worker {i} {why}:\n{texts[i][0]}\n{texts[i][1][-4000:]}")
        finally:
            for child in children:  # only our own children, by their Popen handles
                if child.poll() is None:
                    child.kill()
                    child.wait(timeout=10)
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in texts]


def test_every_process_checked_its_own_shards(reports):
    assert sorted(r["process"] for r in reports) == list(range(N_PROCESSES))
    for report in reports:
        assert report["errors"] == {}, report["errors"]
        assert len(report["checked"]) == 2 * report["kinds"]
        for name, n_shards in report["checked"].items():
            assert n_shards == LOCAL_DEVICES, (report["process"], name)


def test_no_collectives_with_or_without_chunks(reports):
    for report in reports:
        for name, found in report["collectives"].items():
            assert found == [], (report["process"], name, found)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        print(json.dumps(worker(int(sys.argv[2]), int(sys.argv[3]))), flush=True)
