"""`python -m autovmap [inspect MODULE[:FUNCTION]]`: a demonstration, or a static report of the
auto-vmapped functions of a module.

Exit status: 0 for a report, 1 when the report finds a problem (a rank spec error raised while
importing, no auto-vmapped function, the module raising on import), 2 for a misuse of the
command (no such module or file, no such function), which is one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from ._annotations import (
    AnnotationReader,
    annotation_str,
    contains_jaxtyping,
    is_array_annotation,
)
from ._arrays import PYTHON_SCALARS
from ._decorator import BatchedCall
from ._describe import render_table
from ._errors import AutoVmapError


def decoration_of(fn: Any) -> Any:
    """The record of an auto-vmapped function (or bound method), a `BatchedCall`, or of a
    `vectorize` function; `None` for anything else."""
    record = getattr(fn, "__autovmap__", None)
    if isinstance(record, BatchedCall) or _is_vectorized(record):
        return record
    return None


def _is_vectorized(record: Any) -> bool:
    return (
        record is not None
        and callable(getattr(record, "prepare", None))
        and hasattr(record, "pyfunc")
    )


def _find(module: Any) -> Iterator[tuple[str, Any]]:
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
            f'batched calls pass arrays here; annotate `Float[ArrayLike, ""]`, not '
            f"`{annotation.__name__}`"
        )
    if (
        annotation is not None
        and is_array_annotation(annotation)
        and annotation.index_variadic is None
    ):
        implied = AnnotationReader(None).rank(annotation)
        if isinstance(rank, int) and rank != implied:
            return f"explicit rank {rank} differs from the annotation's {implied}"
    return ""


def report(name: str, record: Any) -> str:
    if not isinstance(record, BatchedCall):
        return _vectorize_report(name, record)
    rows = []
    for param in record.spec.params:
        annotation = record.spec.annotations.get(param.name, inspect.Parameter.empty)
        rows.append(
            [
                param.name,
                "-" if annotation is inspect.Parameter.empty else annotation_str(annotation),
                repr(record.spec.explicit.get(param.name, param.rank)),  # dim strings as given
                param.source,
                _notes(record, param.name, param.rank),
            ]
        )
    if record.options.check:
        options = ["checks on"]
    elif any(map(contains_jaxtyping, record.spec.annotations.values())):
        options = ["checks off"]  # turned off with `check=False`
    else:
        options = ["no annotations to check"]
    if record.options.chunk_size is not None:
        options.append(f"chunk_size={record.options.chunk_size}")
    if record.options.signature is not None:
        options.append(f"signature={record.options.signature!r}")
    table = render_table(["parameter", "annotation", "rank", "from", "note"], rows)
    return f"{name} ({', '.join(options)})\n{table}"


def _vectorize_report(name: str, record: Any) -> str:
    """A `vectorize` function: its signature, and the core dims each parameter takes from it
    (every call binds its arguments to them by position, as `jnp.vectorize` does)."""
    gufunc = getattr(record, "gufunc", None)
    text = getattr(gufunc, "text", None)
    header = f"signature={text!r}" if text else "no signature: every argument is batched as rank 0"
    try:
        params = list(inspect.signature(record.pyfunc).parameters)
    except (TypeError, ValueError):  # a builtin without a signature
        return f"{name} (vectorize, {header})"
    excluded = set(getattr(record, "excluded_names", ()))
    inputs = iter(getattr(gufunc, "inputs", ()))
    rows = []
    for param in params:
        if param in excluded:
            rows.append([param, "excluded: passed through"])
        else:
            dims = next(inputs, ())
            rows.append([param, "(" + ", ".join(map(str, dims)) + ")"])
    outputs = getattr(gufunc, "outputs", None)
    if outputs is not None:
        returns = ", ".join("(" + ", ".join(map(str, dims)) + ")" for dims in outputs)
        rows.append(["return", returns])
    table = render_table(["parameter", "core dims"], rows)
    return f"{name} (vectorize, {header})\n{table}"


PROG = "python -m autovmap"
MODULE_HELP = """\
MODULE is what `import` takes (`mymodel`, `mypackage.layers`), found on the usual path, the
current directory first; or the path of a Python file (`mymodel.py`, `./src/mymodel.py`),
imported as a top-level module named after the file, its folder first on the path, as
`python FILE` would. FUNCTION, optional, is a function's name or `Class.method`; without it,
every auto-vmapped function of the module, methods of its classes included, is reported.

exit status: 0 reported; 1 a problem found (a rank spec error while importing, no auto-vmapped
function, the module raised while importing); 2 no such module, file or function."""


class UsageError(Exception):
    """A misuse of the command line: reported in one line, exit status 2."""


class ImportFailed(Exception):
    """The module was found but raised while importing: reported in one line, exit status 1."""


def _is_file_path(module_name: str) -> bool:
    return module_name.endswith(".py") or "/" in module_name or os.sep in module_name


def _import_file(path: str) -> ModuleType:
    """Import the Python file at `path` as a top-level module named after it."""
    if not path.endswith(".py"):
        raise UsageError(f"{path!r} is not a Python file: give a `.py` file or a module name")
    if not os.path.isfile(path):
        raise UsageError(f"no file {path!r} (from {os.getcwd()})")
    name = os.path.basename(path)[: -len(".py")]
    folder = os.path.dirname(os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a .py file always has a loader
    module = importlib.util.module_from_spec(spec)
    # Its own imports find its neighbours, and `sys.modules[cls.__module__]` (dataclasses,
    # string annotations) finds the module, as when the file is run as a script.
    sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import_folder(path: str) -> ModuleType:
    """A folder holding a package (an `__init__.py`) is that package, imported from the folder
    above it; any other folder is a misuse, since `inspect` reads one module."""
    folder = os.path.abspath(path)
    name = os.path.basename(folder)
    if not os.path.isfile(os.path.join(folder, "__init__.py")) or not name.isidentifier():
        raise UsageError(
            f"{path!r} is a folder, not a module: give a module name (`mymodel`) or the path "
            f"of a .py file in it (`{os.path.join(path, 'mymodel.py')}`)"
        )
    sys.path.insert(0, os.path.dirname(folder))
    return importlib.import_module(name)


def _import(module_name: str) -> ModuleType:
    """The module that MODULE names; `UsageError` if there is none, `ImportFailed` if it
    raised (other than a rank spec error, which is part of the report)."""
    try:
        if os.path.isdir(module_name):
            return _import_folder(module_name)
        if _is_file_path(module_name):
            return _import_file(module_name)
        if module_name.startswith("."):
            raise UsageError(
                f"{module_name!r} is a relative module name: give the full name "
                "(`mypackage.layers`) or the path of a .py file"
            )
        if os.path.isfile(module_name):  # `notes.txt`: a dotted name, but meant as a file
            raise UsageError(
                f"{module_name!r} is not a Python file: give a `.py` file or a module name"
            )
        return importlib.import_module(module_name)
    except (AutoVmapError, UsageError):
        raise
    except ModuleNotFoundError as e:
        # Only MODULE itself (or a package above it) missing is a misuse; a module that it
        # imports being missing is the module's problem.
        if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise UsageError(
                f"no module named {e.name!r} on sys.path (MODULE is a module name, or the path "
                "of a .py file)"
            ) from None
        raise ImportFailed(_one_line(module_name, e)) from None
    except Exception as e:
        raise ImportFailed(_one_line(module_name, e)) from None


def _one_line(module_name: str, error: BaseException) -> str:
    """`importing M raised E: message (file:line)`, the line being the innermost frame."""
    if isinstance(error, SyntaxError):  # where the mistake is, not where it was compiled
        where = f" ({error.filename}:{error.lineno})" if error.filename else ""
        message = error.msg or ""
        return f"importing {module_name} raised {type(error).__name__}: {message}{where}"
    # The innermost frame of the user's code: importlib's own frames say nothing to a user.
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not f.filename.startswith("<frozen importlib")
    ]

    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    message = str(error).splitlines()[0] if str(error) else ""
    return f"importing {module_name} raised {type(error).__name__}: {message}{where}"


def inspect_command(target: str) -> int:
    # A path may hold a drive letter or colons of its own: FUNCTION is after the last colon,
    # and only when that colon follows the file name.
    module_name, colon, function = target.rpartition(":")
    if not colon or _is_file_path(function):
        module_name, function = target, ""
    if not module_name:
        raise UsageError(f"{target!r}: give MODULE before the colon")
    try:
        module = _import(module_name)
    except AutoVmapError as e:  # a rank spec problem, raised while decorating at import
        print(f"{module_name}: spec problem found while importing:\n{e}")
        return 1
    found = list(_find(module))
    if function:
        chosen = [(n, r) for n, r in found if n == function]
        if not chosen:
            raise UsageError(_unknown_function(module, module_name, function, found))
        found = chosen
    if not found:
        print(f"{module_name}: no auto-vmapped function found.")
        return 1
    print("\n\n".join(report(name, record) for name, record in found))
    return 0


def _unknown_function(module: ModuleType, module_name: str, function: str, found: list[Any]) -> str:
    missing = object()
    value: Any = module
    for part in function.split("."):
        value = getattr(value, part, missing)
    names = ", ".join(n for n, _ in found) or "none"
    if value is missing:
        what = f"{module_name} has no function `{function}`"
    else:
        what = f"`{module_name}:{function}` is not auto-vmapped"
    return f"{what}; its auto-vmapped functions: {names}"


def _version() -> str:
    """`autovmap X (jax Y, jaxtyping Z, typeguard W, Python V)`, from the installed metadata."""

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    names = ("jax", "jaxlib", "jaxtyping", "typeguard")
    others = ", ".join(f"{name} {version(name)}" for name in names)
    python = ".".join(map(str, sys.version_info[:3]))
    return f"autovmap {version('autovmap')} ({others}, Python {python})"


class _PrintVersion(argparse.Action):
    """Like argparse's `version` action, without wrapping the line to the terminal width."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(_version())
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="With no command, run a short demonstration. "
        f"`{PROG} inspect --help` says what MODULE may be.",
    )
    parser.add_argument(
        "--version",
        action=_PrintVersion,
        nargs=0,
        help="print the versions of autovmap, jax, "
        "jaxlib, jaxtyping, typeguard and Python, and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    inspect_parser = commands.add_parser(
        "inspect",
        help="report the ranks of every auto-vmapped function in a module or file",
        description="Report the ranks of the auto-vmapped functions of a module, as read at\n"
        "decoration: each parameter's annotation, its rank and where the rank came from.",
        epilog=MODULE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect_parser.add_argument(
        "target", metavar="MODULE[:FUNCTION]", help="a module name or a .py file, see below"
    )
    args = parser.parse_args(argv)
    if args.command == "inspect":
        try:
            return inspect_command(args.target)
        except UsageError as e:
            print(f"{PROG} inspect: error: {e}", file=sys.stderr)
            return 2
        except ImportFailed as e:
            print(f"{PROG} inspect: error: {e}", file=sys.stderr)
            return 1
    from ._demo import main as demo

    demo()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
