"""`python -m autovmap [inspect MODULE[:FUNCTION]]`: a demonstration, or a static report of the
auto-vmapped functions of a module."""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Iterator
from typing import Any

from ._annotations import AnnotationReader, annotation_str, is_array_annotation
from ._bind import PYTHON_SCALARS
from ._decorator import BatchedCall
from ._describe import render_table
from ._errors import AutoVmapError


def decoration_of(fn: Any) -> BatchedCall | None:
    """The record of an auto-vmapped function (or bound method), if it is one."""
    record = getattr(fn, "__autovmap__", None)
    return record if isinstance(record, BatchedCall) else None


def _find(module: Any) -> Iterator[tuple[str, BatchedCall]]:
    """Auto-vmapped functions of `module`, including methods of classes defined there."""
    for name, value in vars(module).items():
        if (record := decoration_of(value)) is not None:
            yield name, record
        elif inspect.isclass(value) and value.__module__ == module.__name__:
            for attr, member in vars(value).items():
                member = getattr(member, "__func__", member)  # staticmethod, classmethod
                if (record := decoration_of(member)) is not None:
                    yield f"{name}.{attr}", record


def _notes(record: BatchedCall, name: str, rank: Any) -> str:
    """Problems worth a look: a batched parameter annotated as a Python scalar, or an explicit
    rank that contradicts the annotation."""
    annotation = record.spec.annotations.get(name)
    if rank is not None and annotation in PYTHON_SCALARS:
        return (
            f"batched calls pass arrays here; annotate `Float[ArrayLike, \"\"]`, not "
            f"`{annotation.__name__}`"
        )
    if annotation is not None and is_array_annotation(annotation) and annotation.index_variadic is None:
        implied = AnnotationReader(None).rank(annotation)
        if isinstance(rank, int) and rank != implied:
            return f"explicit rank {rank} differs from the annotation's {implied}"
    return ""


def report(name: str, record: BatchedCall) -> str:
    rows = []
    for param in record.spec.params:
        annotation = record.spec.annotations.get(param.name, inspect.Parameter.empty)
        rows.append([
            param.name,
            "-" if annotation is inspect.Parameter.empty else annotation_str(annotation),
            "None" if param.rank is None else repr(param.rank),
            param.source,
            _notes(record, param.name, param.rank),
        ])
    options = [f"checks {'on' if record.check else 'off'}"]
    if record.chunk_size is not None:
        options.append(f"chunk_size={record.chunk_size}")
    table = render_table(["parameter", "annotation", "rank", "from", "note"], rows)
    return f"{name} ({', '.join(options)})\n{table}"


def inspect_command(target: str) -> int:
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except AutoVmapError as e:  # a rank spec problem, raised while decorating at import
        print(f"{module_name}: spec problem found while importing:\n{e}")
        return 1
    found = [(n, r) for n, r in _find(module) if not function or n == function]
    if not found:
        what = f" `{function}`" if function else ""
        print(f"{module_name}: no auto-vmapped function{what} found.")
        return 1
    print("\n\n".join(report(name, record) for name, record in found))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autovmap",
        description="With no command, run a short demonstration.",
    )
    commands = parser.add_subparsers(dest="command")
    inspect_parser = commands.add_parser(
        "inspect", help="report the ranks of every auto-vmapped function in a module"
    )
    inspect_parser.add_argument("target", metavar="MODULE[:FUNCTION]")
    args = parser.parse_args(argv)
    if args.command == "inspect":
        return inspect_command(args.target)
    from ._demo import main as demo

    demo()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
