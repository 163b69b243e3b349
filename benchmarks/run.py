"""Side-by-side timings of `autovmap.auto_vmap` against the ways of batching it replaces.

    python benchmarks/run.py                  # full run, about 1 minute on 2 cores
    python benchmarks/run.py --quick          # smoke run, under 30 s
    python benchmarks/run.py --out table.md   # also write the Markdown report to a file
    python benchmarks/run.py --update-docs    # regenerate the table in docs/performance.md
    python benchmarks/run.py --git-ref REF    # time autovmap/ as of a commit (before/after)

All contenders of a workload run in this one process, interleaved round-robin inside each
repetition block; the table reports the median over blocks and the ratio to the workload's
reference (its first contender). These are measurements, not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import pathlib
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS_PAGE = ROOT / "docs" / "performance.md"
START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
SOURCE_ENV = "AUTOVMAP_BENCH_SOURCE"  # set when re-executed against an exported commit

SECTIONS = ("eager", "jit", "trace", "passthrough", "pytree", "check")


def cpu_model() -> str:
    """`model name` from /proc/cpuinfo, with the family/model numbers it leaves out."""
    try:
        fields: dict[str, str] = {}
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        if "model name" in fields:
            numbers = [f"{k} {fields[k]}" for k in ("cpu family", "model") if k in fields]
            return fields["model name"] + (f" ({', '.join(numbers)})" if numbers else "")
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def autovmap_source() -> str:
    """Which autovmap was timed: a commit, and whether the working tree differed from it."""
    import autovmap

    if os.environ.get(SOURCE_ENV):
        return os.environ[SOURCE_ENV]
    if not pathlib.Path(autovmap.__file__).resolve().is_relative_to(ROOT):
        return f"installed at {pathlib.Path(autovmap.__file__).parent}"
    try:
        dirty = _git("status", "--porcelain", "--", "autovmap")
        return f"git {_git('rev-parse', '--short', 'HEAD')}" + (
            " + uncommitted changes to autovmap/" if dirty else ""
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def environment(args: argparse.Namespace, load_before: str) -> list[str]:
    import _workloads as w
    import jax
    import jaxlib
    import numpy as np

    import autovmap

    jax_autovmap = w.jax_autovmap
    return [
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores"
        f" ({platform.system()} {platform.machine()}), JAX backend `{jax.default_backend()}`"
        f" with {len(jax.devices())} device(s); load average (1/5/15 min) {load_before}"
        f" before, {load_average()} after",
        f"- software: Python {platform.python_version()}, jax {jax.__version__}, jaxlib"
        f" {jaxlib.__version__}, numpy {np.__version__}, autovmap {autovmap.__version__}"
        f" ({autovmap_source()}), jax_autovmap"
        f" {jax_autovmap.__version__ if jax_autovmap else 'not installed'}",
        f"- method: {'`--quick`, ' if args.quick else ''}{args.reps} interleaved blocks per"
        f" workload, each block ≥ {args.target_ms:g} ms per contender (trace rows: one fresh"
        " `jax.jit(...).lower(...)` and `.compile()` per block); time: median over blocks;"
        " ratio: median over blocks of the ratio to the reference in the same block",
    ]


def diagnostics(ks: list[int]) -> list[str]:
    import _workloads as w

    levels = {k: w.eager_vmap_levels(k) for k in ks}
    # merging pays from four levels saved, 5 batch dims (see `autovmap._plan._merge_levels`)
    merging = "active" if all(v <= 1 for k, v in levels.items() if k >= 5) else "not active"
    same = {(k, mb): w.same_jaxpr_as_nested(k, mb) for k in ks for mb in (False, True)}
    bad = [f"k={k}, m {'batched' if mb else 'shared'}" for (k, mb), ok in same.items() if not ok]
    return [
        "- eager vmap levels `auto_vmap` uses, by batch rank k: "
        + ", ".join(f"k={k}: {n}" for k, n in levels.items())
        + f" (eager merging of adjacent levels: {merging})",
        "- jaxpr under `jax.make_jaxpr` identical to hand-nested `jax.vmap` for k in "
        f"{ks}, m shared and batched: " + ("yes" if not bad else "NO for " + ", ".join(bad)),
    ]


def run(args: argparse.Namespace) -> str:
    import gc

    import _workloads as w
    import jax
    from _timing import compare, markdown_table

    load_before = load_average()
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if busy > 0.5:
        print(
            f"[warning] the machine is busy (1-min load average {busy:.2f}): absolute"
            " times will be noisy, ratios less so",
            file=sys.stderr,
        )
    if args.quick:
        eager_ks, jit_ks, trace_ks = [1, 4, 12], [4], [4]
    else:
        eager_ks, jit_ks, trace_ks = list(range(1, 13)), [1, 4, 12], [1, 4, 12]
    if args.ks:
        eager_ks = jit_ks = trace_ks = args.ks
    sections = args.sections
    notes: list[str] = []
    if w.jax_autovmap is None:
        notes.append(
            "- `jax_autovmap` is not installed: its rows are skipped (`pip install -e '.[bench]'`)."
        )

    plan = []
    if "eager" in sections:
        plan += [(w.eager_workload, k, mb) for mb in (False, True) for k in eager_ks]
    if "jit" in sections:
        plan += [(w.jit_run_workload, k, mb) for mb in (False, True) for k in jit_ks]
    if "trace" in sections:
        plan += [(w.compile_workload, k, mb) for mb in (False, True) for k in trace_ks]
    if "passthrough" in sections:
        plan.append((w.passthrough_workload,))
    if "pytree" in sections:
        plan += [(w.pytree_eager_workload,), (w.pytree_compile_workload,)]
    if "check" in sections:
        supported, why = w.check_support()
        if supported:
            plan += [(w.check_eager_workload,), (w.check_compile_workload,)]
            if why:
                notes.append(f"- check=True rows: {why}")
        else:
            notes.append(f"- check=True vs check=False: skipped: {why}")
            print(f"[check section skipped] {why}", file=sys.stderr)

    rows = []
    started = time.perf_counter()
    for builder, *params in plan:
        # Start every workload from empty JAX caches: many eager vmapped calls leave JAX's
        # caches in a state that slows every later eager operation (seen: 30 µs -> 90 µs,
        # up to ms after a whole eager section, whatever the contender), which would make a
        # workload's times depend on the workloads that ran before it.
        jax.clear_caches()
        gc.collect()
        name, contenders = builder(*params)
        t0 = time.perf_counter()
        rows += compare(name, contenders, reps=args.reps, target_s=args.target_ms / 1e3)
        print(
            f"[{time.perf_counter() - started:6.1f} s] {name} ({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
        )

    report = [
        "Environment:",
        "",
        *environment(args, load_before),
        *diagnostics(eager_ks if args.quick else [1, 2, 4, 12]),
        *notes,
        "",
        markdown_table(rows),
        "",
    ]
    print(f"[{time.perf_counter() - started:6.1f} s] done", file=sys.stderr)
    return "\n".join(report)


def update_docs(report: str, page: pathlib.Path) -> None:
    text = page.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{page}: no `{START}` ... `{END}` markers to replace")
    page.write_text(pattern.sub(lambda _: f"{START}\n{report}{END}", text))
    print(f"updated {page}", file=sys.stderr)


def reexec_at(ref: str, argv: list[str]) -> None:
    """Run this script again with autovmap/ as of `ref` first on the path."""
    target = pathlib.Path(tempfile.mkdtemp(prefix="autovmap-bench-"))
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "autovmap"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    env[SOURCE_ENV] = f"git {_git('rev-parse', '--short', ref)}, exported from `{ref}`"
    print(f"[timing autovmap/ as of {ref}, exported to {target}]", file=sys.stderr)
    os.execve(sys.executable, [sys.executable, str(HERE / "run.py"), *argv], env)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, under 30 s")
    parser.add_argument("--out", type=pathlib.Path, help="also write the report to this file")
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help=f"replace the table between the markers in {DOCS_PAGE.relative_to(ROOT)}",
    )
    parser.add_argument("--reps", type=int, help="repetition blocks per workload (15; quick 5)")
    parser.add_argument(
        "--target-ms", type=float, help="minimum time of one block per contender (8; quick 3)"
    )
    parser.add_argument(
        "--git-ref",
        help="time the autovmap/ package as of this commit (exported to a temporary directory"
        " and put first on the path) instead of the working tree",
    )
    parser.add_argument(
        "--ks",
        type=lambda s: [int(k) for k in s.split(",")],
        help="comma-separated batch ranks k (1 to 12) for the eager, jit and trace workloads",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    args = parser.parse_args(argv)
    args.sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    if unknown := args.sections - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    if args.reps is None:
        args.reps = 5 if args.quick else 15
    if args.target_ms is None:
        args.target_ms = 3.0 if args.quick else 8.0
    if args.git_ref and not os.environ.get(SOURCE_ENV):
        reexec_at(args.git_ref, argv if argv is not None else sys.argv[1:])
    sys.path.insert(0, str(HERE))  # `_timing`, `_workloads`

    report = run(args)
    print(report)
    if args.out:
        args.out.write_text(report)
    if args.update_docs:
        update_docs(report, DOCS_PAGE)


if __name__ == "__main__":
    main()
