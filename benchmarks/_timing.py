"""Interleaved timing: every contender of a workload is timed in the same process, round-robin.

One *repetition block* times each contender once (a loop of `number` calls, or one fresh
trace/compile), in an order rotated from block to block so that no contender always runs first
or last. The reported time is the median, over blocks, of the mean time per call in a block;
the reported ratio is the median, over blocks, of (contender time / reference time) in the same
block. Interleaving spreads slow drifts of the machine (frequency scaling, a neighbour's load)
evenly over the contenders, so their *ratios* stay meaningful even when absolute times wander.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import statistics
import time
from collections.abc import Callable

# A measurement: called with `number`, returns {metric suffix: seconds per call}. Most contenders
# have one metric (suffix ""); trace/compile contenders report "lower" and "lower+compile".
Measure = Callable[[int], dict[str, float]]


@dataclasses.dataclass
class Contender:
    name: str
    measure: Measure
    calibrate: bool = True  # False: one call per block (fresh jit: calls are not repeatable)


@dataclasses.dataclass
class Row:
    workload: str
    contender: str
    median_s: float
    ratio: float | None  # median / reference median; None when the reference was skipped
    blocks: int
    number: int  # calls per block
    spread: float  # half the interquartile range of the blocks, relative to the median
    # half the interquartile range of the per-block ratios: how far apart two runs' ratios may
    # land on this machine (a ratio within it of its target is not a verdict)
    ratio_spread: float | None = None


def loop(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> Measure:
    """A `Measure` that calls `fn()` `number` times and returns the mean seconds per call
    (`clock=time.process_time`: CPU seconds of the process, which a busy machine's other
    processes disturb less than wall time)."""

    def measure(number: int) -> dict[str, float]:
        gc_was_enabled = gc.isenabled()
        gc.disable()  # as `timeit` does: a collection should not land in one contender's block
        try:
            start = clock()
            for _ in range(number):
                fn()
            elapsed = clock() - start
        finally:
            if gc_was_enabled:
                gc.enable()
        return {"": elapsed / number}

    return measure


def compare(
    workload: str,
    contenders: list[Contender],
    *,
    reps: int,
    target_s: float,
    max_number: int = 100_000,
) -> list[Row]:
    """Time `contenders` interleaved; the first one is the reference of the ratios."""
    numbers = []
    for c in contenders:  # warm up (compile caches, plan caches) and calibrate
        c.measure(1)
        if not c.calibrate:
            numbers.append(1)
            continue
        # the fastest of a few single calls: one slow call must not shrink the blocks
        per_call = max(min(c.measure(1)[""] for _ in range(3)), 1e-7)
        numbers.append(max(1, min(max_number, math.ceil(target_s / per_call))))

    samples: list[dict[str, list[float]]] = [{} for _ in contenders]
    for block in range(reps):
        for j in range(len(contenders)):
            i = (j + block) % len(contenders)  # rotate the starting contender every block
            for metric, seconds in contenders[i].measure(numbers[i]).items():
                samples[i].setdefault(metric, []).append(seconds)

    rows = []
    for c, number, per_metric in zip(contenders, numbers, samples):
        for metric, values in per_metric.items():
            reference = samples[0].get(metric)
            # The ratio is the median of per-block ratios: the contenders of one block ran
            # close together in time, so a slow drift of the machine cancels out of each
            # block's ratio.
            ratios = [v / r for v, r in zip(values, reference)] if reference else []
            ratio = statistics.median(ratios) if ratios else None
            ratio_spread = _half_iqr(ratios) if len(ratios) > 1 else None
            median = statistics.median(values)
            spread = _half_iqr(values) / median if len(values) > 1 else 0.0
            name = f"{workload}, {metric}" if metric else workload
            rows.append(Row(name, c.name, median, ratio, reps, number, spread, ratio_spread))
    # group rows by workload name (metrics of one contender were emitted together)
    order = {name: k for k, name in enumerate(dict.fromkeys(r.workload for r in rows))}
    rows.sort(key=lambda r: order[r.workload])
    return rows


def _half_iqr(values: list[float]) -> float:
    q1, _, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / 2


def format_seconds(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| workload | contender | median time (± half IQR) | ratio to reference |",
        "|---|---|---:|---:|",
    ]
    for r in rows:
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}"
        time = f"{format_seconds(r.median_s)} ± {r.spread:.0%}"
        lines.append(f"| {r.workload} | {r.contender} | {time} | {ratio} |")
    return "\n".join(lines)
